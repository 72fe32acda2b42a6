"""TimescaleDB's extras, where it is installed: continuous aggregates of weekly and monthly
price bars (the hypertables themselves come with the first migration).

An aggregate never answers differently from the raw rows for the same range:
- it answers with real-time aggregation (`materialized_only = false`): the materialized
  buckets up to its watermark, the raw rows after it;
- below the watermark TimescaleDB logs every write as an invalidation, and a refresh
  re-materializes the invalidated buckets of its window (only those: a refresh with nothing
  to do takes milliseconds). So `corpgraph migrate` refreshes the whole range, every writer of
  prices (the seed, db/prices.py) refreshes the buckets it wrote before it returns, and the
  hourly policies refresh the whole range too (`start_offset` and `end_offset` NULL: the
  current bucket included), for writes made by hand.

Continuous aggregates can be neither created nor refreshed inside a transaction: this runs in
autocommit, after the migrations, on a maintenance engine (db/engine.py: no statement timeout).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

PRICE_AGGREGATES = {"WEEK": "price_bars_week", "MONTH": "price_bars_month"}
WIDTHS = {"WEEK": "1 week", "MONTH": "1 month"}
INSTALLED = "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'timescaledb')"
# any constant shared by every replica; "corpaggs" in ASCII
AGGREGATES_LOCK = 0x636F727061676773
POLICY_IS_CURRENT = """
    SELECT config->>'start_offset' IS NULL AND config->>'end_offset' IS NULL
    FROM timescaledb_information.jobs
    WHERE proc_name = 'policy_refresh_continuous_aggregate' AND hypertable_name = :view"""


def aggregate_sql(view: str, width: str) -> str:
    return f"""
        CREATE MATERIALIZED VIEW IF NOT EXISTS {view}
        WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
        SELECT company_id, time_bucket(INTERVAL '{width}', date) AS bucket,
               first(open, date) AS open, max(high) AS high, min(low) AS low,
               last(close, date) AS close, sum(volume) AS volume
        FROM stock_prices GROUP BY company_id, bucket WITH NO DATA"""


def policy_sql(view: str) -> str:
    return f"""
        SELECT add_continuous_aggregate_policy('{view}',
            start_offset => NULL, end_offset => NULL, schedule_interval => INTERVAL '1 hour')"""


@asynccontextmanager
async def autocommit(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as conn:
        yield await conn.execution_options(isolation_level="AUTOCOMMIT")


async def installed(conn: AsyncConnection) -> bool:
    return bool(await conn.scalar(text(INSTALLED)))


async def create_price_aggregates(engine: AsyncEngine) -> bool:
    """The continuous aggregates, their refresh policies, and a refresh of the whole range;
    False without TimescaleDB. Idempotent; replicas take turns (a session advisory lock)."""
    async with autocommit(engine) as conn:
        if not await installed(conn):
            return False
        await conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": AGGREGATES_LOCK})
        try:
            for interval, view in PRICE_AGGREGATES.items():
                await conn.execute(text(aggregate_sql(view, WIDTHS[interval])))
                await keep_policy(conn, view)
                await conn.execute(text(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)"))
        finally:
            await conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": AGGREGATES_LOCK})
    return True


async def keep_policy(conn: AsyncConnection, view: str) -> None:
    """The whole-range policy; one of an older shape (a window of 3 months, which left the
    history behind it unmaterialized) is replaced."""
    current = await conn.scalar(text(POLICY_IS_CURRENT), {"view": view})
    if current:
        return
    if current is not None:
        await conn.execute(text(f"SELECT remove_continuous_aggregate_policy('{view}')"))
    await conn.execute(text(policy_sql(view)))


def bucket_window(interval: str, first: date, last: date) -> tuple[date, date]:
    """The whole buckets holding `first`..`last`, as [start, end): a refresh materializes
    only buckets that its window covers whole."""
    if interval == "WEEK":
        return first - timedelta(days=first.weekday()), last + timedelta(days=7 - last.weekday())
    after = last.replace(day=1) + timedelta(days=31)
    return first.replace(day=1), after.replace(day=1)


async def refresh_price_aggregates(
    engine: AsyncEngine, span: tuple[date, date] | None = None
) -> None:
    """Re-materialize the buckets that hold the days `span` (first, last), or all of them:
    after a write of prices, before anyone reads the aggregates again."""
    async with autocommit(engine) as conn:
        if not await installed(conn):
            return
        for interval, view in PRICE_AGGREGATES.items():
            window = "NULL, NULL"
            if span is not None:
                start, end = bucket_window(interval, *span)
                window = f"DATE '{start.isoformat()}', DATE '{end.isoformat()}'"
            await conn.execute(text(f"CALL refresh_continuous_aggregate('{view}', {window})"))
