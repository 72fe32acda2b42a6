"""Companies by id, ticker and CIK; the filtered, paginated company list and its count."""

from collections.abc import Sequence
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, and_, bindparam, func, or_, select, true

from db.models import companies
from db.reader import Reader
from loaders.cache import EntityCache, read_through, shaped_kind
from loaders.pagination import Page, Window, keyset, page
from loaders.sql import align_one, any_of


class CompanyRow(NamedTuple):
    id: int
    ticker: str
    cik: str
    name: str
    sector: str | None
    industry: str | None


COLUMNS = [getattr(companies.c, name) for name in CompanyRow._fields]
BY_ID = select(*COLUMNS).where(any_of(companies.c.id, "keys"))
BY_TICKER = select(*COLUMNS).where(any_of(companies.c.ticker, "keys"))
BY_CIK = select(*COLUMNS).where(any_of(companies.c.cik, "keys"))
CACHE_KIND = shaped_kind("company:ticker", CompanyRow)


def _rows(raw: Sequence[Any]) -> list[CompanyRow]:
    return [CompanyRow(*row) for row in raw]


def _from_dict(data: dict[str, Any]) -> CompanyRow:
    return CompanyRow(**data)


async def company_by_id(db: Reader, ids: Sequence[int]) -> list[CompanyRow | None]:
    rows = _rows(await db.fetch(BY_ID, {"keys": list(ids)}))
    return align_one(ids, rows, lambda row: row.id)


async def _by_ticker(db: Reader, tickers: Sequence[str]) -> list[CompanyRow | None]:
    rows = _rows(await db.fetch(BY_TICKER, {"keys": list(tickers)}))
    return align_one(tickers, rows, lambda row: row.ticker)


async def company_by_ticker(
    db: Reader, cache: EntityCache | None, tickers: Sequence[str]
) -> list[CompanyRow | None]:
    async def load(keys: Sequence[str]) -> list[CompanyRow | None]:
        return await _by_ticker(db, keys)

    return await read_through(cache, CACHE_KIND, tickers, load, CompanyRow._asdict, _from_dict)


async def company_by_cik(db: Reader, ciks: Sequence[str]) -> list[CompanyRow | None]:
    rows = _rows(await db.fetch(BY_CIK, {"keys": list(ciks)}))
    return align_one(ciks, rows, lambda row: row.cik)


def company_filter(has_sector: bool, has_search: bool) -> ColumnElement[bool]:
    """`:search` matches a ticker prefix or a case-insensitive part of the name."""
    conditions: list[ColumnElement[bool]] = [true()]
    if has_sector:
        conditions.append(companies.c.sector == bindparam("sector"))
    if has_search:
        prefix = companies.c.ticker.like(bindparam("search_prefix"), escape="\\")
        part = companies.c.name.ilike(bindparam("search_part"), escape="\\")
        conditions.append(or_(prefix, part))
    return and_(*conditions)


def filter_params(sector: str | None, search: str | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if sector is not None:
        params["sector"] = sector
    if search:
        literal = like_literal(search)  # the client's % and _ match themselves
        params.update(search_prefix=f"{literal.upper()}%", search_part=f"%{literal}%")
    return params


def like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@cache
def page_statement(
    window_shape: tuple[bool, bool], has_sector: bool, has_search: bool
) -> Select[Any]:
    statement = select(*COLUMNS).where(company_filter(has_sector, has_search))
    return keyset(statement, [companies.c.ticker], False, window_shape)


@cache
def count_statement(has_sector: bool, has_search: bool) -> Select[Any]:
    return select(func.count()).select_from(companies).where(company_filter(has_sector, has_search))


class CompanyFilter(NamedTuple):
    sector: str | None
    search: str | None


async def company_page_by_filter(
    db: Reader, window: Window, filters: Sequence[CompanyFilter]
) -> list[Page[CompanyRow]]:
    """One statement per filter: a request rarely lists companies twice."""
    return [await _page(db, window, where) for where in filters]


async def _page(db: Reader, window: Window, where: CompanyFilter) -> Page[CompanyRow]:
    statement = page_statement(window.shape, where.sector is not None, bool(where.search))
    params = {**filter_params(*where), **window.params()}
    return page(_rows(await db.fetch(statement, params)), window)


async def company_count_by_filter(db: Reader, filters: Sequence[CompanyFilter]) -> list[int]:
    return [await _count(db, where) for where in filters]


async def _count(db: Reader, where: CompanyFilter) -> int:
    statement = count_statement(where.sector is not None, bool(where.search))
    rows = await db.fetch(statement, filter_params(*where))
    return int(rows[0][0])
