"""What a CLI command runs against: the configured servers or embedded ones, and an engine
on the database for the length of its work."""

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from db.engine import create_engine
from graph.cli.console import say
from graph.cli.embedded import LOG_FILE, embedded_servers
from graph.settings import Settings

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
