"""TimescaleDB's extras, where it is installed: continuous aggregates of weekly and monthly
price bars (the hypertables themselves come with the first migration).

Continuous aggregates cannot be created inside a transaction, and the migrations run in one
(under their advisory lock), so these are made after it, in autocommit, idempotently. They
answer with real-time aggregation (`materialized_only = false`): the materialized buckets
plus whatever the refresh policy has not reached yet.
"""

from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

PRICE_AGGREGATES = {"WEEK": "price_bars_week", "MONTH": "price_bars_month"}
WIDTHS = {"WEEK": "1 week", "MONTH": "1 month"}
INSTALLED = "SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'timescaledb')"


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
            start_offset => INTERVAL '3 months', end_offset => INTERVAL '1 day',
            schedule_interval => INTERVAL '1 hour', if_not_exists => true)"""


async def create_price_aggregates(engine: AsyncEngine) -> bool:
    """The continuous aggregates and their refresh policies; False without TimescaleDB."""
    async with engine.connect() as conn:
        if not await conn.scalar(text(INSTALLED)):
            return False
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for interval, view in PRICE_AGGREGATES.items():
            try:
                await autocommit.execute(text(aggregate_sql(view, WIDTHS[interval])))
            except ProgrammingError as error:  # another replica made it meanwhile
                if "already exists" not in str(error):
                    raise
            await autocommit.execute(text(policy_sql(view)))
            await autocommit.execute(
                text(f"CALL refresh_continuous_aggregate('{view}', NULL, NULL)")
            )
    return True
