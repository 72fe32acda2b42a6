"""Reported metrics by filing and by company (time series), and daily prices by company."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from functools import cache
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Select, and_, bindparam, select, true

from db.models import financial_metrics, stock_prices
from db.reader import Reader
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


class PriceRow(NamedTuple):
    company_id: int
    date: date
    open: float
    high: float
    low: float
    close: float
    volume: float


metrics = financial_metrics.c
prices = stock_prices.c
METRIC_COLUMNS = [metrics[name] for name in MetricRow._fields]
PRICE_COLUMNS = [prices[name] for name in PriceRow._fields]


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
        .order_by(metrics.filing_id, metrics.name, metrics.period_end)  # the key: a total order
    )


async def metrics_by_filing(
    db: Reader, names: tuple[str, ...] | None, filing_ids: Sequence[int]
) -> list[list[MetricRow]]:
    params = {"keys": list(filing_ids), **MetricFilter(names).params()}
    rows = await db.fetch(by_filing_statement(names is not None), params)
    return align_many(filing_ids, [MetricRow(*row) for row in rows], lambda row: row.filing_id)


@cache
def by_company_statement(shape: tuple[bool, bool, bool]) -> Select[Any]:
    return (
        select(*METRIC_COLUMNS)
        .where(any_of(metrics.company_id, "keys"), metric_filter(shape))
        .order_by(
            metrics.company_id,
            metrics.period_end,
            metrics.name,
            metrics.period_start,
            metrics.filing_id,  # a restated value after the first: a total order
        )
    )


async def metrics_by_company(
    db: Reader, where: MetricFilter, company_ids: Sequence[int]
) -> list[list[MetricRow]]:
    params = {"keys": list(company_ids), **where.params()}
    rows = await db.fetch(by_company_statement(where.shape), params)
    return align_many(company_ids, [MetricRow(*row) for row in rows], lambda row: row.company_id)


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
