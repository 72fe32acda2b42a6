"""The async engine over asyncpg, and database creation for embedded and test servers."""

from datetime import timedelta
from typing import Any
from uuid import uuid4

from prometheus_client import Counter, Gauge
from sqlalchemy import event, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, Pool

POOL_IN_USE = Gauge(
    "corpgraph_db_pool_in_use",
    "Database connections checked out, by pool (read: the loaders; write: SQLAlchemy)",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "corpgraph_db_pool_size",
    "The most connections each pool may open, by pool",
    ["pool"],
    multiprocess_mode="livesum",
)
POOL_EXHAUSTED = Counter(
    "corpgraph_db_pool_exhausted",
    "Times no connection became free within the pool timeout, by pool",
    ["pool"],
)
POOL_EXHAUSTED.labels("read")  # exposed at 0 from the start
CHECKED_OUT = "corpgraph_checked_out"


def asyncpg_url(url: str | URL) -> URL:
    """Accept `postgresql://` URLs (as libpq and the embedded server give them) for asyncpg."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+asyncpg")


def kept_settings(statement_timeout: timedelta, **more: str) -> dict[str, str]:
    """What sessions run with: sent when a connection starts, or, through PgBouncer, kept on
    the role by `corpgraph migrate` (db/migrate.keep_role_settings)."""
    return {"statement_timeout": str(int(statement_timeout.total_seconds() * 1000)), **more}


def session_settings(
    application_name: str, statement_timeout: timedelta, pgbouncer: bool, **more: str
) -> dict[str, str]:
    """Settings sent when a connection starts. PgBouncer passes on none but the application
    name."""
    if pgbouncer:
        return {"application_name": application_name}
    return {"application_name": application_name, **kept_settings(statement_timeout, **more)}


def unique_statement_name() -> str:
    return f"__asyncpg_{uuid4().hex}__"


def create_engine(
    url: str | URL,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    pool_timeout: timedelta = timedelta(seconds=5),
    statement_timeout: timedelta = timedelta(seconds=5),
    application_name: str = "corpgraph",
    pgbouncer: bool = False,
) -> AsyncEngine:
    """With `pgbouncer` (transaction mode), no statement is kept prepared on a server
    connection, which the next transaction may not get."""
    connect_args: dict[str, Any] = {
        "server_settings": session_settings(application_name, statement_timeout, pgbouncer)
    }
    if pgbouncer:
        connect_args |= {
            "statement_cache_size": 0,  # asyncpg's
            "prepared_statement_cache_size": 0,  # SQLAlchemy's
            "prepared_statement_name_func": unique_statement_name,
        }
    engine = create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout.total_seconds(),
        pool_pre_ping=False,
        connect_args=connect_args,
        hide_parameters=True,  # logged errors would carry key hashes and ingested content
    )
    event.listen(engine.sync_engine.pool, "checkout", retire_closed)
    count_checked_out(engine.sync_engine.pool, POOL_IN_USE.labels("write"))
    return engine


def retire_closed(_: object, entry: ConnectionPoolEntry, __: object) -> None:
    """A pooled connection that the server closed (PostgreSQL restarted) is replaced before it
    is handed out. asyncpg saw it close: asking costs no round trip (pre-ping costs three)."""
    connection = entry.driver_connection
    if connection is not None and connection.is_closed():
        raise DisconnectionError("PostgreSQL closed this pooled connection")


def count_checked_out(pool: Pool, in_use: Gauge) -> None:
    """`in_use` follows the connections checked out of `pool`. SQLAlchemy also fires
    `checkin` for a connection that failed to reconnect on checkout, which was never out:
    only a connection marked at its checkout is counted back in."""

    def checkout(_: object, entry: ConnectionPoolEntry, __: object) -> None:
        entry.record_info[CHECKED_OUT] = True  # type: ignore[index]
        in_use.inc()

    def checkin(_: object, entry: ConnectionPoolEntry) -> None:
        if entry.record_info.pop(CHECKED_OUT, False):  # type: ignore[union-attr]
            in_use.dec()

    event.listen(pool, "checkout", checkout)
    event.listen(pool, "checkin", checkin)


def create_maintenance_engine(url: str | URL) -> AsyncEngine:
    """For work that may take long: migrations, refreshes of continuous aggregates, bulk loads,
    ANALYZE. No statement timeout (the API's is per request, not for these), sent when each
    connection starts: so `url` must lead to PostgreSQL itself, never through PgBouncer, whose
    transaction pooling would also split a refresh's session from its settings."""
    return create_engine(
        url,
        pool_size=1,
        max_overflow=1,
        statement_timeout=timedelta(0),
        application_name="corpgraph-maintenance",
    )


async def ensure_database(url: str | URL, *, template: str | None = None) -> bool:
    """Create the URL's database if missing (optionally from a template); True if created."""
    target = asyncpg_url(url)
    name = target.database
    admin = create_async_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            exists = await conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
            )
            if exists:
                return False
            clause = f' TEMPLATE "{template}"' if template else ""
            await conn.execute(text(f'CREATE DATABASE "{name}"{clause}'))
            return True
    finally:
        await admin.dispose()
