"""Per-client cost budgets: token buckets in Redis (the state role), shared by every process.

A bucket holds up to `capacity` points and refills at `restore_rate` points per second. A
request is debited its requested cost before it runs (refused, untouched, when the bucket holds
less) and refunded down to its actual cost after. Each step is one Lua script, so concurrent
requests from many processes cannot overspend; time is Redis's own clock.

Without Redis (unreachable, or none configured) the buckets live in this process: requests
never fail because of the limiter, a warning is logged once, and `degraded` says so until
Redis answers again.
"""

import logging
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from graph.settings import Tier

log = logging.getLogger(__name__)

# KEYS[1]: the bucket; ARGV: capacity, restore rate (points/s), cost (negative: a refund).
# Returns {admitted (1/0), points left after, as a string}.
BUCKET_SCRIPT = """
local capacity, rate, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'points', 'at')
local points = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
points = math.min(capacity, points + math.max(0, now - at) * rate)
local admitted = 0
if cost <= points then
  points = math.min(capacity, points - cost)
  admitted = 1
end
redis.call('HSET', KEYS[1], 'points', tostring(points), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - points) / rate * 1000) + 60000)
return {admitted, tostring(points)}
"""


@dataclass(frozen=True)
class Throttle:
    """A bucket after a debit or refund."""

    admitted: bool
    available: float
    tier: Tier

    @property
    def retry_after(self) -> int:
        """Seconds until a refused cost could be admitted (at least 1)."""
        return max(1, math.ceil(-self.available / self.tier.restore_rate))

    @property
    def seconds_to_full(self) -> float:
        return (self.tier.capacity - self.available) / self.tier.restore_rate


class LocalBuckets:
    """The same buckets in one process's memory, for when Redis is away."""

    def __init__(self) -> None:
        self.buckets: dict[str, tuple[float, float]] = {}

    def apply(self, key: str, tier: Tier, cost: int) -> tuple[bool, float]:
        now = time.monotonic()
        points, at = self.buckets.get(key, (tier.capacity, now))
        points = min(tier.capacity, points + (now - at) * tier.restore_rate)
        admitted = cost <= points
        if admitted:
            points = min(tier.capacity, points - cost)
        self.buckets[key] = (points, now)
        return admitted, points


class RateLimiter:
    def __init__(self, redis: Redis | None, prefix: str = "corpgraph:bucket:") -> None:
        self.redis, self.prefix = redis, prefix
        self.script = redis.register_script(BUCKET_SCRIPT) if redis is not None else None
        self.local = LocalBuckets()
        self.degraded = redis is None
        self._warned = False

    async def debit(self, client: str, tier: Tier, cost: int) -> Throttle:
        admitted, points = await self._apply(client, tier, cost)
        # refused: report how far short the bucket is, for Retry-After
        return Throttle(admitted, points if admitted else points - cost, tier)

    async def refund(self, client: str, tier: Tier, points: int) -> Throttle:
        _, available = await self._apply(client, tier, -points)
        return Throttle(True, available, tier)

    async def _apply(self, client: str, tier: Tier, cost: int) -> tuple[bool, float]:
        if self.script is not None:
            try:
                arguments = [tier.capacity, tier.restore_rate, cost]
                admitted, points = await self.script(keys=[self.prefix + client], args=arguments)
                self._recovered()
                return bool(admitted), float(points)
            except (RedisError, OSError) as error:
                self._degrade(error)
        return self.local.apply(client, tier, cost)

    def _degrade(self, error: Exception) -> None:
        self.degraded = True
        if not self._warned:
            self._warned = True
            log.warning("rate limiting per process: Redis is unreachable (%s)", error)

    def _recovered(self) -> None:
        if self.degraded and self.redis is not None:
            log.warning("rate limiting shared again: Redis is back")
            self.degraded, self._warned = False, False
