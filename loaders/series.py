"""Time series for analysis, one statement per batch: a metric per calendar bucket across
companies (keyed by ticker), and price bars per bucket (keyed by company).

Buckets are calendar periods named by their first day (weeks start on Monday). On plain
PostgreSQL they are `date_trunc`; with TimescaleDB `time_bucket`, whose default origins give
the same buckets, and the continuous aggregates of weekly and monthly price bars
(db/timescale.py, kept exact) answer when the requested span covers whole buckets. What kind
a metric is (an instant: no SUM) and its unit come from metric_kinds, not from its values.

A period reported twice (a comparative, an amendment) counts once: its latest revision, its
latest as of an instant (filed at or before it), or its first report (`Values`); revisions
are ordered by `reported_at`, then filing id, as in loaders/metrics.py.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any, Literal, NamedTuple

from sqlalchemy import BindParameter, TextClause, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.types import TIMESTAMP, BigInteger, Date, String

from db.reader import Reader
from db.timescale import PRICE_AGGREGATES
from loaders.metrics import PriceRow
from loaders.sql import align_many

Interval = Literal["DAY", "WEEK", "MONTH", "QUARTER", "YEAR"]
Aggregate = Literal["FIRST", "LAST", "MIN", "MAX", "AVG", "SUM"]
Basis = Literal["QUARTERLY", "ANNUAL"]
Values = Literal["LATEST", "AS_OF", "FIRST_REPORTED"]

EARLIEST, LATEST = date(1, 1, 1), date(9999, 12, 31)
TIMESCALE_WIDTH = {"WEEK": "1 week", "MONTH": "1 month", "QUARTER": "3 months", "YEAR": "1 year"}
AGGREGATE_SQL = {
    "FIRST": "(array_agg(value ORDER BY period_end, period_start))[1]",
    "LAST": "(array_agg(value ORDER BY period_end DESC, period_start DESC))[1]",
    "MIN": "min(value)",
    "MAX": "max(value)",
    "AVG": "avg(value)",
    "SUM": "sum(value)",
}
# Flows count by their length, whatever the filing calls them: a quarter is 80-100 days, a year
# 350-380 (a 10-Q's six- and nine-month year-to-date values belong to neither). Instants count
# at every quarter end, or at fiscal year ends only.
BASIS_SQL = {
    "QUARTERLY": "(period_start IS NULL OR period_end - period_start BETWEEN 80 AND 100)",
    "ANNUAL": "(CASE WHEN period_start IS NULL THEN fiscal_period = 'FY'"
    " ELSE period_end - period_start BETWEEN 350 AND 380 END)",
}


class Point(NamedTuple):
    period_start: date
    value: float
    reported: int  # values in the bucket


class MetricKind(NamedTuple):
    known: bool  # reported by some company, ever
    instant: bool  # a balance at a point in time (no period start): no SUM
    unit: str | None


@dataclass(frozen=True)
class TickerSeries:
    company_id: int
    ticker: str
    kind: MetricKind
    points: list[Point]


@dataclass(frozen=True)
class SeriesRequest:
    metric: str
    interval: Interval
    aggregate: Aggregate
    basis: Basis
    start: date | None
    end: date | None
    values: Values = "LATEST"
    as_of: datetime | None = None  # AS_OF, or FIRST_REPORTED by then


# which revision of a period counts, after DISTINCT ON (company_id, period_end, period_start)
REVISION_SQL = {
    "LATEST": "reported_at DESC, filing_id DESC",
    "AS_OF": "reported_at DESC, filing_id DESC",
    "FIRST_REPORTED": "reported_at, filing_id",
}


def bucket_sql(column: str, interval: Interval, timescale: bool) -> str:
    if interval == "DAY":
        return column
    if timescale:
        return f"time_bucket(INTERVAL '{TIMESCALE_WIDTH[interval]}', {column})"
    return f"date_trunc('{interval.lower()}', {column})::date"


# With TimescaleDB the span's bounds go through a cast that is the identity on dates but STABLE
# (date -> timestamptz -> date, in one session's time zone), which PostgreSQL does not fold while
# planning. Bare parameters let a custom plan (a prepared statement's first five executions, and
# every later one while custom plans look cheaper) exclude chunks while planning: about 1 ms for
# ten chunks, each time. With the bounds stable, custom and generic plans are alike, the generic
# one is kept (planned once per connection), and TimescaleDB excludes the chunks outside the
# span at executor startup instead.
SPAN_SQL = {
    False: ":start AND :end",
    True: "CAST(CAST(:start AS timestamptz) AS date) AND CAST(CAST(:end AS timestamptz) AS date)",
}


@cache
def metric_series_statement(
    interval: Interval,
    aggregate: Aggregate,
    basis: Basis,
    timescale: bool,
    values: Values = "LATEST",
    as_of: bool = False,
) -> TextClause:
    bucket = bucket_sql("period_end", interval, timescale)
    known = "AND reported_at <= :as_of" if as_of else ""
    statement = text(f"""
        WITH wanted AS (
            SELECT id, ticker FROM companies WHERE ticker = ANY(:keys)
        ), reported AS (
            SELECT DISTINCT ON (company_id, period_end, period_start)
                   company_id, period_end, period_start, value
            FROM financial_metrics
            WHERE company_id = ANY(ARRAY(SELECT id FROM wanted)) AND name = :metric
              AND period_end BETWEEN {SPAN_SQL[timescale]} AND {BASIS_SQL[basis]} {known}
            ORDER BY company_id, period_end, period_start, {REVISION_SQL[values]}
        ), buckets AS (
            SELECT company_id, {bucket} AS bucket, {AGGREGATE_SQL[aggregate]} AS value,
                   count(*) AS n
            FROM reported GROUP BY 1, 2
        ), kind AS (
            SELECT k.name IS NOT NULL AS known, coalesce(k.instant, false) AS instant, k.unit
            FROM (SELECT 1) one LEFT JOIN metric_kinds k ON k.name = :metric
        )
        SELECT w.id, w.ticker, k.known, k.instant, k.unit, b.bucket, b.value, b.n
        FROM kind k CROSS JOIN wanted w LEFT JOIN buckets b ON b.company_id = w.id
        ORDER BY w.ticker, b.bucket
    """)  # every interpolation: a fixed fragment above
    parameters: list[BindParameter[Any]] = [
        bindparam("keys", type_=ARRAY(String())),
        bindparam("metric", type_=String()),
        bindparam("start", type_=Date()),
        bindparam("end", type_=Date()),
    ]
    if as_of:
        parameters.append(bindparam("as_of", type_=TIMESTAMP(timezone=True)))
    return statement.bindparams(*parameters)


async def metric_series(
    db: Reader, request: SeriesRequest, tickers: Sequence[str]
) -> list[TickerSeries | None]:
    """Each ticker's series, or None for a ticker no company has."""
    statement = metric_series_statement(
        request.interval,
        request.aggregate,
        request.basis,
        db.timescale,
        request.values,
        request.as_of is not None,
    )
    params = {"keys": list(tickers), "metric": request.metric,
              "start": request.start or EARLIEST, "end": request.end or LATEST}  # fmt: skip
    if request.as_of is not None:
        params["as_of"] = request.as_of
    series: dict[str, TickerSeries] = {}
    rows = await db.fetch(statement, params)
    for company_id, ticker, known, instant, unit, bucket, value, count in rows:
        found = series.get(ticker)
        if found is None:  # a ticker's first row: its kind repeats on every other
            kind = MetricKind(known, instant, unit)
            found = series[ticker] = TickerSeries(company_id, ticker, kind, [])
        if bucket is not None:
            found.points.append(Point(bucket, value, count))
    return [series.get(ticker) for ticker in tickers]


def bucket_start(day: date, interval: Interval) -> date:
    if interval == "WEEK":
        return day - timedelta(days=day.weekday())
    if interval == "MONTH":
        return day.replace(day=1)
    if interval == "QUARTER":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    if interval == "YEAR":
        return day.replace(month=1, day=1)
    return day


def whole_buckets(interval: Interval, start: date | None, end: date | None) -> bool:
    """True when [start, end] cuts no bucket in two: then precomputed bars are exact."""
    if start is not None and bucket_start(start, interval) != start:
        return False
    if end is None or end == LATEST:
        return True
    after = end + timedelta(days=1)
    return bucket_start(after, interval) == after


@cache
def price_bars_statement(interval: Interval, source: str) -> TextClause:
    if source in PRICE_AGGREGATES.values():  # a continuous aggregate: bars are precomputed
        sql = f"""
            SELECT company_id, bucket, open, high, low, close, volume FROM {source}
            WHERE company_id = ANY(:keys) AND bucket BETWEEN :start AND :end
            ORDER BY company_id, bucket"""  # a fixed view name
    else:
        bucket = bucket_sql("date", interval, source == "timescale")
        sql = f"""
            SELECT company_id, {bucket} AS bucket,
                   (array_agg(open ORDER BY date))[1] AS open, max(high) AS high,
                   min(low) AS low, (array_agg(close ORDER BY date DESC))[1] AS close,
                   sum(volume) AS volume
            FROM stock_prices
            WHERE company_id = ANY(:keys) AND date BETWEEN :start AND :end
            GROUP BY 1, 2 ORDER BY 1, 2"""
    return text(sql).bindparams(
        bindparam("keys", type_=ARRAY(BigInteger())),
        bindparam("start", type_=Date()),
        bindparam("end", type_=Date()),
    )


def price_source(db: Reader, interval: Interval, start: date | None, end: date | None) -> str:
    aggregate = PRICE_AGGREGATES.get(interval)
    if db.timescale and aggregate and whole_buckets(interval, start, end):
        return aggregate
    return "timescale" if db.timescale else "postgres"


async def price_bars(
    db: Reader,
    interval: Interval,
    span: tuple[date | None, date | None],
    company_ids: Sequence[int],
) -> list[list[PriceRow]]:
    """OHLCV per bucket: open the first, close the last, high the highest, low the lowest,
    volume the sum; a bucket is named by its first day."""
    start, end = span
    statement = price_bars_statement(interval, price_source(db, interval, start, end))
    params = {"keys": list(company_ids), "start": start or EARLIEST, "end": end or LATEST}
    rows = [PriceRow(*row) for row in await db.fetch(statement, params)]
    return align_many(company_ids, rows, lambda row: row.company_id)
