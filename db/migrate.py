"""Schema migrations under a PostgreSQL advisory lock, so many replicas may run them at once."""

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.timescale import create_price_aggregates

MIGRATIONS = Path(__file__).parent / "migrations"
# any constant shared by every replica; "corpgraph" in ASCII
MIGRATION_LOCK_ID = 0x636F727067726170


def _upgrade(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade to `revision` in one transaction; the lock is released at its end. Then, with
    TimescaleDB, what cannot be made in a transaction (db/timescale.py)."""
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        await conn.run_sync(_upgrade, revision)
    if revision == "head":
        await create_price_aggregates(engine)
