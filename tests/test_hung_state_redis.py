"""A hung state Redis (SIGSTOP: nothing refuses the connection, nothing answers) costs the
budgets and persisted documents one client timeout per RETRY_SECONDS, not one per request:
a burst of one client's requests had each waited its turn for Redis, and its own timeout,
behind the others (12 requests: 1 to 10 s, the last ones 504)."""

import asyncio
import logging
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from graph.pipeline.persisted import PersistedDocuments, PersistedError, sha256
from graph.pipeline.ratelimit import RateLimiter
from graph.settings import Tier
from loaders.cache import Breaker
from tests.servers import free_port, redis_server

BURST = 12
TIER = Tier(ceiling=100, capacity=5000, restore_rate=1)
TIMEOUT = 0.5  # the client's socket timeout


@pytest.fixture
def hung_redis(tmp_path: Path) -> Iterator[tuple[Redis, Any]]:
    """A client of a redis-server of its own, and the server, to stop."""
    port = free_port()
    server = redis_server(port, tmp_path)
    try:
        yield Redis.from_url(f"redis://127.0.0.1:{port}", socket_timeout=TIMEOUT), server
    finally:
        server.send_signal(signal.SIGCONT)
        server.terminate()
        server.wait()


def test_a_burst_of_one_client_tries_a_hung_redis_once(hung_redis: tuple[Redis, Any]) -> None:
    redis, server = hung_redis
    limiter = RateLimiter(redis, prefix="test:hung:")
    assert limiter.script is not None
    script, trips = limiter.script, []

    async def counted(**arguments: Any) -> Any:
        trips.append(arguments)
        return await script(**arguments)

    limiter.script = counted  # type: ignore[assignment]

    async def burst() -> list[bool]:
        server.send_signal(signal.SIGSTOP)
        throttles = await asyncio.gather(*(limiter.debit("c", TIER, 200) for _ in range(BURST)))
        await redis.aclose()
        return [throttle.admitted for throttle in throttles]

    assert asyncio.run(burst()) == [True] * BURST  # from the process's own bucket
    assert len(trips) == 1


def test_persisted_documents_try_a_hung_redis_once(
    hung_redis: tuple[Redis, Any], caplog: pytest.LogCaptureFixture
) -> None:
    redis, server = hung_redis
    documents = PersistedDocuments("apq", {}, redis, timedelta(days=1), 10_000, 100_000, Breaker())
    unknown = {"persistedQuery": {"version": 1, "sha256Hash": sha256("{ unknown }")}}

    async def lookups() -> list[str]:
        server.send_signal(signal.SIGSTOP)
        codes = []
        for _ in range(5):
            try:
                await documents.document(None, unknown, None, trusted_caller=False)
            except PersistedError as error:
                codes.append(error.code)
        await redis.aclose()
        return codes

    with caplog.at_level(logging.WARNING):
        codes = asyncio.run(lookups())
    assert codes == ["PERSISTED_QUERY_NOT_FOUND"] * 5  # the client sends the document next
    assert [r.message.split(":")[1].strip() for r in caplog.records] == ["Redis read failed"]
