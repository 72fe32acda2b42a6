"""Filing alerts end to end: the npm `graphql-ws` client subscribes on one `corpgraph serve`
process, filings are ingested through another, and the alerts arrive in order, none twice."""

import asyncio
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from db.engine import create_engine
from graph.transports.broker import CHECK_SECONDS
from resolvers.subscriptions import to_ingest_cursor
from tests.filings import ingest
from tests.node import Subscriber

pytestmark = pytest.mark.e2e


@pytest.fixture
def subscribe(client_tools: Path, servers: list[str]) -> Iterator[Any]:
    started: list[Subscriber] = []

    def start(variables: dict[str, Any], count: int, params: dict[str, str] | None = None,
              server: int = 0) -> Subscriber:  # fmt: skip
        subscriber = Subscriber(
            client_tools, f"ws://{servers[server]}/graphql", variables, count, params
        )
        started.append(subscriber)
        return subscriber

    yield start
    for subscriber in started:
        subscriber.close()


def test_an_alert_crosses_processes_with_its_filters(
    subscribe: Any, servers: list[str], writer: str
) -> None:
    alerts = subscribe({"tickers": ["aapl"], "formTypes": ["8-K"]}, count=1)
    alerts.connected()
    ingest(servers[1], writer, ticker="MSFT")  # another company
    ingest(servers[1], writer, form_type="10-Q")  # another form
    started = time.monotonic()
    expected = ingest(servers[1], writer)
    event = alerts.next(seconds=5)
    latency = time.monotonic() - started
    assert event == {"data": {"filingAdded": {
        "accessionNumber": expected["accessionNumber"], "formType": "8-K",
        "ingestCursor": expected["ingestCursor"], "company": {"ticker": "AAPL"}}}}  # fmt: skip
    assert latency < 2, latency  # the issue asks for a second; the shared machine gets slack


def test_reconnecting_with_since_replays_then_goes_live(
    subscribe: Any, servers: list[str], writer: str
) -> None:
    since = ingest(servers[1], writer)["ingestCursor"]
    missed = [ingest(servers[1], writer)["accessionNumber"] for _ in range(5)]
    alerts = subscribe({"tickers": ["AAPL"], "since": since}, count=7)
    assert alerts.next() == {"connected": True}
    replayed = [alerts.next()["data"]["filingAdded"]["accessionNumber"] for _ in range(5)]
    assert replayed == missed
    time.sleep(0.5)
    live = [ingest(servers[1], writer)["accessionNumber"] for _ in range(2)]
    received = [alerts.next()["data"]["filingAdded"]["accessionNumber"] for _ in range(2)]
    assert received == live


def test_ingesting_the_same_filing_again_alerts_nobody(
    subscribe: Any, servers: list[str], writer: str
) -> None:
    alerts = subscribe({"tickers": ["AAPL"]}, count=2)
    alerts.connected()
    first = ingest(servers[1], writer)
    again = ingest(servers[0], writer, number=first["accessionNumber"])  # the other process
    assert again == first
    second = ingest(servers[1], writer)
    received = [alerts.next()["data"]["filingAdded"]["accessionNumber"] for _ in range(2)]
    assert received == [first["accessionNumber"], second["accessionNumber"]]


def test_a_commit_without_a_notification_still_alerts(subscribe: Any, database_url: str) -> None:
    """A notification lost with its connection loses no alert: each process's broker also
    reads the table on its own every few seconds, from where it left off."""
    on_each = [subscribe({"tickers": ["MSFT"]}, count=1, server=server) for server in (0, 1)]
    for alerts in on_each:
        alerts.connected()

    async def commit_quietly() -> None:  # as if the NOTIFY never arrived
        engine = create_engine(database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(
                    "INSERT INTO filings (accession_number, company_id, form_type, filed_at)"
                    " SELECT '0000789019-26-799999', id, '8-K', now() FROM companies"
                    " WHERE ticker = 'MSFT'"))  # fmt: skip
        finally:
            await engine.dispose()

    asyncio.run(commit_quietly())
    for alerts in on_each:
        event = alerts.next(seconds=CHECK_SECONDS + 5)
        assert event["data"]["filingAdded"]["accessionNumber"] == "0000789019-26-799999"


def test_anonymous_subscribes_a_bad_key_is_closed_with_4403(
    subscribe: Any, servers: list[str]
) -> None:
    refused = subscribe({}, count=1, params={"authorization": "Bearer cg_not_a_key"})
    assert refused.next() == {"closed": 4403}


def test_only_subscriptions_run_over_websocket(client_tools: Path, servers: list[str]) -> None:
    query = '{ company(ticker: "AAPL") { name } }'
    done = subprocess.run(
        ["node", str(client_tools / "subscribe.mjs"), f"ws://{servers[0]}/graphql", query,
         "{}", "1"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    lines = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert lines[0] == {"connected": True}
    assert "Only subscriptions run over WebSocket" in str(lines[1]["error"])


TICKERS = ("AAPL", "MSFT", "NVDA", "AMZN")
FORMS = ("8-K", "10-Q", "10-K")


def latest_cursor(database_url: str) -> str:
    async def latest() -> int:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                return int(await conn.scalar(text("SELECT max(ingest_seq) FROM filings")) or 0)
        finally:
            await engine.dispose()

    return to_ingest_cursor(asyncio.run(latest()))


def test_200_subscribers_each_get_exactly_their_filings(
    client_tools: Path, servers: list[str], writer: str, database_url: str
) -> None:
    # from now: a subscription that a busy server registers only after the first filings were
    # ingested still gets them (replayed), so "ready" needs no exact moment
    since = latest_cursor(database_url)
    filters: list[dict[str, Any]] = []
    for index in range(200):  # every combination of some tickers and some forms, and none
        tickers = [t for bit, t in enumerate(TICKERS) if index >> bit & 1]
        forms = [f for bit, f in enumerate(FORMS) if index >> (bit + 4) & 1]
        filters.append({**({"tickers": tickers} if tickers else {}),
                        **({"formTypes": forms} if forms else {}), "since": since})  # fmt: skip
    fanout = subprocess.Popen(
        ["node", str(client_tools / "fanout.mjs"),
         ",".join(f"ws://{server}/graphql" for server in servers), orjson.dumps(filters).decode()],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert fanout.stdout is not None and fanout.stdin is not None
        assert orjson.loads(fanout.stdout.readline()) == {"ready": 200}
        ingested = [
            (ingest(servers[i % 2], writer, ticker, form)["accessionNumber"], ticker, form)
            for i, (ticker, form) in enumerate((t, f) for t in TICKERS for f in FORMS)
        ]
        time.sleep(2)  # the last alerts reach everyone
        fanout.stdin.write("done\n")
        fanout.stdin.flush()
        received = orjson.loads(fanout.stdout.readline())["received"]
    finally:
        fanout.kill()
        fanout.wait(10)
        for pipe in (fanout.stdin, fanout.stdout):
            if pipe is not None:
                pipe.close()
    for wanted, got in zip(filters, received, strict=True):
        expected = [
            number for number, ticker, form in ingested
            if ticker in wanted.get("tickers", TICKERS) and form in wanted.get("formTypes", FORMS)
        ]  # fmt: skip
        assert got == expected, wanted
