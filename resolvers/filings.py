"""Filings: one by accession number, the filtered filing list, and a company's filings."""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from loaders.filings import FilingFilter, FilingRow
from loaders.pagination import Page
from resolvers.companies import ticker_list
from resolvers.context import Info
from resolvers.errors import UserInputError, limit_list
from resolvers.pagination import Cursor, decode_cursor, encode_cursor, window

KIND = "filing"
RESOLUTION = timedelta(microseconds=1)  # PostgreSQL's timestamps: filedAt < asOf + 1 µs
ROOT_PAGE = 20
COMPANY_PAGE = 10


def cursor_of(row: FilingRow) -> str:
    return encode_cursor(KIND, (row.filed_at.isoformat(), row.accession_number))


def _parse(values: list[Any]) -> Cursor:
    filed_at, accession_number = values
    if not isinstance(accession_number, str):
        raise TypeError(accession_number)
    return (datetime.fromisoformat(filed_at), accession_number)


def instant(as_of: datetime | None) -> datetime | None:
    """An `asOf` with no time zone is in UTC, as every DateTime this API answers."""
    if as_of is None or as_of.tzinfo is not None:
        return as_of
    return as_of.replace(tzinfo=UTC)


def known_by(filed_before: datetime | None, as_of: datetime | None) -> datetime | None:
    """`filedBefore` narrowed to the filings filed at or before `as_of`."""
    as_of = instant(as_of)
    if as_of is None:
        return filed_before
    bound = as_of + RESOLUTION
    return bound if filed_before is None else min(instant(filed_before) or bound, bound)


def _decode(cursor: str, argument: str) -> Cursor:
    return decode_cursor(KIND, cursor, argument, _parse)


async def filing_by_accession(info: Info, accession_number: str) -> FilingRow | None:
    return await info.context.loaders.filing_by_accession.load(accession_number.strip())


async def filing_by_id(info: Info, filing_id: int) -> FilingRow | None:
    return await info.context.loaders.filing_by_id.load(filing_id)


async def filings(
    info: Info,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    tickers: list[str] | None,
    form_types: list[str] | None,
    filed_after: datetime | None,
    filed_before: datetime | None,
    as_of: datetime | None = None,
) -> tuple[Page[FilingRow], Callable[[], Awaitable[int]]]:
    if filed_after and filed_before and filed_after >= filed_before:
        raise UserInputError("`filedAfter` must be earlier than `filedBefore`.")
    before_then = known_by(filed_before, as_of)
    where = FilingFilter(
        limit_list("formTypes", form_types), ticker_list(tickers), filed_after, before_then
    )
    page_window = window(
        first,
        after,
        last,
        before,
        default=ROOT_PAGE,
        decode=_decode,
    )
    loaders = info.context.loaders
    loaders.note_instant(before_then)  # the loaders are keyed by the filter: noted here
    page = await loaders.filing_page_by_filter(page_window).load(where)
    return page, lambda: loaders.filing_count_by_filter.load(where)


async def company_filings(
    info: Info,
    company_id: int,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    form_types: list[str] | None,
    as_of: datetime | None = None,
) -> tuple[Page[FilingRow], Callable[[], Awaitable[int]]]:
    loaders = info.context.loaders
    where = FilingFilter(
        form_types=limit_list("formTypes", form_types), filed_before=known_by(None, as_of)
    )
    page_window = window(
        first,
        after,
        last,
        before,
        default=COMPANY_PAGE,
        decode=_decode,
    )
    page = await loaders.filings_by_company(page_window, where).load(company_id)
    return page, lambda: loaders.filing_count_by_company(where).load(company_id)
