"""Caches of entities loaded by a unique key.

`EntityCache`: Redis read-through. One MGET per batch; misses go to SQL in one statement and
are written back with a TTL. Redis is an accelerator here, not a dependency: when it is down
the loaders read PostgreSQL.

`CompanyMemory`: company rows a worker read lately, in its own memory. Companies are
reference data: only loading a data set writes them, and the Redis entity cache already
serves them for minutes without invalidation. A Redis round trip costs a worker as much CPU
as the SQL statement it saves; a hit in memory costs neither, nor a DataLoader batch.
"""

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any, TypeVar, get_type_hints

import orjson
from cachetools import TTLCache
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)
V = TypeVar("V")
PREFIX = "cg:entity"

CACHE_LOOKUPS = Counter(
    "corpgraph_cache_lookups",
    "Lookups in corpgraph's caches (entity, persisted documents, response) and their result",
    ["cache", "result"],
)
# exposed at 0 from the start
for cache in ("entity", "persisted", "response", "response_held", "company_memory"):
    for result in ("hit", "miss"):
        CACHE_LOOKUPS.labels(cache, result)
ENTITY_HITS = CACHE_LOOKUPS.labels("entity", "hit")
ENTITY_MISSES = CACHE_LOOKUPS.labels("entity", "miss")
MEMORY_HITS = CACHE_LOOKUPS.labels("company_memory", "hit")
MEMORY_MISSES = CACHE_LOOKUPS.labels("company_memory", "miss")
COMPANIES_REMEMBERED = 10_000  # per key, per worker: a few MB
RETRY_SECONDS = 1.0  # how long a Redis that failed is left alone


def shaped_kind(kind: str, row_type: type) -> str:
    """`kind` and a short hash of the row type's field names and types. A release whose row
    gains, loses, renames or retypes a field reads and writes other keys than the release
    before it, so that during a rolling deploy neither decodes the other's entries."""
    fields = ",".join(f"{name}:{hint}" for name, hint in get_type_hints(row_type).items())
    return f"{kind}:{hashlib.sha256(fields.encode()).hexdigest()[:8]}"


class CompanyMemory:
    """Company rows by id, ticker and CIK (the loaders' keys), each kept for `ttl`."""

    def __init__(self, ttl: timedelta, size: int = COMPANIES_REMEMBERED) -> None:
        seconds = ttl.total_seconds()
        self.by_id: TTLCache[int, Any] = TTLCache(size, seconds)
        self.by_ticker: TTLCache[str, Any] = TTLCache(size, seconds)
        self.by_cik: TTLCache[str, Any] = TTLCache(size, seconds)

    def remember(self, rows: Iterable[Any]) -> None:
        """Rows as read from PostgreSQL or Redis (CompanyRow: id, ticker, cik, ...)."""
        for row in rows:
            self.by_id[row.id] = self.by_ticker[row.ticker] = self.by_cik[row.cik] = row


class Breaker:
    """A Redis that failed is left alone for RETRY_SECONDS, then tried again: while it hangs
    (stopped, or on a network that drops its packets) each request would otherwise wait out
    the client's timeout on each call; now one request a second does. The caches on one Redis
    share one."""

    def __init__(self) -> None:
        self._until = 0.0

    @property
    def open(self) -> bool:
        return time.monotonic() < self._until

    def trip(self) -> None:
        self._until = time.monotonic() + RETRY_SECONDS


class EntityCache:
    def __init__(self, redis: Redis, ttl: timedelta, breaker: Breaker | None = None) -> None:
        self.redis = redis
        self.ttl = ttl
        self.breaker = breaker or Breaker()

    @staticmethod
    def key(kind: str, key: str) -> str:
        return f"{PREFIX}:{kind}:{key}"

    async def get_many(self, kind: str, keys: Sequence[str]) -> list[bytes | str | None]:
        if self.breaker.open:
            return [None] * len(keys)
        try:
            return list(await self.redis.mget([self.key(kind, k) for k in keys]))
        except RedisError as error:
            self.breaker.trip()
            log.warning("entity cache read failed, reading PostgreSQL: %s", error)
            return [None] * len(keys)

    async def set_many(self, kind: str, items: dict[str, bytes]) -> None:
        if not items or self.breaker.open:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, value in items.items():
                    pipe.set(self.key(kind, key), value, ex=self.ttl)
                await pipe.execute()
        except RedisError as error:
            self.breaker.trip()
            log.warning("entity cache write failed: %s", error)

    async def invalidate(self, kind: str, keys: Sequence[str]) -> None:
        """Called by the write path after a commit that changes these entities. The commit
        stands if Redis is away: entries expire within the cache's TTL."""
        if not keys:
            return
        try:
            await self.redis.delete(*(self.key(kind, k) for k in keys))
        except RedisError as error:
            log.warning("entity cache invalidation failed: %s", error)


async def read_through(
    cache: EntityCache | None,
    kind: str,
    keys: Sequence[str],
    load: Callable[[Sequence[str]], Awaitable[list[V | None]]],
    to_dict: Callable[[V], dict[str, Any]],
    from_dict: Callable[[dict[str, Any]], V],
) -> list[V | None]:
    if cache is None:
        return await load(keys)
    hits = await cache.get_many(kind, keys)
    misses = [key for key, hit in zip(keys, hits, strict=True) if hit is None]
    ENTITY_HITS.inc(len(keys) - len(misses))
    ENTITY_MISSES.inc(len(misses))
    loaded = dict(zip(misses, await load(misses), strict=True)) if misses else {}
    await cache.set_many(
        kind, {key: orjson.dumps(to_dict(row)) for key, row in loaded.items() if row is not None}
    )
    return [
        from_dict(orjson.loads(hit)) if hit is not None else loaded[key]
        for key, hit in zip(keys, hits, strict=True)
    ]
