"""`Subscription.filingAdded`: replay from an ingest cursor, then live, in order, none twice."""

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator

from graphql import GraphQLError
from prometheus_client import Gauge

from loaders.filings import FilingFilter, FilingRow, ingested_after, last_ingested
from resolvers.context import Info
from resolvers.errors import UserInputError, limit_list

REPLAY_BATCH = 500
SLOW_CONSUMER = 1013  # WebSocket close code "try again later"
TOO_SLOW = "Too slow to keep up: reconnect, and resume with `since`."
ACTIVE = Gauge(
    "corpgraph_subscriptions_active",
    "Subscriptions open, over WebSocket and Server-Sent Events",
    multiprocess_mode="livesum",
)


def to_ingest_cursor(sequence: int) -> str:
    """`Filing.ingestCursor`: opaque, an ingest_seq inside (`position_of` reads it back)."""
    return base64.urlsafe_b64encode(f"ingest:{sequence}".encode()).decode()


def position_of(cursor: str) -> int:
    """The ingest_seq inside an `ingestCursor`."""
    try:
        kind, _, number = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind == "ingest" and number.isdigit():
            return int(number)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise UserInputError(f"{cursor[:64]!r} is not an ingestCursor.", argument="since")


async def filing_added(
    info: Info, tickers: list[str] | None, form_types: list[str] | None, since: str | None
) -> AsyncIterator[FilingRow]:
    """Counted against the connection's limit for as long as it runs."""
    context = info.context
    limit = context.max_subscriptions
    if limit is not None and context.subscriptions_open >= limit:
        raise GraphQLError(
            f"At most {limit} subscriptions per connection: complete one, "
            "or open another connection.",
            extensions={"code": "QUERY_LIMIT_EXCEEDED", "limit": "subscriptions"},
        )
    context.subscriptions_open += 1
    ACTIVE.inc()
    try:
        async for row in alerts_for(info, tickers, form_types, since):
            yield row
    finally:
        ACTIVE.dec()
        context.subscriptions_open -= 1


async def alerts_for(
    info: Info, tickers: list[str] | None, form_types: list[str] | None, since: str | None
) -> AsyncIterator[FilingRow]:
    context = info.context
    alerts, connection = context.alerts, context.connection
    assert alerts is not None and connection is not None, "served over WebSocket or SSE"
    since = connection.resume_point() or since
    after = position_of(since) if since is not None else None
    wanted_tickers = limit_list("tickers", [t.upper() for t in tickers] if tickers else None)
    wanted_types = limit_list("formTypes", form_types)
    loaders = context.loaders
    company_ids: set[int] | None = None
    if wanted_tickers is not None:
        companies = await loaders.company_by_ticker.load_many(list(wanted_tickers))
        company_ids = {company.id for company in companies if company is not None}

    def matches(row: FilingRow) -> bool:
        return (company_ids is None or row.company_id in company_ids) and (
            wanted_types is None or row.form_type in wanted_types
        )

    upto = alerts.position  # the live queue gets everything after this
    if upto is None:
        raise GraphQLError(
            "Filing alerts are starting; subscribe again in a moment.",
            extensions={"code": "SERVICE_UNAVAILABLE"},
        )
    if after is not None and after > upto and after > await last_ingested(loaders.db):
        raise UserInputError(
            "`since` is past the newest filing: resume after an `ingestCursor` you received.",
            argument="since",
        )
    subscriber = alerts.subscribe(matches)
    last = upto if after is None else after
    try:
        where = FilingFilter(form_types=wanted_types, tickers=wanted_tickers)
        while last < upto:  # replay: what was ingested after `since`, up to the live start
            rows = await ingested_after(loaders.db, last, upto, where, REPLAY_BATCH)
            if not rows:
                break
            for row in rows:
                last = row.ingest_seq
                connection.delivered(to_ingest_cursor(last))
                yield row
        while (live := await subscriber.next()) is not None:
            if live.ingest_seq <= last:
                continue
            last = live.ingest_seq
            loaders.forget()  # the previous event is resolved: start each one afresh
            connection.delivered(to_ingest_cursor(last))
            yield live
        if subscriber.overflowed:
            await connection.hang_up(SLOW_CONSUMER, TOO_SLOW)
        # else the server is stopping: it closes every connection once all are flushed
        await asyncio.Event().wait()  # until the connection's end cancels this
    finally:
        alerts.unsubscribe(subscriber)
