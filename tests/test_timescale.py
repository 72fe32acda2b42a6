"""What only TimescaleDB has: hypertables, compression, continuous aggregates and their jobs;
migrations on it (from empty, again, concurrently, down to base and up); aggregates that answer
as the raw rows do after a policy run and after a correction of old prices; ingestion into a
compressed chunk. Answers are compared with the plain path's on the same demo data."""

import asyncio
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from starlette.testclient import TestClient

from db.engine import create_maintenance_engine, ensure_database
from db.migrate import MIGRATIONS, migrate
from db.reader import DIALECT
from graph.app import create_app
from graph.settings import Settings
from loaders.series import metric_series_statement
from tests.conftest import TEMPLATE, run_timescale_jobs
from tests.servers import corpgraph_environment
from tests.test_series import BARS, SERIES, assert_same, fetch, first_day

pytestmark = pytest.mark.timescale
STORAGE_PATHS = ("timescale",)

HYPERTABLES = {"financial_metrics", "stock_prices"}
AGGREGATES = {"price_bars_week", "price_bars_month"}
CATALOG = {
    "hypertables": "SELECT hypertable_name FROM timescaledb_information.hypertables",
    "compressed": "SELECT hypertable_name FROM timescaledb_information.jobs"
    " WHERE proc_name = 'policy_compression'",
    "aggregates": "SELECT view_name FROM timescaledb_information.continuous_aggregates"
    " WHERE NOT materialized_only",
    "refreshed": "SELECT hypertable_name FROM timescaledb_information.jobs"
    " WHERE proc_name = 'policy_refresh_continuous_aggregate'"
    " AND config->>'start_offset' IS NULL AND config->>'end_offset' IS NULL",
    "indexed": "SELECT tablename FROM pg_indexes"
    " WHERE indexname = 'ix_financial_metrics_name_company_id_period_end'",
}


def catalog(url: str) -> dict[str, list[str]]:
    return {name: sorted(row[0] for row in fetch(url, sql)) for name, sql in CATALOG.items()}


EXPECTED_CATALOG = {
    "hypertables": sorted(HYPERTABLES),
    "compressed": sorted(HYPERTABLES),
    "aggregates": sorted(AGGREGATES),
    "refreshed": sorted(AGGREGATES),
    "indexed": ["financial_metrics"],
}


@pytest.fixture(scope="module")
def plain(settings: Settings, template_url: str, postgres: Any) -> Iterator[TestClient]:
    """The API on plain PostgreSQL, over a clone of the same demo data."""
    url: str = postgres.get_uri("t_timescale_plain")
    asyncio.run(ensure_database(url, template=TEMPLATE))
    with TestClient(create_app(settings.replace(database_url=url))) as client:
        yield client


def answer(client: TestClient, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/graphql", json={"query": query, "variables": variables})
    result: dict[str, Any] = response.json()
    assert "errors" not in result, result
    data: dict[str, Any] = result["data"]
    return data


def new_database(cluster: Any, name: str, template: str | None = None) -> str:
    url: str = cluster.get_uri(name)
    assert asyncio.run(ensure_database(url, template=template)), f"{name} exists already"
    return url


async def migrated(url: str, revision: str = "head") -> None:
    engine = create_maintenance_engine(url)
    try:
        await migrate(engine, revision)
    finally:
        await engine.dispose()


def test_hypertables_compression_and_aggregates_exist(database_url: str) -> None:
    assert catalog(database_url) == EXPECTED_CATALOG


def test_every_job_has_run_once(database_url: str) -> None:
    """The template's jobs ran (tests/conftest.py, CALL run_job: no scheduler in tests): old
    chunks of both tables are compressed, and the aggregates hold every bucket of the rows."""
    jobs = fetch(database_url, "SELECT proc_name FROM timescaledb_information.jobs")
    procs = [row[0] for row in jobs]
    assert procs.count("policy_compression") == procs.count(REFRESH) == 2
    compressed = fetch(
        database_url,
        "SELECT DISTINCT hypertable_name FROM timescaledb_information.chunks WHERE is_compressed",
    )
    assert {row[0] for row in compressed} == HYPERTABLES
    for view, width in (("price_bars_week", "1 week"), ("price_bars_month", "1 month")):
        (buckets,) = fetch(database_url, RAW_BUCKETS.format(width=width))
        assert materialized_rows(database_url, view) == buckets[0] > 0, view


REFRESH = "policy_refresh_continuous_aggregate"
RAW_BUCKETS = """SELECT count(*) FROM (SELECT DISTINCT company_id,
    time_bucket(INTERVAL '{width}', date) FROM stock_prices) b"""


def materialized_rows(url: str, view: str) -> int:
    """Rows an aggregate holds (not what it answers: real-time aggregation adds the rest)."""
    ((schema, table),) = fetch(
        url,
        "SELECT materialization_hypertable_schema, materialization_hypertable_name"
        " FROM timescaledb_information.continuous_aggregates WHERE view_name = $1",
        view,
    )
    count: int = fetch(url, f'SELECT count(*) FROM "{schema}"."{table}"')[0][0]
    return count


def test_migrate_from_empty_twice(cluster: Any) -> None:
    url = new_database(cluster, "t_timescale_empty")
    asyncio.run(migrated(url))
    first = catalog(url)
    asyncio.run(migrated(url))
    assert catalog(url) == first == EXPECTED_CATALOG
    assert fetch(url, "SELECT version_num FROM alembic_version")[0][0] == "0008"


def test_migrate_concurrently_from_two_processes(
    cluster: Any, redis_url: str, tmp_path: Path
) -> None:
    url = new_database(cluster, "t_timescale_concurrent")
    environment = corpgraph_environment(url, redis_url, str(tmp_path))
    migrating = [
        subprocess.Popen(
            [sys.executable, "-m", "graph", "migrate"], env=environment,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]  # fmt: skip
    for process in migrating:
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        assert "up to date" in out
    assert catalog(url) == EXPECTED_CATALOG
    jobs = fetch(url, "SELECT count(*) FROM timescaledb_information.jobs WHERE job_id >= 1000")
    assert jobs[0][0] == 4  # two compression policies, two refresh policies: none twice


def downgrade_to_base(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.downgrade(config, "base")


def test_downgrade_to_base_and_up_again(cluster: Any) -> None:
    """From the demo data, compressed and aggregated, down to nothing, then up again."""
    url = new_database(cluster, "t_timescale_downgrade", template=TEMPLATE)

    async def downgrade() -> None:
        engine = create_maintenance_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(downgrade_to_base)
        finally:
            await engine.dispose()

    asyncio.run(downgrade())
    tables = fetch(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert [row[0] for row in tables] == ["alembic_version"]
    assert catalog(url) == {name: [] for name in CATALOG}
    asyncio.run(migrated(url))
    assert catalog(url) == EXPECTED_CATALOG


def test_series_after_a_policy_run_equal_the_plain_path(
    client: TestClient, plain: TestClient, database_url: str
) -> None:
    """Whole buckets (from the aggregates) and partial ones (from the rows), after every job
    has run again: the same as on plain PostgreSQL, and as a computation in Python."""
    asyncio.run(run_timescale_jobs(database_url))
    spans = [(None, None), ("2026-07-01", "2026-08-31"), ("2026-07-06", "2026-08-30"),
             ("2026-06-17", "2026-09-09")]  # fmt: skip
    for interval in ("WEEK", "MONTH"):
        for start, end in spans:
            variables = {"ticker": "AAPL", "interval": interval, "from": start, "to": end}
            bars = answer(client, BARS, variables)
            assert bars == answer(plain, BARS, variables)
            assert_same(rows_of(bars), recomputed(database_url, "AAPL", interval, start, end))
    for metric, aggregate in (("revenue", "SUM"), ("total_assets", "LAST")):
        asked = {"tickers": ["AAPL", "MSFT", "JPM"], "metric": metric, "interval": "MONTH",
                 "aggregate": aggregate}  # fmt: skip
        assert answer(client, SERIES, asked) == answer(plain, SERIES, asked)


def rows_of(bars: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (b["date"], b["open"], b["high"], b["low"], b["close"], b["volume"])
        for b in bars["company"]["priceSeries"]
    ]


def recomputed(
    url: str, ticker: str, interval: str, start: str | None, end: str | None
) -> list[tuple[Any, ...]]:
    """Price bars from the daily rows, in Python."""
    days = fetch(
        url,
        "SELECT p.* FROM stock_prices p JOIN companies c ON c.id = p.company_id"
        " WHERE c.ticker = $1 AND p.date BETWEEN $2 AND $3 ORDER BY p.date",
        ticker,
        date.fromisoformat(start or "0001-01-01"),
        date.fromisoformat(end or "9999-12-31"),
    )
    buckets: dict[date, list[asyncpg.Record]] = defaultdict(list)
    for row in days:
        buckets[first_day(row["date"], interval)].append(row)
    return [
        (first.isoformat(), rows[0]["open"], max(r["high"] for r in rows),
         min(r["low"] for r in rows), rows[-1]["close"], sum(r["volume"] for r in rows))
        for first, rows in sorted(buckets.items())
    ]  # fmt: skip


def test_a_correction_older_than_the_policy_window_is_reflected(
    client: TestClient, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """A bar of June (compressed, months behind the policies' old three-month window) is
    corrected by `corpgraph prices`: the monthly and weekly bars show it at once, and after the
    policies run."""
    environment = corpgraph_environment(database_url, redis_url, str(tmp_path))
    june = {"ticker": "NVDA", "interval": "MONTH", "from": "2026-06-01", "to": "2026-06-30"}
    before = rows_of(answer(client, BARS, june))
    (day,) = fetch(
        database_url,
        "SELECT p.* FROM stock_prices p JOIN companies c ON c.id = p.company_id"
        " WHERE c.ticker = 'NVDA' AND p.date = '2026-06-30'",
    )
    chunk = fetch(database_url, COMPRESSED_CHUNK_OF, "stock_prices", date(2026, 6, 30))
    assert chunk[0][0], "the day's chunk should be compressed"
    corrected = ["NVDA", day["date"], day["open"], day["high"] * 2, day["low"],
                 day["high"] * 1.5, day["volume"] + 1]  # fmt: skip
    loaded = load_prices(environment, tmp_path, [corrected])
    assert loaded.returncode == 0 and loaded.stdout == "1 daily prices stored.\n", loaded.stderr
    for refreshed_by_the_policies in (False, True):
        if refreshed_by_the_policies:
            asyncio.run(run_timescale_jobs(database_url))
        for interval in ("WEEK", "MONTH"):
            span = {**june, "interval": interval}
            expected = recomputed(database_url, "NVDA", interval, "2026-06-01", "2026-06-30")
            assert_same(rows_of(answer(client, BARS, span)), expected)
    after = rows_of(answer(client, BARS, june))
    assert after[0][2] == day["high"] * 2 and after[0][4] == day["high"] * 1.5
    assert after != before


COMPRESSED_CHUNK_OF = """
    SELECT is_compressed FROM timescaledb_information.chunks
    WHERE hypertable_name = $1 AND $2 >= range_start::date AND $2 < range_end::date"""


def load_prices(
    environment: dict[str, str], folder: Path, rows: list[list[Any]]
) -> subprocess.CompletedProcess[str]:
    """`corpgraph prices` on a CSV file of `rows`."""
    lines = ["ticker,date,open,high,low,close,volume", *(",".join(map(str, r)) for r in rows)]
    (folder / "prices.csv").write_text("\n".join(lines) + "\n")
    command = [sys.executable, "-m", "graph", "prices", str(folder / "prices.csv")]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)


def test_prices_that_make_no_sense_are_refused_whole(
    database_url: str, redis_url: str, tmp_path: Path
) -> None:
    environment = corpgraph_environment(database_url, redis_url, str(tmp_path))
    for bad in (
        ["NOPE", "2026-06-30", 1, 2, 1, 1, 5],
        ["NVDA", "2026-06-31", 1, 2, 1, 1, 5],
        ["NVDA", "2026-06-30", 1, 2, 1.5, 1, 5],
        ["NVDA", "2026-06-30", 1, 1, 1, 1, -1],
    ):
        good = ["NVDA", "2026-06-29", 1, 2, 1, 1, 5]
        refused = load_prices(environment, tmp_path, [good, bad])
        assert refused.returncode == 1 and "Nothing stored" in refused.stderr, refused.stderr
    assert fetch(database_url, "SELECT count(*) FROM stock_prices WHERE open = 1")[0][0] == 0


def test_ingest_into_a_compressed_chunk_reads_back(
    client: TestClient, database_url: str, writer: str
) -> None:
    """An amended annual report for 2023, whose metrics are compressed already."""
    period_end = date(2023, 12, 31)
    assert fetch(database_url, COMPRESSED_CHUNK_OF, "financial_metrics", period_end)[0][0]
    mutation = """mutation($input: IngestFilingInput!) { ingestFiling(input: $input) {
        metrics { name value } } }"""
    restated = {"name": "goodwill", "value": 1.5e9, "unit": "USD",
                "periodEnd": period_end.isoformat()}  # fmt: skip
    filing = {"ticker": "JPM", "accessionNumber": "0000019617-24-900001", "formType": "10-K/A",
              "filedAt": "2024-06-01T12:00:00Z", "periodEnd": period_end.isoformat(),
              "fiscalYear": 2023, "fiscalPeriod": "FY", "metrics": [restated]}  # fmt: skip
    response = client.post(
        "/graphql",
        json={"query": mutation, "variables": {"input": filing}},
        headers={"authorization": f"Bearer {writer}"},
    ).json()
    assert response["data"]["ingestFiling"]["metrics"] == [{"name": "goodwill", "value": 1.5e9}]
    read = answer(
        client,
        """query($day: Date!) { company(ticker: "JPM") {
            metrics(names: ["goodwill"], from: $day, to: $day) { value fiscalPeriod } } }""",
        {"day": period_end.isoformat()},
    )
    assert read["company"]["metrics"] == [{"value": 1.5e9, "fiscalPeriod": "FY"}]


def test_a_metric_series_reads_no_chunk_outside_its_span(database_url: str) -> None:
    """What kind a metric is comes from metric_kinds: no probe of every chunk of the facts
    (which decompressed each compressed one), only the chunks of the span, excluded as the
    statement starts (not while planning: loaders/series.py), each read by the index by
    metric name (migration 0007)."""
    statement = metric_series_statement("MONTH", "LAST", "QUARTERLY", True)
    sql = str(statement.compile(dialect=DIALECT))
    span = (date(2025, 6, 1), date(2026, 6, 30))  # in the uncompressed chunks
    plan = fetch(database_url, f"EXPLAIN (ANALYZE) {sql}", ["AAPL", "MSFT"], "revenue", *span)
    scanned = "\n".join(row[0] for row in plan)
    assert "_hyper_" in scanned and "compress_hyper" not in scanned, scanned
    assert "Chunks excluded during startup" in scanned, scanned
    assert "chunk_ix_financial_metrics_name_company_id" in scanned, scanned
