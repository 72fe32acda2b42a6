"""What a CLI command runs against: the configured servers or embedded ones, and a database
made ready (migrated; the demo data loaded when asked)."""

import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Literal, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from db.embeddings import embedder_named
from db.engine import create_engine, kept_settings
from db.migrate import keep_role_settings, migrate
from db.reader import SEARCH_SETTINGS
from db.seed import STEPS, is_seeded, seed
from graph.console import say, step_bar
from graph.embedded import LOG_FILE, embedded_servers
from graph.settings import Settings

SeedSize = Literal["small", "default"]
T = TypeVar("T")


@contextmanager
def servers(settings: Settings, *, with_redis: bool = False) -> Iterator[Settings]:
    """Settings pointing at real servers: the configured ones, or embedded ones started here
    (Redis only when asked for)."""
    if not settings.embedded:
        yield settings
        return
    say(f"Data in {settings.data_dir} (the servers' output: {LOG_FILE} there)")
    with embedded_servers(settings.data_dir, say, with_redis=with_redis) as embedded:
        redis_url = embedded.redis_url or settings.redis_url
        yield settings.replace(database_url=embedded.database_url, redis_url=redis_url)


def database_url(settings: Settings) -> str:
    assert settings.database_url is not None
    return settings.database_url.get_secret_value()


async def with_engine(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    engine = create_engine(database_url(settings))
    try:
        return await work(engine)
    finally:
        await engine.dispose()


async def prepare_database(settings: Settings, seed_size: SeedSize | None) -> None:
    """Migrations, the session settings kept for PgBouncer, and the demo data when asked for
    (into an empty database only: one that holds companies is left as it is)."""
    engine = create_engine(database_url(settings), pgbouncer=settings.db_pgbouncer)
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
