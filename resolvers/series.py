"""Metric series across companies and a company's price bars per bucket: what may be asked."""

from datetime import date, datetime

from db.ingest import METRIC_NAME
from loaders.metrics import PriceRow
from loaders.series import Aggregate, Basis, Interval, SeriesRequest, TickerSeries, Values
from resolvers.companies import ticker_list
from resolvers.context import Info
from resolvers.errors import UserInputError
from resolvers.filings import instant
from resolvers.metrics import span

MAX_TICKERS = 100


async def metric_series(
    info: Info,
    tickers: list[str],
    metric: str,
    *,
    start: date | None,
    end: date | None,
    interval: Interval,
    aggregate: Aggregate,
    basis: Basis,
    values: Values | None = None,
    as_of: datetime | None = None,
) -> list[TickerSeries]:
    wanted = ticker_list(tickers, MAX_TICKERS)
    if not wanted:
        raise UserInputError("`tickers` needs at least one ticker.", argument="tickers")
    if interval == "DAY":
        raise UserInputError(
            "Metrics are reported per quarter or year: bucket a series by WEEK, MONTH, QUARTER "
            "or YEAR.",
            argument="interval",
        )
    if not METRIC_NAME.fullmatch(metric):
        raise UserInputError(f"{metric[:64]!r} is not a metric name.", argument="metric")
    as_of = instant(as_of)
    chosen = revision_of(values, as_of)
    request = SeriesRequest(metric, interval, aggregate, basis, *span(start, end), chosen, as_of)
    found = await info.context.loaders.metric_series(request).load_many(list(wanted))
    unknown = [ticker for ticker, series in zip(wanted, found, strict=True) if series is None]
    if unknown:
        message = f"No company has the ticker {', '.join(unknown[:10])}."
        raise UserInputError(message, argument="tickers")
    series = [s for s in found if s is not None]
    kind = series[0].kind
    if not kind.known:
        raise UserInputError(f"No company reports a metric named {metric!r}.", argument="metric")
    if aggregate == "SUM" and kind.instant:
        raise UserInputError(
            f"{metric} is a balance at a point in time: adding balances up means nothing. "
            "Use FIRST, LAST, MIN, MAX or AVG.",
            argument="aggregate",
        )
    return series


def revision_of(values: Values | None, as_of: datetime | None) -> Values:
    """AS_OF when `asOf` is given, else LATEST, unless asked; LATEST is of now."""
    if values is None:
        return "LATEST" if as_of is None else "AS_OF"
    if values == "AS_OF" and as_of is None:
        raise UserInputError(
            "AS_OF values need `asOf`: the instant to read as of.", argument="asOf"
        )
    if values == "LATEST" and as_of is not None:
        raise UserInputError(
            "LATEST values are the latest known now: drop `asOf`, or ask for AS_OF.",
            argument="values",
        )
    return values


async def price_series(
    info: Info, company_id: int, *, start: date | None, end: date | None, interval: Interval
) -> list[PriceRow]:
    loader = info.context.loaders.price_bars(interval, span(start, end))
    return await loader.load(company_id)
