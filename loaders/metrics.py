"""Reported metrics by filing and by company (time series), and daily prices by company."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import financial_metrics, stock_prices
from loaders.sql import align_many, any_of, fetch

METRIC_COLUMNS = [
    financial_metrics.c[name]
    for name in (
        "company_id",
        "filing_id",
        "name",
        "value",
        "unit",
        "period_start",
        "period_end",
        "fiscal_year",
        "fiscal_period",
    )
]
PRICE_COLUMNS = [
    stock_prices.c[name]
    for name in ("company_id", "date", "open", "high", "low", "close", "volume")
]


@dataclass(frozen=True)
class MetricFilter:
    names: tuple[str, ...] | None = None
    start: date | None = None  # inclusive, on period_end
    end: date | None = None  # inclusive, on period_end

    def condition(self) -> ColumnElement[bool]:
        conditions: list[ColumnElement[bool]] = [true()]
        if self.names is not None:
            conditions.append(any_of(financial_metrics.c.name, self.names))
        if self.start is not None:
            conditions.append(financial_metrics.c.period_end >= self.start)
        if self.end is not None:
            conditions.append(financial_metrics.c.period_end <= self.end)
        return and_(*conditions)


async def metrics_by_filing(
    db: AsyncEngine, names: tuple[str, ...] | None, filing_ids: Sequence[int]
) -> list[list[Row[Any]]]:
    statement = (
        select(*METRIC_COLUMNS)
        .where(any_of(financial_metrics.c.filing_id, filing_ids), MetricFilter(names).condition())
        .order_by(financial_metrics.c.filing_id, financial_metrics.c.name)
    )
    return align_many(filing_ids, await fetch(db, statement), lambda row: row.filing_id)


async def metrics_by_company(
    db: AsyncEngine, where: MetricFilter, company_ids: Sequence[int]
) -> list[list[Row[Any]]]:
    statement = (
        select(*METRIC_COLUMNS)
        .where(any_of(financial_metrics.c.company_id, company_ids), where.condition())
        .order_by(
            financial_metrics.c.company_id,
            financial_metrics.c.period_end,
            financial_metrics.c.name,
            financial_metrics.c.period_start,
        )
    )
    return align_many(company_ids, await fetch(db, statement), lambda row: row.company_id)


async def prices_by_company(
    db: AsyncEngine, span: tuple[date | None, date | None], company_ids: Sequence[int]
) -> list[list[Row[Any]]]:
    start, end = span
    conditions = [any_of(stock_prices.c.company_id, company_ids)]
    if start is not None:
        conditions.append(stock_prices.c.date >= start)
    if end is not None:
        conditions.append(stock_prices.c.date <= end)
    statement = (
        select(*PRICE_COLUMNS)
        .where(*conditions)
        .order_by(stock_prices.c.company_id, stock_prices.c.date)
    )
    return align_many(company_ids, await fetch(db, statement), lambda row: row.company_id)
