"""Analytics through corpgraph (one worker, over HTTP) against the same SQL run straight on
asyncpg, in one run: searchFilings in each mode (10 hits, queries taken in turn from the
demo topics; the raw side embeds the query too), metricSeries for 50 tickers x 2 years,
monthly, and priceSeries of one company.

    python ops/bench/analytics.py [--requests 200]

Seeds the default data set (about 20,000 filings) into a fresh embedded PostgreSQL, checks
that both give the same answers, then times --requests sequential requests of each and prints
p50/p95 and the ratio. Nothing is asserted: the machines are shared and noisy, so only ratios
from one run compare.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import date
from functools import partial
from itertools import cycle
from pathlib import Path
from typing import Any

import asyncpg
import httpx2 as httpx
from sqlalchemy import ClauseElement

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from run import ROOMY, start_corpgraph, wait_up  # noqa: E402  (ops/bench/run.py, beside this)

from db.embeddings import HashingEmbedder, literal  # noqa: E402
from db.reader import DIALECT, SEARCH_SETTINGS  # noqa: E402
from db.seed import TOPICS  # noqa: E402
from graph.cli.embedded import embedded_servers  # noqa: E402
from graph.cli.prepare import prepare_database  # noqa: E402
from graph.settings import Settings  # noqa: E402
from loaders.search import SearchMode, search_statement  # noqa: E402
from loaders.series import metric_series_statement, price_bars_statement  # noqa: E402

START, END = date(2024, 7, 1), date(2026, 6, 30)
SERIES = """query($tickers: [String!]!) { metricSeries(tickers: $tickers, metric: "revenue",
  interval: MONTH, from: "2024-07-01", to: "2026-06-30") {
  ticker points { periodStart value } } }"""
EMBEDDER = HashingEmbedder()
MODES: tuple[SearchMode, ...] = ("VECTOR", "TEXT", "HYBRID")
SEARCH = """query($q: String!, $mode: SearchMode!) { searchFilings(query: $q, mode: $mode) {
  score filing { accessionNumber formType filedAt title } } }"""
BARS = """{ company(ticker: "AAPL") { priceSeries(interval: WEEK, from: "2024-07-01",
  to: "2026-06-30") { date open high low close volume } } }"""


def percentiles(seconds: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(seconds, n=20)
    return statistics.median(seconds) * 1e3, cuts[18] * 1e3


async def timed(runs: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    await call()  # warm
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return times


def raw_sql(statement: ClauseElement) -> str:
    """The loader's statement as PostgreSQL receives it ($1, $2, ...)."""
    return str(statement.compile(dialect=DIALECT))


async def search_sql(connection: asyncpg.Connection, mode: SearchMode, query: str) -> Any:
    """The loader's statement for one query, embedded here as the loader embeds it."""
    sql = raw_sql(search_statement(mode, (False,) * 4))
    vectors = [literal(vector) for vector in EMBEDDER.embed([query])]
    return await connection.fetch(sql, [query], vectors, 10)


def search_cells(
    connection: asyncpg.Connection, graphql: Callable[..., Awaitable[dict[str, Any]]]
) -> dict[str, tuple[Callable[[], Awaitable[object]], Callable[[], Awaitable[object]]]]:
    """Each mode through the API and as its statement, on queries taken in turn."""

    def through_api(mode: SearchMode, queries: Iterator[str]) -> Awaitable[object]:
        return graphql(SEARCH, {"q": next(queries), "mode": mode})

    def straight(mode: SearchMode, queries: Iterator[str]) -> Awaitable[object]:
        return search_sql(connection, mode, next(queries))

    return {
        f"searchFilings {mode}, 10 hits": (
            partial(through_api, mode, cycle(TOPICS)),
            partial(straight, mode, cycle(TOPICS)),
        )
        for mode in MODES
    }


async def measure(database_url: str, url: str, runs: int) -> None:
    connection = await asyncpg.connect(
        database_url.replace("+asyncpg", ""), server_settings=SEARCH_SETTINGS
    )
    tickers = [r["ticker"] for r in await connection.fetch(
        "SELECT ticker FROM companies ORDER BY ticker LIMIT 50")]  # fmt: skip
    aapl = await connection.fetchval("SELECT id FROM companies WHERE ticker = 'AAPL'")
    series_sql = raw_sql(metric_series_statement("MONTH", "LAST", "QUARTERLY", False))
    bars_sql = raw_sql(price_bars_statement("WEEK", "postgres"))
    async with httpx.AsyncClient(timeout=30) as client:

        async def graphql(query: str, variables: dict[str, Any]) -> dict[str, Any]:
            response = await client.post(url, json={"query": query, "variables": variables})
            body: dict[str, Any] = response.json()
            assert "errors" not in body, body
            return body

        answer = await graphql(SERIES, {"tickers": tickers})
        rows = await connection.fetch(series_sql, tickers, "revenue", START, END)
        points = sum(len(s["points"]) for s in answer["data"]["metricSeries"])
        assert points == sum(1 for row in rows if row["bucket"] is not None), "answers differ"
        for mode in MODES:
            hits = (await graphql(SEARCH, {"q": TOPICS[0], "mode": mode}))["data"]
            rows = await search_sql(connection, mode, TOPICS[0])
            found = [hit["filing"]["accessionNumber"] for hit in hits["searchFilings"]]
            assert found == [row["accession_number"] for row in rows], f"{mode} answers differ"
        cells = search_cells(connection, graphql)
        cells |= {
            "metricSeries 50 tickers x 24 months": (
                lambda: graphql(SERIES, {"tickers": tickers}),
                lambda: connection.fetch(series_sql, tickers, "revenue", START, END),
            ),
            "priceSeries weekly, 2 years": (
                lambda: graphql(BARS, {}),
                lambda: connection.fetch(bars_sql, [aapl], START, END),
            ),
        }
        print(f"{'request':<38}{'corpgraph p50/p95 ms':>22}{'raw SQL p50/p95 ms':>20}{'ratio':>7}")
        for name, (through_api, straight) in cells.items():
            api = percentiles(await timed(runs, through_api))
            sql = percentiles(await timed(runs, straight))
            print(f"{name:<38}{api[0]:>11.2f}{api[1]:>11.2f}{sql[0]:>10.2f}{sql[1]:>10.2f}"
                  f"{api[0] / sql[0]:>7.2f}")  # fmt: skip
    await connection.close()


def against_default_data_set(
    measure: Callable[[str, str, int], Coroutine[Any, Any, None]],
    description: str | None,
    prefix: str,
) -> None:
    """Seeds the default data set into a fresh embedded PostgreSQL, starts a one-worker
    corpgraph on it and runs `measure(database_url, url, requests)`."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix=prefix))
    with embedded_servers(data_dir, print, with_redis=True) as embedded:
        assert embedded.redis_url is not None
        asyncio.run(prepare_database(Settings(database_url=embedded.database_url), "default"))
        env = {**os.environ, "CORPGRAPH_DATABASE_URL": embedded.database_url,
               "CORPGRAPH_REDIS_URL": embedded.redis_url,
               "CORPGRAPH_TIERS": json.dumps({"anonymous": ROOMY})}  # fmt: skip
        server = start_corpgraph(env, 1)
        url = server.urls["LIGHT"]
        try:
            wait_up(url)
            asyncio.run(measure(embedded.database_url, url, args.requests))
        finally:
            server.process.terminate()
            server.process.wait(30)


def main() -> None:
    against_default_data_set(measure, __doc__, "corpgraph-bench-")


if __name__ == "__main__":
    main()
