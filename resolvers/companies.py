"""Companies: one by ticker or CIK, and the filtered company list."""

from collections.abc import Awaitable, Callable
from typing import Any

from loaders.companies import CompanyFilter, CompanyRow
from loaders.pagination import Page
from resolvers.context import Info
from resolvers.errors import MAX_LIST_VALUES, UserInputError, limit_list
from resolvers.pagination import Cursor, decode_cursor, encode_cursor, window

KIND = "company"
DEFAULT_PAGE = 20


def cursor_of(row: CompanyRow) -> str:
    return encode_cursor(KIND, (row.ticker,))


def _parse(values: list[Any]) -> Cursor:
    (ticker,) = values
    if not isinstance(ticker, str):
        raise TypeError(ticker)
    return (ticker,)


def _decode(cursor: str, argument: str) -> Cursor:
    return decode_cursor(KIND, cursor, argument, _parse)


def normalized_ticker(ticker: str) -> str:
    return ticker.strip().upper()


def ticker_list(
    tickers: list[str] | None, maximum: int = MAX_LIST_VALUES
) -> tuple[str, ...] | None:
    """Tickers as companies are keyed (trimmed, upper case), deduplicated and bounded."""
    if tickers is None:
        return None
    return limit_list("tickers", [normalized_ticker(ticker) for ticker in tickers], maximum)


async def company_by_ticker(info: Info, ticker: str) -> CompanyRow | None:
    return await info.context.loaders.company_by_ticker.load(normalized_ticker(ticker))


async def company_by_cik(info: Info, cik: str) -> CompanyRow | None:
    if not cik.strip().isdigit() or len(cik.strip()) > 10:
        raise UserInputError(f"`cik` must be up to 10 digits, received {cik[:32]!r}.")
    return await info.context.loaders.company_by_cik.load(cik.strip().zfill(10))


async def company_by_id(info: Info, company_id: int) -> CompanyRow:
    row = await info.context.loaders.company_by_id.load(company_id)
    assert row is not None, f"company {company_id} is referenced but missing"
    return row


async def companies(
    info: Info,
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    sector: str | None,
    search: str | None,
) -> tuple[Page[CompanyRow], Callable[[], Awaitable[int]]]:
    context = info.context
    page_window = window(
        first,
        after,
        last,
        before,
        default=DEFAULT_PAGE,
        decode=_decode,
    )
    loaders, where = context.loaders, CompanyFilter(sector, search)
    page = await loaders.company_page_by_filter(page_window).load(where)
    return page, lambda: loaders.company_count_by_filter.load(where)
