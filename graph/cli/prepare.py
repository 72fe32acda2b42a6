"""A database made ready for corpgraph: migrated, with the session settings PgBouncer needs
kept on the role, and the demo data loaded when asked for."""

import time
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncEngine

from db.embeddings import embedder_named
from db.engine import create_maintenance_engine, kept_settings
from db.migrate import keep_role_settings, migrate
from db.reader import SEARCH_SETTINGS
from db.seed import STEPS, is_seeded, seed
from graph.cli.console import say, step_bar
from graph.settings import Settings

SeedSize = Literal["small", "default"]


async def prepare_database(settings: Settings, seed_size: SeedSize | None) -> None:
    """Migrations, the session settings kept for PgBouncer, and the demo data when asked for
    (into an empty database only: one that holds companies is left as it is). Maintenance: on
    PostgreSQL itself (the listen URL is never PgBouncer), under no statement timeout."""
    assert settings.listen_url is not None
    engine = create_maintenance_engine(settings.listen_url)
    try:
        await migrate(engine)
        if settings.db_pgbouncer:
            kept = kept_settings(settings.statement_timeout, **SEARCH_SETTINGS)
            await keep_role_settings(engine, kept)
        if seed_size is not None:
            await load_demo_data(engine, settings, seed_size)
    finally:
        await engine.dispose()


async def load_demo_data(engine: AsyncEngine, settings: Settings, size: SeedSize) -> None:
    if await is_seeded(engine):
        say("Seed skipped: the database already holds companies (it loads only into an empty one).")
        return
    say(f"Loading the {size} demo data set...")
    began = time.monotonic()
    with step_bar("Seeding", STEPS) as begin:
        counts = await seed(engine, size, embedder=embedder_named(settings.embedder), begin=begin)
    loaded = ", ".join(f"{count:,} {table.replace('_', ' ')}" for table, count in counts.items())
    say(f"Loaded {loaded} in {time.monotonic() - began:.0f} s.")
