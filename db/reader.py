"""The read path: SQLAlchemy Core statements, compiled once, run on a plain asyncpg pool.

SQLAlchemy builds and compiles the statements (once per statement object: loaders cache one
per shape); asyncpg runs them. Per statement this skips SQLAlchemy's execution layer (about
three times asyncpg's own cost on small reads) and asyncpg's pool reset, which would cost one
more round trip per batch: the reads keep no session state (no advisory locks, LISTEN,
cursors or SET) that a reset would have to clear.
"""

import asyncio
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import timedelta
from functools import lru_cache
from typing import Any, cast

import asyncpg
from sqlalchemy import ClauseElement
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.sql.compiler import SQLCompiler

from db.engine import POOL_EXHAUSTED, POOL_IN_USE, asyncpg_url, session_settings
from db.timescale import INSTALLED

# statements compiled and kept: the loaders' shapes are a few dozen, but a selection rendered as
# JSON (loaders/json_lists.py) is one statement per selection a client sends
COMPILED_KEPT = 1024
DIALECT = asyncpg_dialect()  # type: ignore[no-untyped-call]  # SQLAlchemy's dialects are untyped


SEARCH_SETTINGS = {
    # filtered nearest-neighbour searches keep scanning the HNSW index until enough rows pass
    # the filters (loaders/search.py)
    "hnsw.iterative_scan": "relaxed_order",
    # candidates per HNSW search: at least the largest `first`; recall@10 ~0.97 on the demo set
    "hnsw.ef_search": "160",
}


READ_IN_USE = POOL_IN_USE.labels("read")


@lru_cache(maxsize=COMPILED_KEPT)
def compiled(statement: ClauseElement) -> tuple[str, tuple[str, ...]]:
    """A statement's SQL and its parameters' names, by statement object (hashed by identity;
    kept, it cannot be freed and its id reused)."""
    result = cast(SQLCompiler, statement.compile(dialect=DIALECT))
    return result.string, tuple(result.positiontup or ())


# a pooled connection whose backend is gone (terminated, or PostgreSQL restarted), handed out
# before asyncpg saw its socket close: the statement did not run, or its answer went with it
STALE = (
    asyncpg.InternalClientError,  # "cannot switch to state ...": the server's farewell unread
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.AdminShutdownError,
)


class PoolExhausted(Exception):
    """No connection became free within the pool timeout."""


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset: nothing to undo (see the module docstring)."""


class Reader:
    def __init__(
        self, pool: asyncpg.Pool, acquire_timeout: timedelta, timescale: bool = False
    ) -> None:
        self.pool = pool
        self.timescale = timescale  # TimescaleDB is installed: time_bucket, its aggregates
        self.acquire_timeout = acquire_timeout.total_seconds()
        self.observers: list[Callable[[str], None]] = []  # tests count statements here
        self._releasing: set[asyncio.Task[None]] = set()

    def compiled(self, statement: ClauseElement) -> tuple[str, tuple[str, ...]]:
        return compiled(statement)

    async def acquire(self) -> asyncpg.Connection:
        # asyncio.timeout, not the pool's own timeout: that one is asyncio.wait_for, which on
        # Python 3.11 runs the wait in a task of its own
        try:
            async with asyncio.timeout(self.acquire_timeout):
                connection = await self.pool.acquire()
        except TimeoutError:
            POOL_EXHAUSTED.labels("read").inc()
            message = f"no connection free within {self.acquire_timeout:g} s"
            raise PoolExhausted(message) from None
        READ_IN_USE.inc()
        return connection

    async def fetch(
        self, statement: ClauseElement, params: Mapping[str, Any] | None = None, hints: str = ""
    ) -> Sequence[asyncpg.Record]:
        """One statement on its own pooled connection: batches of different loaders run as
        concurrent tasks, and a connection serves one statement at a time. `hints` (`SET
        LOCAL` commands) are planner settings for this statement alone: with them it runs in
        a transaction of its own, three more round trips. A connection found dead (STALE) is
        closed, and the statement, a read, sent again on another."""
        sql, names = self.compiled(statement)
        arguments = [params[name] for name in names] if params else []
        for observe in self.observers:
            observe(sql)
        stale_left = self.pool.get_max_size()  # a restart leaves every pooled one dead
        while True:
            try:
                return await self._fetch(sql, arguments, hints)
            except STALE:
                if stale_left == 0:
                    raise
                stale_left -= 1

    async def _fetch(self, sql: str, arguments: list[Any], hints: str) -> Sequence[asyncpg.Record]:
        connection = await self.acquire()
        try:
            rows = await (
                hinted(connection, hints, sql, arguments)
                if hints
                else connection.fetch(sql, *arguments)
            )
        except asyncio.CancelledError:
            self.release_later(connection)
            raise
        except BaseException as error:
            if isinstance(error, STALE):
                with suppress(asyncpg.InterfaceError):  # closed, and back in the pool already
                    connection.terminate()  # the pool opens another in its place
            await self.release(connection)
            raise
        await self.release(connection)
        return rows

    async def release(self, connection: asyncpg.Connection) -> None:
        READ_IN_USE.dec()
        await self.pool.release(connection)

    def release_later(self, connection: asyncpg.Connection) -> None:
        """Release a connection whose statement was cancelled (a deadline passed, the client
        left) without waiting: asyncpg first waits for PostgreSQL to confirm the cancel,
        which a stalled server never does. Past the acquire timeout it closes the connection."""
        READ_IN_USE.dec()
        release = self.pool.release(connection, timeout=self.acquire_timeout)
        task = asyncio.ensure_future(release)
        self._releasing.add(task)
        task.add_done_callback(self._released)

    def _released(self, task: "asyncio.Task[None]") -> None:
        self._releasing.discard(task)
        if not task.cancelled():
            task.exception()  # a connection closed after the timeout: nothing more to do


async def hinted(
    connection: asyncpg.Connection, hints: str, sql: str, arguments: Sequence[Any]
) -> Sequence[asyncpg.Record]:
    # a managed transaction: a cancel or an error rolls it back (and the settings with it)
    async with connection.transaction(readonly=True):
        await connection.execute(hints)
        rows: Sequence[asyncpg.Record] = await connection.fetch(sql, *arguments)
        return rows


def plain_dsn(url: str) -> str:
    """A database URL as asyncpg takes it (`postgresql://`, no SQLAlchemy driver name)."""
    return asyncpg_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def create_reader(
    url: str,
    *,
    size: int = 10,
    acquire_timeout: timedelta = timedelta(seconds=5),
    statement_timeout: timedelta = timedelta(seconds=5),
    pgbouncer: bool = False,
) -> Reader:
    """With `pgbouncer` (transaction mode), statements are not cached prepared."""
    pool = await asyncpg.create_pool(
        plain_dsn(url),
        min_size=1,
        max_size=size,
        reset=_keep_session,
        statement_cache_size=0 if pgbouncer else 100,
        server_settings=session_settings(
            "corpgraph-read", statement_timeout, pgbouncer, **SEARCH_SETTINGS
        ),
    )
    timescale = bool(await pool.fetchval(INSTALLED))
    return Reader(pool, acquire_timeout, timescale)
