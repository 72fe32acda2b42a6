"""Reported metrics by filing and by company (time series), and daily prices by company."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Row, Select, and_, bindparam, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import financial_metrics, stock_prices
from loaders.sql import align_many, any_of, fetch

METRIC_FIELDS = (
    "filing_id", "name", "value", "unit", "period_start", "period_end", "fiscal_year",
    "fiscal_period",
)  # fmt: skip
METRIC_COLUMNS = [financial_metrics.c[name] for name in ("company_id", *METRIC_FIELDS)]
PRICE_COLUMNS = [
    stock_prices.c[name]
    for name in ("company_id", "date", "open", "high", "low", "close", "volume")
]
metrics = financial_metrics.c
prices = stock_prices.c


@dataclass(frozen=True)
class MetricFilter:
    names: tuple[str, ...] | None = None
    start: date | None = None  # inclusive, on period_end
    end: date | None = None  # inclusive, on period_end

    @property
    def shape(self) -> tuple[bool, bool, bool]:
        return self.names is not None, self.start is not None, self.end is not None

    def params(self) -> dict[str, Any]:
        values = {
            "names": list(self.names) if self.names else None,
            "start": self.start,
            "end": self.end,
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


def metric_filter(shape: tuple[bool, bool, bool]) -> ColumnElement[bool]:
    has_names, has_start, has_end = shape
    conditions = [true(), *span_filter(metrics.period_end, has_start, has_end)]
    if has_names:
        conditions.append(any_of(metrics.name, "names"))
    return and_(*conditions)


@cache
def by_filing_statement(has_names: bool) -> Select[Any]:
    return (
        select(*METRIC_COLUMNS)
        .where(any_of(metrics.filing_id, "keys"), metric_filter((has_names, False, False)))
        .order_by(metrics.filing_id, metrics.name)
    )


async def metrics_by_filing(
    db: AsyncEngine, names: tuple[str, ...] | None, filing_ids: Sequence[int]
) -> list[list[Row[Any]]]:
    params = {"keys": list(filing_ids), **MetricFilter(names).params()}
    rows = await fetch(db, by_filing_statement(names is not None), params)
    return align_many(filing_ids, rows, lambda row: row.filing_id)


@cache
def by_company_statement(shape: tuple[bool, bool, bool]) -> Select[Any]:
    return (
        select(*METRIC_COLUMNS)
        .where(any_of(metrics.company_id, "keys"), metric_filter(shape))
        .order_by(metrics.company_id, metrics.period_end, metrics.name, metrics.period_start)
    )


async def metrics_by_company(
    db: AsyncEngine, where: MetricFilter, company_ids: Sequence[int]
) -> list[list[Row[Any]]]:
    params = {"keys": list(company_ids), **where.params()}
    rows = await fetch(db, by_company_statement(where.shape), params)
    return align_many(company_ids, rows, lambda row: row.company_id)


@cache
def prices_statement(has_start: bool, has_end: bool) -> Select[Any]:
    return (
        select(*PRICE_COLUMNS)
        .where(any_of(prices.company_id, "keys"), *span_filter(prices.date, has_start, has_end))
        .order_by(prices.company_id, prices.date)
    )


async def prices_by_company(
    db: AsyncEngine, span: tuple[date | None, date | None], company_ids: Sequence[int]
) -> list[list[Row[Any]]]:
    start, end = span
    params = {"keys": list(company_ids), "start": start, "end": end}
    statement = prices_statement(start is not None, end is not None)
    rows = await fetch(db, statement, {k: v for k, v in params.items() if v is not None})
    return align_many(company_ids, rows, lambda row: row.company_id)
