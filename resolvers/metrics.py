"""Reported metrics of a filing or a company, and a company's daily prices."""

from collections.abc import Awaitable
from datetime import date, datetime

import orjson

from loaders.json_lists import Selection
from loaders.metrics import MetricFilter, MetricRow, PriceRow, period_of
from resolvers.context import Info
from resolvers.errors import UserInputError, limit_list
from resolvers.filings import instant


def span(start: date | None, end: date | None) -> tuple[date | None, date | None]:
    if start is not None and end is not None and start > end:
        raise UserInputError(f"`from` ({start}) is after `to` ({end}).", argument="from")
    return start, end


async def filing_metrics(info: Info, filing_id: int, names: list[str] | None) -> list[MetricRow]:
    loader = info.context.loaders.metrics_by_filing(limit_list("names", names))
    return await loader.load(filing_id)


def filing_metrics_json(
    info: Info, filing_id: int, names: list[str] | None, selection: Selection
) -> "Awaitable[list[orjson.Fragment] | None]":
    """filing_metrics' objects of `selection` as JSON (graph/execution/compiled.py), or None. The
    DataLoader's future itself, not a coroutine: a level awaits a hundred of them together,
    and a coroutine would cost a task each."""
    loader = info.context.loaders.metrics_json_by_filing(limit_list("names", names), selection)
    return loader.load(filing_id)


async def company_metrics(
    info: Info,
    company_id: int,
    *,
    names: list[str] | None,
    start: date | None,
    end: date | None,
    as_of: datetime | None = None,
) -> list[MetricRow]:
    where = MetricFilter(limit_list("names", names), *span(start, end), instant(as_of))
    return await info.context.loaders.metrics_by_company(where).load(company_id)


async def revisions(info: Info, metric: MetricRow) -> list[MetricRow]:
    """Every value reported for the metric's period, oldest first; as of the instant the
    metric was read as of, when it was."""
    loader = info.context.loaders.revisions_by_period(metric.as_of)
    return await loader.load(period_of(metric))


async def company_prices(
    info: Info, company_id: int, *, start: date | None, end: date | None
) -> list[PriceRow]:
    return await info.context.loaders.prices_by_company(span(start, end)).load(company_id)
