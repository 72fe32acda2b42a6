"""Filings by id and accession number; newest-first pages per company and overall; counts."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, cached_property
from typing import Any, NamedTuple

from sqlalchemy import BigInteger, ColumnElement, Select, and_, bindparam, func, select, true
from sqlalchemy.dialects.postgresql import ARRAY

from db.models import companies, filings
from db.reader import Reader
from loaders.cache import EntityCache, read_through, shaped_kind
from loaders.pagination import Page, Window, keyset, page
from loaders.sql import align_many, align_one, any_of


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
    summary: str | None
    ingest_seq: int
    document_key: str | None
    amends_id: int | None = None  # the filing it amends


@dataclass(frozen=True)
class FilingFilter:
    form_types: tuple[str, ...] | None = None
    tickers: tuple[str, ...] | None = None
    filed_after: datetime | None = None  # inclusive
    filed_before: datetime | None = None  # exclusive

    @cached_property
    def shape(self) -> tuple[bool, ...]:
        return tuple(value is not None for value in self.params_all())

    def params_all(self) -> tuple[Any, ...]:
        return (self.form_types, self.tickers, self.filed_after, self.filed_before)

    def params(self) -> dict[str, Any]:
        names = ("form_types", "tickers", "filed_after", "filed_before")
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in zip(names, self.params_all(), strict=True)
            if value is not None
        }


def filing_filter(shape: tuple[bool, ...]) -> ColumnElement[bool]:
    form_types, tickers, filed_after, filed_before = shape
    conditions: list[ColumnElement[bool]] = [true()]
    if form_types:
        conditions.append(any_of(filings.c.form_type, "form_types"))
    if tickers:
        ids = select(companies.c.id).where(any_of(companies.c.ticker, "tickers"))
        conditions.append(filings.c.company_id.in_(ids.scalar_subquery()))
    if filed_after:
        conditions.append(
            filings.c.filed_at >= bindparam("filed_after", type_=filings.c.filed_at.type)
        )
    if filed_before:
        conditions.append(
            filings.c.filed_at < bindparam("filed_before", type_=filings.c.filed_at.type)
        )
    return and_(*conditions)


COLUMNS = [getattr(filings.c, name) for name in FilingRow._fields]
ORDER = [filings.c.filed_at, filings.c.accession_number]  # newest first
BY_ID = select(*COLUMNS).where(any_of(filings.c.id, "keys"))
BY_ACCESSION = select(*COLUMNS).where(any_of(filings.c.accession_number, "keys"))


CACHE_KIND = shaped_kind("filing:accession", FilingRow)


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


async def filing_by_id(db: Reader, ids: Sequence[int]) -> list[FilingRow | None]:
    rows = _rows(await db.fetch(BY_ID, {"keys": list(ids)}))
    return align_one(ids, rows, lambda row: row.id)


async def filing_by_accession(
    db: Reader, cache: EntityCache | None, numbers: Sequence[str]
) -> list[FilingRow | None]:
    async def load(keys: Sequence[str]) -> list[FilingRow | None]:
        rows = _rows(await db.fetch(BY_ACCESSION, {"keys": list(keys)}))
        return align_one(keys, rows, lambda row: row.accession_number)

    return await read_through(cache, CACHE_KIND, numbers, load, FilingRow._asdict, _from_dict)


@cache
def per_company_statement(window_shape: tuple[bool, bool], where: tuple[bool, ...]) -> Select[Any]:
    """A LATERAL top-N per company over the keyset index, for all companies at once."""
    parents = (
        func.unnest(bindparam("company_ids", type_=ARRAY(BigInteger)))
        .table_valued("company_id")
        .render_derived()
    )
    inner = select(*COLUMNS).where(
        filings.c.company_id == parents.c.company_id, filing_filter(where)
    )
    top = keyset(inner, ORDER, True, window_shape).lateral()
    return select(*top.c).select_from(parents).join(top, true())


async def filings_by_company(
    db: Reader, window: Window, where: FilingFilter, company_ids: Sequence[int]
) -> list[Page[FilingRow]]:
    statement = per_company_statement(window.shape, where.shape)
    params = {"company_ids": list(company_ids), **where.params(), **window.params()}
    rows = _rows(await db.fetch(statement, params))
    grouped = align_many(company_ids, rows, lambda row: row.company_id)
    return [page(group, window) for group in grouped]


@cache
def count_per_company_statement(where: tuple[bool, ...]) -> Select[Any]:
    return (
        select(filings.c.company_id, func.count())
        .where(any_of(filings.c.company_id, "company_ids"), filing_filter(where))
        .group_by(filings.c.company_id)
    )


async def filing_count_by_company(
    db: Reader, where: FilingFilter, company_ids: Sequence[int]
) -> list[int]:
    statement = count_per_company_statement(where.shape)
    rows = await db.fetch(statement, {"company_ids": list(company_ids), **where.params()})
    counts = {company_id: count for company_id, count in rows}
    return [counts.get(company_id, 0) for company_id in company_ids]


@cache
def page_statement(window_shape: tuple[bool, bool], where: tuple[bool, ...]) -> Select[Any]:
    return keyset(select(*COLUMNS).where(filing_filter(where)), ORDER, True, window_shape)


@cache
def count_statement(where: tuple[bool, ...]) -> Select[Any]:
    return select(func.count()).select_from(filings).where(filing_filter(where))


async def filing_page_by_filter(
    db: Reader, window: Window, filters: Sequence[FilingFilter]
) -> list[Page[FilingRow]]:
    """One statement per filter: a request rarely lists filings twice."""
    return [await _page(db, window, where) for where in filters]


async def _page(db: Reader, window: Window, where: FilingFilter) -> Page[FilingRow]:
    statement = page_statement(window.shape, where.shape)
    rows = await db.fetch(statement, {**where.params(), **window.params()})
    return page(_rows(rows), window)


async def filing_count_by_filter(db: Reader, filters: Sequence[FilingFilter]) -> list[int]:
    return [await _count(db, where) for where in filters]


async def _count(db: Reader, where: FilingFilter) -> int:
    rows = await db.fetch(count_statement(where.shape), where.params())
    return int(rows[0][0])


@cache
def ingested_statement(where: tuple[bool, ...]) -> Select[Any]:
    """Filings in ingestion order, after one position and up to another: alerts and replay."""
    position = filings.c.ingest_seq
    return (
        select(*COLUMNS)
        .where(
            position > bindparam("after", type_=BigInteger),
            position <= bindparam("upto", type_=BigInteger),
            filing_filter(where),
        )
        .order_by(position)
        .limit(bindparam("limit", type_=BigInteger))
    )


async def ingested_after(
    db: Reader, after: int, upto: int, where: FilingFilter, limit: int = 500
) -> list[FilingRow]:
    statement = ingested_statement(where.shape)
    params = {"after": after, "upto": upto, "limit": limit, **where.params()}
    return _rows(await db.fetch(statement, params))


async def last_ingested(db: Reader) -> int:
    rows = await db.fetch(LAST_INGESTED)
    return int(rows[0][0] or 0)


LAST_INGESTED = select(func.max(filings.c.ingest_seq))
