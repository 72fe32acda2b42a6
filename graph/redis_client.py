"""The Redis client of every role: redis-py's, with each cancellation reaching its caller.

On Python 3.11 `asyncio.wait_for` returns the result, and drops the cancellation, when its task
is cancelled just as what it awaits completes (CPython gh-86296, fixed in 3.12); redis-py sends
each command through it when `socket_timeout` is set. A task cancelled then ran on as if
nothing had happened: a subscription whose client had left (its event being charged to the
budget) waited for its next alert for ever, holding the client's connection and subscription
slots, and a request past its deadline kept running.
"""

import asyncio
from typing import Any

from redis.asyncio import Redis

SOCKET_TIMEOUT_SECONDS = 1.0  # a Redis that does not answer in time counts as away


class CancellableRedis(Redis):
    async def execute_command(self, *args: Any, **options: Any) -> Any:
        task = asyncio.current_task()
        requested = task.cancelling() if task is not None else 0
        result = await super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        if task is not None and task.cancelling() > requested:
            raise asyncio.CancelledError  # asked for during the command, and lost in it
        return result


def redis_client(url: str | None) -> Redis | None:
    if not url:
        return None
    timeout = SOCKET_TIMEOUT_SECONDS
    return CancellableRedis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
