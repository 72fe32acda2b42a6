"""Schema migrations under a PostgreSQL advisory lock, so many replicas may run them at once."""

import re
from collections.abc import Mapping
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
    TimescaleDB, what cannot be made in a transaction (db/timescale.py). `engine`: a
    maintenance engine (db/engine.py), on PostgreSQL itself, with no statement timeout."""
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        await conn.execute(text("SET LOCAL statement_timeout = 0"))  # a rewrite takes long
        await conn.run_sync(_upgrade, revision)
    if revision == "head":
        await create_price_aggregates(engine)


async def keep_role_settings(engine: AsyncEngine, settings: Mapping[str, str]) -> None:
    """Store session settings on the connecting role, in this database: new sessions start
    with them. For connections through PgBouncer, which passes no settings on at connect."""
    async with engine.begin() as conn:
        for name, value in settings.items():
            if not re.fullmatch(r"[a-z_]+(\.[a-z_]+)?", name):
                raise ValueError(f"not a setting name: {name!r}")
            # set_config checks the value; format() quotes it (ALTER takes no parameters)
            statement = await conn.scalar(
                text(
                    "SELECT format('ALTER ROLE CURRENT_USER IN DATABASE %I SET %s = %L', "
                    "current_database(), CAST(:name AS text), CAST(:value AS text)), "
                    "set_config(:name, :value, true)"
                ),
                {"name": name, "value": value},
            )
            await conn.execute(text(statement))
