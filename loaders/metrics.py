"""Reported metrics by filing and by company (time series), their revisions, and daily prices
by company.

A fact is one filing's value for one period; a later filing that reports the period again
(a comparative, an amendment) adds a revision. "As of" an instant, a period's value is its
latest revision reported at or before it: by `reported_at`, then by filing id (ingestion
order) for filings reported at the same instant.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, lru_cache
from typing import Any, NamedTuple

import orjson
from sqlalchemy import ColumnElement, Select, and_, bindparam, func, select, true
from sqlalchemy.dialects.postgresql import aggregate_order_by, distinct_on

from db.models import financial_metrics, stock_prices
from db.reader import Reader
from loaders.json_lists import Selection, json_object
from loaders.sql import align_many, any_of


class MetricRow(NamedTuple):
    company_id: int
    filing_id: int
    name: str
    value: float
    unit: str
    period_start: date | None
    period_end: date
    fiscal_year: int | None
    fiscal_period: str | None
    reported_at: datetime
    as_of: datetime | None = None  # read as of this instant: its revisions stop there


# a period of a company's metric: what its revisions share
PeriodKey = tuple[int, str, date, date | None]


class PriceRow(NamedTuple):
    company_id: int
    date: date
    open: float
    high: float
    low: float
    close: float
    volume: float


METRICS_TABLE = financial_metrics
JSON_STATEMENTS_KEPT = 256
metrics = financial_metrics.c
prices = stock_prices.c
METRIC_COLUMNS = [metrics[name] for name in MetricRow._fields if name != "as_of"]
REVISION_ORDER = [metrics.reported_at, metrics.filing_id]  # oldest first
PRICE_COLUMNS = [prices[name] for name in PriceRow._fields]


@dataclass(frozen=True)
class MetricFilter:
    names: tuple[str, ...] | None = None
    start: date | None = None  # inclusive, on period_end
    end: date | None = None  # inclusive, on period_end
    as_of: datetime | None = None  # each period's latest revision reported by then

    @property
    def shape(self) -> tuple[bool, bool, bool, bool]:
        values = (self.names, self.start, self.end, self.as_of)
        return tuple(value is not None for value in values)  # type: ignore[return-value]

    def params(self) -> dict[str, Any]:
        values = {
            "names": list(self.names) if self.names else None,
            "start": self.start,
            "end": self.end,
            "as_of": self.as_of,
        }
        return {name: value for name, value in values.items() if value is not None}


def span_filter(
    column: ColumnElement[Any], has_start: bool, has_end: bool
) -> list[ColumnElement[bool]]:
    conditions = []
    if has_start:
        conditions.append(column >= bindparam("start", type_=column.type))
    if has_end:
        conditions.append(column <= bindparam("end", type_=column.type))
    return conditions


def reported_by(has_as_of: bool) -> list[ColumnElement[bool]]:
    if not has_as_of:
        return []
    return [metrics.reported_at <= bindparam("as_of", type_=metrics.reported_at.type)]


def metric_filter(shape: tuple[bool, bool, bool, bool]) -> ColumnElement[bool]:
    has_names, has_start, has_end, has_as_of = shape
    conditions = [true(), *span_filter(metrics.period_end, has_start, has_end)]
    if has_names:
        conditions.append(any_of(metrics.name, "names"))
    return and_(*conditions, *reported_by(has_as_of))


@cache
def by_filing_statement(has_names: bool) -> Select[Any]:
    return (
        select(*METRIC_COLUMNS)
        .where(any_of(metrics.filing_id, "keys"), metric_filter((has_names, False, False, False)))
        .order_by(metrics.filing_id, metrics.name, metrics.period_end)  # the key: a total order
    )


async def metrics_by_filing(
    db: Reader, names: tuple[str, ...] | None, filing_ids: Sequence[int]
) -> list[list[MetricRow]]:
    params = {"keys": list(filing_ids), **MetricFilter(names).params()}
    rows = await db.fetch(by_filing_statement(names is not None), params)
    return align_many(filing_ids, [MetricRow(*row) for row in rows], lambda row: row.filing_id)


@lru_cache(maxsize=JSON_STATEMENTS_KEPT)  # one per selection: clients choose them
def json_by_filing_statement(has_names: bool, selection: Selection) -> Select[Any]:
    """Each filing's metrics as by_filing_statement orders them, as JSON texts (one per
    row), and whether all of them are trusted (loaders/json_lists.py)."""
    rendered = json_object(financial_metrics, selection)
    assert rendered is not None  # the caller asked for a selection that renders
    texts = aggregate_order_by(rendered.text, metrics.name, metrics.period_end)
    return (
        select(metrics.filing_id, func.array_agg(texts), func.bool_and(rendered.trusted))
        .where(any_of(metrics.filing_id, "keys"), metric_filter((has_names, False, False, False)))
        .group_by(metrics.filing_id)
    )


async def metrics_json_by_filing(
    db: Reader, names: tuple[str, ...] | None, selection: Selection, filing_ids: Sequence[int]
) -> list[list[orjson.Fragment] | None]:
    """metrics_by_filing's objects of `selection`, already JSON; None for a filing with a
    value only Python serializes right (or refuses)."""
    params = {"keys": list(filing_ids), **MetricFilter(names).params()}
    rows = await db.fetch(json_by_filing_statement(names is not None, selection), params)
    found = {
        filing_id: list(map(orjson.Fragment, texts)) if trusted else None
        for filing_id, texts, trusted in rows
    }
    return [found.get(filing_id, []) for filing_id in filing_ids]


@cache
def by_company_statement(shape: tuple[bool, bool, bool, bool]) -> Select[Any]:
    """Every reported value; as of an instant, each period's latest revision by then."""
    where = (any_of(metrics.company_id, "keys"), metric_filter(shape))
    if not shape[3]:
        return (
            select(*METRIC_COLUMNS)
            .where(*where)
            .order_by(
                metrics.company_id,
                metrics.period_end,
                metrics.name,
                metrics.period_start,
                metrics.filing_id,  # a restated value after the first: a total order
            )
        )
    period = (metrics.company_id, metrics.name, metrics.period_end, metrics.period_start)
    known = (
        select(*METRIC_COLUMNS)
        .where(*where)
        .ext(distinct_on(*period))
        .order_by(*period, *(column.desc() for column in REVISION_ORDER))
        .subquery()
    )
    return select(known).order_by(
        known.c.company_id, known.c.period_end, known.c.name, known.c.period_start
    )


async def metrics_by_company(
    db: Reader, where: MetricFilter, company_ids: Sequence[int]
) -> list[list[MetricRow]]:
    params = {"keys": list(company_ids), **where.params()}
    rows = await db.fetch(by_company_statement(where.shape), params)
    found = [MetricRow._make((*row, where.as_of)) for row in rows]
    return align_many(company_ids, found, lambda row: row.company_id)


def period_of(row: MetricRow) -> PeriodKey:
    return row.company_id, row.name, row.period_end, row.period_start


@cache
def revisions_statement(has_as_of: bool) -> Select[Any]:
    """The rows of the periods' companies, metrics and period ends (a superset of the periods
    asked for, which the caller picks out), oldest revision first."""
    period = (metrics.company_id, metrics.name, metrics.period_end, metrics.period_start)
    return (
        select(*METRIC_COLUMNS)
        .where(
            any_of(metrics.company_id, "companies"),
            any_of(metrics.name, "names"),
            any_of(metrics.period_end, "ends"),
            *reported_by(has_as_of),
        )
        .order_by(*period, *REVISION_ORDER)
    )


async def revisions_by_period(
    db: Reader, as_of: datetime | None, periods: Sequence[PeriodKey]
) -> list[list[MetricRow]]:
    """Every value reported for each period (by `as_of`, when given), oldest first."""
    params: dict[str, Any] = {
        "companies": sorted({key[0] for key in periods}),
        "names": sorted({key[1] for key in periods}),
        "ends": sorted({key[2] for key in periods}),
    }
    if as_of is not None:
        params["as_of"] = as_of
    rows = await db.fetch(revisions_statement(as_of is not None), params)
    wanted = set(periods)
    found = [MetricRow._make((*row, as_of)) for row in rows]
    return align_many(periods, [row for row in found if period_of(row) in wanted], period_of)


@cache
def prices_statement(has_start: bool, has_end: bool) -> Select[Any]:
    return (
        select(*PRICE_COLUMNS)
        .where(any_of(prices.company_id, "keys"), *span_filter(prices.date, has_start, has_end))
        .order_by(prices.company_id, prices.date)
    )


async def prices_by_company(
    db: Reader, span: tuple[date | None, date | None], company_ids: Sequence[int]
) -> list[list[PriceRow]]:
    start, end = span
    params = {"keys": list(company_ids), "start": start, "end": end}
    given = {name: value for name, value in params.items() if value is not None}
    rows = await db.fetch(prices_statement(start is not None, end is not None), given)
    return align_many(company_ids, [PriceRow(*row) for row in rows], lambda row: row.company_id)
