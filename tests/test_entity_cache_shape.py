"""The entity cache across a rolling deploy: a release whose row type has other fields
never decodes (and so never raises on) the entries of the release before it, nor the reverse."""

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, NamedTuple

from redis.asyncio import Redis

from loaders import companies
from loaders.cache import EntityCache, read_through, shaped_kind
from loaders.companies import CompanyRow


class OlderCompanyRow(NamedTuple):  # as a release before `industry` would have it
    id: int
    ticker: str
    cik: str
    name: str
    sector: str | None


NEW = CompanyRow(1, "ZZZT", "0000000001", "Zed", "Tech", "Software")
OLD = OlderCompanyRow(1, "ZZZT", "0000000001", "Zed", "Tech")


def test_the_key_version_follows_the_row_fields() -> None:
    assert shaped_kind("company:ticker", CompanyRow) == companies.CACHE_KIND
    assert shaped_kind("company:ticker", OlderCompanyRow) != companies.CACHE_KIND

    class Retyped(NamedTuple):
        id: str
        ticker: str
        cik: str
        name: str
        sector: str | None
        industry: str | None

    assert shaped_kind("company:ticker", Retyped) != companies.CACHE_KIND


async def as_replica(cache: EntityCache, old: bool) -> list[Any]:
    """What one replica reads through the shared cache for ZZZT."""
    row: Any = OLD if old else NEW
    row_type: Any = OlderCompanyRow if old else CompanyRow
    kind = shaped_kind("company:ticker", row_type) if old else companies.CACHE_KIND

    async def load(keys: Sequence[str]) -> list[Any]:
        return [row for _ in keys]

    return await read_through(
        cache, kind, ["ZZZT"], load, row_type._asdict, lambda data: row_type(**data)
    )


def test_old_and_new_replicas_read_each_other_without_raising(redis_url: str) -> None:
    async def deploy() -> None:
        redis = Redis.from_url(redis_url)
        cache = EntityCache(redis, timedelta(minutes=1))
        try:
            await redis.flushdb()
            assert await as_replica(cache, old=True) == [OLD]  # cached by the old release
            assert await as_replica(cache, old=False) == [NEW]  # the new one, beside it
            assert await as_replica(cache, old=True) == [OLD]  # a hit, of its own shape
            assert await as_replica(cache, old=False) == [NEW]
        finally:
            await redis.aclose()

    asyncio.run(deploy())
