"""Companies by id, ticker and CIK; the filtered, paginated company list and its count."""

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import companies
from loaders.cache import EntityCache, read_through
from loaders.pagination import Page, Window, keyset, page
from loaders.sql import align_one, any_of, fetch


class CompanyRow(NamedTuple):
    id: int
    ticker: str
    cik: str
    name: str
    sector: str | None
    industry: str | None


COLUMNS = [getattr(companies.c, name) for name in CompanyRow._fields]


def _rows(raw: Sequence[Any]) -> list[CompanyRow]:
    return [CompanyRow(*row) for row in raw]


def _from_dict(data: dict[str, Any]) -> CompanyRow:
    return CompanyRow(**data)


async def company_by_id(db: AsyncEngine, ids: Sequence[int]) -> list[CompanyRow | None]:
    rows = _rows(await fetch(db, select(*COLUMNS).where(any_of(companies.c.id, ids))))
    return align_one(ids, rows, lambda row: row.id)


async def _by_ticker(db: AsyncEngine, tickers: Sequence[str]) -> list[CompanyRow | None]:
    rows = _rows(await fetch(db, select(*COLUMNS).where(any_of(companies.c.ticker, tickers))))
    return align_one(tickers, rows, lambda row: row.ticker)


async def company_by_ticker(
    db: AsyncEngine, cache: EntityCache | None, tickers: Sequence[str]
) -> list[CompanyRow | None]:
    async def load(keys: Sequence[str]) -> list[CompanyRow | None]:
        return await _by_ticker(db, keys)

    return await read_through(
        cache, "company:ticker", tickers, load, CompanyRow._asdict, _from_dict
    )


async def company_by_cik(db: AsyncEngine, ciks: Sequence[str]) -> list[CompanyRow | None]:
    rows = _rows(await fetch(db, select(*COLUMNS).where(any_of(companies.c.cik, ciks))))
    return align_one(ciks, rows, lambda row: row.cik)


def company_filter(sector: str | None, search: str | None) -> ColumnElement[bool]:
    """`search` matches a ticker prefix or a case-insensitive part of the name."""
    conditions: list[ColumnElement[bool]] = [true()]
    if sector is not None:
        conditions.append(companies.c.sector == sector)
    if search:
        conditions.append(
            or_(
                companies.c.ticker.startswith(search.upper(), autoescape=True),
                companies.c.name.icontains(search, autoescape=True),
            )
        )
    return and_(*conditions)


async def company_page(
    db: AsyncEngine, window: Window, sector: str | None, search: str | None
) -> Page[CompanyRow]:
    statement = select(*COLUMNS).where(company_filter(sector, search))
    rows = await fetch(db, keyset(statement, [companies.c.ticker], False, window))
    return page(_rows(rows), window)


async def company_count(db: AsyncEngine, sector: str | None, search: str | None) -> int:
    statement = select(func.count()).select_from(companies).where(company_filter(sector, search))
    rows = await fetch(db, statement)
    return int(rows[0][0])
