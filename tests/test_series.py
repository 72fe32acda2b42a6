"""Metric series and price bars per calendar bucket, against a straightforward Python
computation over the same rows: every interval, aggregate and basis; one statement for 50
tickers; and the inputs that make no sense."""

import asyncio
import statistics
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, timedelta
from itertools import product
from typing import Any

import asyncpg
import pytest

from tests.conftest import BOTH_PATHS, Query, StatementLog

STORAGE_PATHS = BOTH_PATHS  # tests/conftest.py: plain PostgreSQL, and TimescaleDB

TICKERS = ["AAPL", "MSFT", "JPM", "NVDA", "AVGO"]
INTERVALS = ["WEEK", "MONTH", "QUARTER", "YEAR"]
AGGREGATES = ["FIRST", "LAST", "MIN", "MAX", "AVG", "SUM"]
SERIES = """query($tickers: [String!]!, $metric: String!, $interval: Interval!,
                  $aggregate: Aggregate, $basis: Basis, $from: Date, $to: Date) {
  metricSeries(tickers: $tickers, metric: $metric, interval: $interval, aggregate: $aggregate,
               basis: $basis, from: $from, to: $to) {
    ticker metric unit points { periodStart value count } } }"""
BARS = """query($ticker: String!, $interval: Interval!, $from: Date, $to: Date) {
  company(ticker: $ticker) {
    priceSeries(interval: $interval, from: $from, to: $to) {
      date open high low close volume } } }"""


def first_day(day: date, interval: str) -> date:
    if interval == "DAY":
        return day
    if interval == "WEEK":
        return day - timedelta(days=day.isoweekday() - 1)
    month = {"MONTH": day.month, "QUARTER": 1 + 3 * ((day.month - 1) // 3), "YEAR": 1}[interval]
    return date(day.year, month, 1)


def fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async def run() -> list[asyncpg.Record]:
        connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        try:
            return list(await connection.fetch(sql, *args))
        finally:
            await connection.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def reported(database_url: str) -> dict[str, list[asyncpg.Record]]:
    """Every reported value of the tickers, by metric."""
    rows = fetch(
        database_url,
        """SELECT c.ticker, m.name, m.period_start, m.period_end, m.value, m.fiscal_period,
                  m.filing_id
           FROM financial_metrics m JOIN companies c ON c.id = m.company_id
           WHERE c.ticker = ANY($1)""",
        TICKERS,
    )
    by_metric: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in rows:
        by_metric[row["name"]].append(row)
    return by_metric


def in_basis(row: asyncpg.Record, basis: str) -> bool:
    if row["period_start"] is None:
        return basis == "QUARTERLY" or bool(row["fiscal_period"] == "FY")
    days: int = (row["period_end"] - row["period_start"]).days
    return 80 <= days <= 100 if basis == "QUARTERLY" else 350 <= days <= 380


AGGREGATE: dict[str, Callable[[list[float]], float]] = {
    "FIRST": lambda values: values[0],
    "LAST": lambda values: values[-1],
    "MIN": min,
    "MAX": max,
    "AVG": statistics.fmean,
    "SUM": sum,
}


def expected_series(
    rows: Iterable[asyncpg.Record], interval: str, aggregate: str, basis: str
) -> dict[str, list[tuple[date, float, int]]]:
    latest: dict[tuple[Any, ...], asyncpg.Record] = {}
    for row in sorted((r for r in rows if in_basis(r, basis)), key=lambda r: r["filing_id"]):
        latest[row["ticker"], row["period_end"], row["period_start"]] = row  # the last report
    buckets: dict[str, dict[date, list[asyncpg.Record]]] = defaultdict(lambda: defaultdict(list))
    for row in latest.values():
        buckets[row["ticker"]][first_day(row["period_end"], interval)].append(row)
    series = {}
    for ticker, by_bucket in buckets.items():
        points = []
        for start in sorted(by_bucket):
            ordered = sorted(by_bucket[start], key=lambda r: (r["period_end"], r["period_start"]))
            values = [row["value"] for row in ordered]
            points.append((start, AGGREGATE[aggregate](values), len(values)))
        series[ticker] = points
    return series


def assert_same(got: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> None:
    """Dates and counts exactly; values to a relative 1e-9 (PostgreSQL's sums and averages
    add in their own order)."""
    exact = [[v for v in row if not isinstance(v, float)] for row in got]
    assert exact == [[v for v in row if not isinstance(v, float)] for row in expected]
    numbers = [v for row in got for v in row if isinstance(v, float)]
    assert numbers == pytest.approx([v for row in expected for v in row if isinstance(v, float)])


def got_series(answer: dict[str, Any]) -> dict[str, list[tuple[date, float, int]]]:
    assert "errors" not in answer, answer["errors"]
    return {
        series["ticker"]: [
            (date.fromisoformat(p["periodStart"]), p["value"], p["count"]) for p in series["points"]
        ]
        for series in answer["data"]["metricSeries"]
    }


@pytest.mark.parametrize("basis", ["QUARTERLY", "ANNUAL"])
@pytest.mark.parametrize("metric", ["revenue", "total_assets"])
def test_metric_series_equal_a_python_computation(
    gql: Query, reported: dict[str, list[asyncpg.Record]], metric: str, basis: str
) -> None:
    for interval, aggregate in product(INTERVALS, AGGREGATES):
        if aggregate == "SUM" and metric == "total_assets":
            continue  # an instant: refused, below
        variables = {"tickers": TICKERS, "metric": metric, "interval": interval,
                     "aggregate": aggregate, "basis": basis}  # fmt: skip
        got = got_series(gql(SERIES, variables))
        expected = expected_series(reported[metric], interval, aggregate, basis)
        assert list(got) == TICKERS
        for ticker in TICKERS:
            assert_same(got[ticker], expected[ticker])


def test_a_year_of_quarters_is_never_the_annual_figure_twice(gql: Query) -> None:
    variables = {"tickers": ["AAPL"], "metric": "revenue", "interval": "YEAR", "aggregate": "SUM"}
    quarterly = got_series(gql(SERIES, {**variables, "basis": "QUARTERLY"}))["AAPL"]
    annual = got_series(gql(SERIES, {**variables, "basis": "ANNUAL"}))["AAPL"]
    assert all(count <= 4 for _, _, count in quarterly)  # Q1-Q3 (Q4 has no 10-Q)
    assert all(count == 1 for _, _, count in annual)
    by_year = {start: value for start, value, _ in annual}
    for start, value, _ in quarterly:
        if start in by_year:
            assert value < by_year[start]  # three quarters, not a year plus its quarters


def test_the_span_bounds_period_ends(gql: Query, reported: dict[str, list[Any]]) -> None:
    variables = {"tickers": ["MSFT"], "metric": "revenue", "interval": "QUARTER",
                 "from": "2024-01-01", "to": "2024-12-31"}  # fmt: skip
    got = got_series(gql(SERIES, variables))["MSFT"]
    rows = [
        r for r in reported["revenue"] if date(2024, 1, 1) <= r["period_end"] <= date(2024, 12, 31)
    ]
    assert_same(got, expected_series(rows, "QUARTER", "LAST", "QUARTERLY")["MSFT"])
    assert got and all(date(2024, 1, 1) <= start <= date(2024, 12, 31) for start, _, _ in got)


def test_a_period_reported_twice_answers_from_its_latest_filing(
    gql: Query, database_url: str
) -> None:
    """A restatement: two filings report one quarter with different values. It counts once,
    with the value of the later filing, whichever of the two the de-duplication meets first
    (on TimescaleDB the chunks' rows come unsorted; a quarter in a new chunk here)."""
    quarter = (date(2031, 1, 1), date(2031, 3, 31))
    statements = [
        """INSERT INTO filings (accession_number, company_id, form_type, filed_at)
           SELECT 'restated-' || n, c.id, '10-Q', timestamptz '2031-04-20' + n * interval '90 days'
           FROM companies c, generate_series(1, 2) n WHERE c.ticker = 'IBM'""",
        """INSERT INTO financial_metrics (company_id, filing_id, name, period_end, period_start,
                                          value, unit, fiscal_year, fiscal_period, reported_at)
           SELECT f.company_id, f.id, 'revenue', $2, $1,
                  CASE f.accession_number WHEN 'restated-1' THEN 100.0 ELSE 125.0 END,
                  'USD', 2031, 'Q1', f.filed_at
           FROM filings f WHERE f.accession_number LIKE 'restated-%'
           ORDER BY f.id DESC""",  # the later filing's row first: heap order is no answer
    ]
    variables = {"tickers": ["IBM"], "metric": "revenue", "interval": "QUARTER",
                 "aggregate": "LAST", "basis": "QUARTERLY",
                 "from": "2031-01-01", "to": "2031-12-31"}  # fmt: skip
    try:
        fetch(database_url, statements[0])
        fetch(database_url, statements[1], *quarter)
        for aggregate in ("LAST", "FIRST", "MIN", "SUM"):
            answer = gql(SERIES, {**variables, "aggregate": aggregate})
            assert got_series(answer) == {"IBM": [(date(2031, 1, 1), 125.0, 1)]}, aggregate
    finally:
        fetch(database_url, "DELETE FROM filings WHERE accession_number LIKE 'restated-%'")


def test_the_index_by_metric_name_is_on_the_hypertable_only(
    backend: str, database_url: str
) -> None:
    """Migration 0007: chunks of a year are read by metric name first; one plain table keeps
    its indexes (and plans) as they were."""
    indexes = fetch(
        database_url,
        "SELECT indexname FROM pg_indexes WHERE tablename = 'financial_metrics'"
        " AND indexname = 'ix_financial_metrics_name_company_id_period_end'",
    )
    assert len(indexes) == (1 if backend == "timescale" else 0)


def test_fifty_tickers_take_one_statement(gql: Query, sql: StatementLog) -> None:
    page = gql("{ companies(first: 50) { nodes { ticker } } }")["data"]["companies"]["nodes"]
    tickers = [node["ticker"] for node in page]
    assert len(tickers) == 50
    sql.clear()
    variables = {"tickers": tickers, "metric": "net_income", "interval": "QUARTER"}
    answer = gql(SERIES, variables)
    assert [series["ticker"] for series in answer["data"]["metricSeries"]] == tickers
    assert len(sql) == 1, sql.statements


@pytest.mark.parametrize(
    ("variables", "argument"),
    [
        ({"metric": "revenue_growth_hype"}, "metric"),
        ({"metric": ""}, "metric"),
        ({"metric": "total_assets", "aggregate": "SUM"}, "aggregate"),
        ({"interval": "DAY"}, "interval"),
        ({"from": "2025-01-01", "to": "2024-01-01"}, "from"),
        ({"tickers": ["AAPL", "NOPE"]}, "tickers"),
        ({"tickers": []}, "tickers"),
        ({"tickers": [f"T{n}" for n in range(101)]}, "tickers"),
    ],
)
def test_bad_input(gql: Query, variables: dict[str, Any], argument: str) -> None:
    base = {"tickers": ["AAPL"], "metric": "revenue", "interval": "YEAR"}
    answer = gql(SERIES, {**base, **variables})
    (error,) = answer["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert error["extensions"]["argument"] == argument


@pytest.mark.parametrize("interval", ["DAY", *INTERVALS])
def test_price_bars_equal_a_python_computation(
    gql: Query, database_url: str, interval: str
) -> None:
    prices = fetch(
        database_url,
        """SELECT p.* FROM stock_prices p JOIN companies c ON c.id = p.company_id
           WHERE c.ticker = 'NVDA' AND p.date BETWEEN $1 AND $2 ORDER BY p.date""",
        date(2000, 1, 1),
        date(2100, 1, 1),
    )
    buckets: dict[date, list[asyncpg.Record]] = defaultdict(list)
    for row in prices:
        buckets[first_day(row["date"], interval)].append(row)
    expected = [
        (start.isoformat(), days[0]["open"], max(d["high"] for d in days),
         min(d["low"] for d in days), days[-1]["close"], sum(d["volume"] for d in days))
        for start, days in sorted(buckets.items())
    ]  # fmt: skip
    answer = gql(BARS, {"ticker": "NVDA", "interval": interval})
    bars = answer["data"]["company"]["priceSeries"]
    got = [(b["date"], b["open"], b["high"], b["low"], b["close"], b["volume"]) for b in bars]
    assert_same(got, expected)
    assert got


def test_price_bars_of_a_span_count_only_its_days(gql: Query) -> None:
    daily = gql(BARS, {"ticker": "AAPL", "interval": "DAY"})["data"]["company"]["priceSeries"]
    middle = daily[len(daily) // 2]["date"]  # a span that starts mid-month
    monthly = gql(BARS, {"ticker": "AAPL", "interval": "MONTH", "from": middle})
    first = monthly["data"]["company"]["priceSeries"][0]
    assert first["date"] == first_day(date.fromisoformat(middle), "MONTH").isoformat()
    assert first["open"] == daily[len(daily) // 2]["open"]  # the span's first day, not the month's
