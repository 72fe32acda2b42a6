"""A task cancelled while redis-py sends a command is cancelled: on Python 3.11 redis-py's own
client returns the command's answer instead, and the task runs on (CPython gh-86296)."""

import asyncio

import pytest
from redis.asyncio import Redis

from graph.redis_client import CancellableRedis

ATTEMPTS = 60
DELAYS = (0.0, 0.00005, 0.0002)  # seconds after the task starts: within the command


async def ran_on_after_cancel(redis: Redis, delay: float) -> bool:
    """Whether a task cancelled `delay` after starting a command went on running."""
    ran_on = False

    async def command() -> None:
        nonlocal ran_on
        await redis.get("corpgraph:test:absent")
        await asyncio.sleep(0.01)  # a cancellation delivered at last would land here
        ran_on = True

    task = asyncio.ensure_future(command())
    await asyncio.sleep(delay)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return ran_on


def test_a_cancelled_command_cancels_its_task(redis_url: str) -> None:
    async def attempts() -> list[bool]:
        redis = CancellableRedis.from_url(redis_url, socket_timeout=1.0)
        try:
            await redis.ping()
            return [await ran_on_after_cancel(redis, d) for d in DELAYS * (ATTEMPTS // 3)]
        finally:
            await redis.aclose()

    assert not any(asyncio.run(attempts()))


def test_a_cancelled_command_still_answers_the_next(redis_url: str) -> None:
    """The connection a cancelled command used is not left half read."""

    async def after_cancels() -> object:
        redis = CancellableRedis.from_url(redis_url, socket_timeout=1.0)
        try:
            await redis.set("corpgraph:test:key", b"value")
            for delay in DELAYS * 5:
                await ran_on_after_cancel(redis, delay)
            return await redis.get("corpgraph:test:key")
        finally:
            await redis.aclose()

    assert asyncio.run(after_cancels()) == b"value"
