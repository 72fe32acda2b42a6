"""Point-in-time series: metricSeries of 50 tickers x 24 months, monthly, as of an instant
(AS_OF) against the same without (LATEST), each through corpgraph (one worker, over HTTP) and
as its statement run straight on asyncpg, in one run.

    python ops/bench/point_in_time.py [--requests 200]

Seeds the default data set (its 10-Ks repeat the prior year, some restated; some 10-K/As) into
a fresh embedded PostgreSQL, checks that each API answer has the points its statement returns,
then times --requests sequential requests of each cell, interleaved, and prints p50/p95, the
ratios AS_OF/LATEST (API and SQL) and API/SQL, and EXPLAIN ANALYZE of the AS_OF statement and
of `Company.metrics(asOf:)`'s for the 50 companies.
Nothing is asserted: the machines are shared and noisy, so only ratios from one run compare.
"""

import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx2 as httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from analytics import against_default_data_set, percentiles, raw_sql  # noqa: E402  (ops/bench/analytics.py, beside this)

from loaders.metrics import by_company_statement  # noqa: E402
from loaders.series import metric_series_statement  # noqa: E402

START, END = date(2024, 7, 1), date(2026, 6, 30)
AS_OF = datetime(2025, 6, 30, tzinfo=UTC)  # half the span filed by then
EVERYTHING = datetime(2026, 12, 1, tzinfo=UTC)  # after the last filing: LATEST's rows
SERIES = """query($tickers: [String!]!, $asOf: DateTime) { metricSeries(tickers: $tickers,
  metric: "revenue", interval: MONTH, from: "2024-07-01", to: "2026-06-30", asOf: $asOf) {
  ticker points { periodStart value } } }"""
Call = Callable[[], Awaitable[object]]


async def interleaved(runs: int, calls: dict[str, Call]) -> dict[str, tuple[float, float]]:
    """p50/p95 of each call, one of each in turn, so that noise falls on all alike."""
    for call in list(calls.values()) * 5:  # warm: prepared statements, caches
        await call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(runs):
        for name, call in calls.items():
            started = time.perf_counter()
            await call()
            times[name].append(time.perf_counter() - started)
    return {name: percentiles(each) for name, each in times.items()}


async def explained(connection: asyncpg.Connection, sql: str, *arguments: Any) -> str:
    plan = await connection.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *arguments)
    return "\n".join(row[0] for row in plan)


async def measure(database_url: str, url: str, runs: int) -> None:
    connection = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    tickers = [r["ticker"] for r in await connection.fetch(
        "SELECT ticker FROM companies ORDER BY ticker LIMIT 50")]  # fmt: skip
    latest_sql = raw_sql(metric_series_statement("MONTH", "LAST", "QUARTERLY", False))
    as_of_sql = raw_sql(metric_series_statement("MONTH", "LAST", "QUARTERLY", False, "AS_OF", True))
    async with httpx.AsyncClient(timeout=30) as client:

        async def graphql(as_of: datetime | None) -> dict[str, Any]:
            variables = {"tickers": tickers, "asOf": as_of.isoformat() if as_of else None}
            response = await client.post(url, json={"query": SERIES, "variables": variables})
            body: dict[str, Any] = response.json()
            assert "errors" not in body, body
            return body

        def sql(statement: str, *as_of: datetime) -> Call:
            return lambda: connection.fetch(statement, tickers, "revenue", START, END, *as_of)

        cells: dict[str, Call] = {
            "API LATEST": lambda: graphql(None),
            "API AS_OF": lambda: graphql(AS_OF),
            "API AS_OF all": lambda: graphql(EVERYTHING),
            "SQL LATEST": sql(latest_sql),
            "SQL AS_OF": sql(as_of_sql, AS_OF),
            "SQL AS_OF all": sql(as_of_sql, EVERYTHING),
        }
        for api, bare in (("API LATEST", "SQL LATEST"), ("API AS_OF", "SQL AS_OF")):
            answer: Any = await cells[api]()
            rows: Any = await cells[bare]()
            points = sum(len(s["points"]) for s in answer["data"]["metricSeries"])
            assert points == sum(1 for row in rows if row["bucket"] is not None), f"{api} differs"
        results = await interleaved(runs, cells)
    print(f"metricSeries, 50 tickers x 24 months, monthly; AS_OF {AS_OF.isoformat()}, "
          f"AS_OF all {EVERYTHING.isoformat()} (every filing: LATEST's values)")  # fmt: skip
    print(f"{'cell':<16}{'p50 ms':>9}{'p95 ms':>9}")
    for name, (p50, p95) in results.items():
        print(f"{name:<16}{p50:>9.2f}{p95:>9.2f}")
    ratio = {name: p50 for name, (p50, _) in results.items()}
    for side in ("API", "SQL"):
        latest = ratio[f"{side} LATEST"]
        print(f"{side}: AS_OF/LATEST {ratio[f'{side} AS_OF'] / latest:.2f}, "
              f"AS_OF all/LATEST {ratio[f'{side} AS_OF all'] / latest:.2f}")  # fmt: skip
    for cell in ("LATEST", "AS_OF", "AS_OF all"):
        print(f"API/SQL {cell}: {ratio[f'API {cell}'] / ratio[f'SQL {cell}']:.2f}")
    print("EXPLAIN ANALYZE of the AS_OF statement:")
    print(await explained(connection, as_of_sql, tickers, "revenue", START, END, AS_OF))
    ids = [r["id"] for r in await connection.fetch(
        "SELECT id FROM companies WHERE ticker = ANY($1)", tickers)]  # fmt: skip
    metrics_sql = raw_sql(by_company_statement((False, False, False, True)))
    print("EXPLAIN ANALYZE of Company.metrics(asOf:), 50 companies:")
    print(await explained(connection, metrics_sql, ids, AS_OF))
    await connection.close()


def main() -> None:
    against_default_data_set(measure, __doc__, "corpgraph-bench-pit-")


if __name__ == "__main__":
    main()
