"""Filings by id and accession number; newest-first pages per company and overall; counts."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, ColumnElement, and_, bindparam, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import companies, filings
from loaders.cache import EntityCache, read_through
from loaders.pagination import Page, Window, keyset, page
from loaders.sql import align_many, align_one, any_of, fetch


class FilingRow(NamedTuple):
    id: int
    accession_number: str
    company_id: int
    form_type: str
    filed_at: datetime
    period_end: date | None
    fiscal_year: int | None
    fiscal_period: str | None
    title: str | None


@dataclass(frozen=True)
class FilingFilter:
    form_types: tuple[str, ...] | None = None
    tickers: tuple[str, ...] | None = None
    filed_after: datetime | None = None  # inclusive
    filed_before: datetime | None = None  # exclusive

    def condition(self) -> ColumnElement[bool]:
        conditions: list[ColumnElement[bool]] = [true()]
        if self.form_types is not None:
            conditions.append(any_of(filings.c.form_type, self.form_types))
        if self.tickers is not None:
            ids = select(companies.c.id).where(any_of(companies.c.ticker, self.tickers))
            conditions.append(filings.c.company_id.in_(ids.scalar_subquery()))
        if self.filed_after is not None:
            conditions.append(filings.c.filed_at >= self.filed_after)
        if self.filed_before is not None:
            conditions.append(filings.c.filed_at < self.filed_before)
        return and_(*conditions)


COLUMNS = [getattr(filings.c, name) for name in FilingRow._fields]
ORDER = [filings.c.filed_at, filings.c.accession_number]  # newest first


def _rows(raw: Sequence[Any]) -> list[FilingRow]:
    return [FilingRow(*row) for row in raw]


def _from_dict(data: dict[str, Any]) -> FilingRow:
    period_end = data["period_end"]
    return FilingRow(
        **{
            **data,
            "filed_at": datetime.fromisoformat(data["filed_at"]),
            "period_end": date.fromisoformat(period_end) if period_end else None,
        }
    )


async def filing_by_id(db: AsyncEngine, ids: Sequence[int]) -> list[FilingRow | None]:
    rows = _rows(await fetch(db, select(*COLUMNS).where(any_of(filings.c.id, ids))))
    return align_one(ids, rows, lambda row: row.id)


async def filing_by_accession(
    db: AsyncEngine, cache: EntityCache | None, numbers: Sequence[str]
) -> list[FilingRow | None]:
    async def load(keys: Sequence[str]) -> list[FilingRow | None]:
        statement = select(*COLUMNS).where(any_of(filings.c.accession_number, keys))
        return align_one(keys, _rows(await fetch(db, statement)), lambda r: r.accession_number)

    return await read_through(
        cache, "filing:accession", numbers, load, FilingRow._asdict, _from_dict
    )


async def filings_by_company(
    db: AsyncEngine, window: Window, where: FilingFilter, company_ids: Sequence[int]
) -> list[Page[FilingRow]]:
    """One statement for all companies: a LATERAL top-N per company over the keyset index."""
    parents = (
        func.unnest(bindparam(None, list(company_ids), type_=ARRAY(BigInteger)))
        .table_valued("company_id")
        .render_derived()
    )
    inner = select(*COLUMNS).where(filings.c.company_id == parents.c.company_id, where.condition())
    top = keyset(inner, ORDER, True, window).lateral()
    rows = _rows(await fetch(db, select(*top.c).select_from(parents).join(top, true())))
    grouped = align_many(company_ids, rows, lambda row: row.company_id)
    return [page(group, window) for group in grouped]


async def filing_count_by_company(
    db: AsyncEngine, where: FilingFilter, company_ids: Sequence[int]
) -> list[int]:
    statement = (
        select(filings.c.company_id, func.count())
        .where(any_of(filings.c.company_id, company_ids), where.condition())
        .group_by(filings.c.company_id)
    )
    counts = {company_id: count for company_id, count in await fetch(db, statement)}
    return [counts.get(company_id, 0) for company_id in company_ids]


async def filing_page(db: AsyncEngine, window: Window, where: FilingFilter) -> Page[FilingRow]:
    statement = keyset(select(*COLUMNS).where(where.condition()), ORDER, True, window)
    return page(_rows(await fetch(db, statement)), window)


async def filing_count(db: AsyncEngine, where: FilingFilter) -> int:
    statement = select(func.count()).select_from(filings).where(where.condition())
    return int((await fetch(db, statement))[0][0])
