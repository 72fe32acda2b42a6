"""Per-client cost budgets: token buckets in Redis (the state role), shared by every process.

A bucket holds up to `capacity` points and refills at `restore_rate` points per second. A
request is debited its requested cost before it runs (refused, untouched, when the bucket holds
less) and settled at its actual cost after: refunded when it cost less, charged the difference
(even below zero) when it cost more.

Redis is asked by a Lua script, atomically, so that concurrent processes cannot overspend; its
clock is the only clock. To keep a round trip off most requests, a process takes a small lease
(2% of the bucket, or the request's cost if more) and debits later requests of the same client
from it; a refund goes back into the lease; the next trip to Redis returns what is left of it.
Whatever a process holds was taken from the bucket, so all processes together never spend more
than the bucket gives; a lease lives one second, and at most 2% of a bucket waits unused in a
process that stopped hearing from that client.

Without Redis (unreachable, or none configured) the buckets live in this process: requests
never fail because of the limiter, a warning is logged once, and `degraded` says so until
Redis answers again.
"""

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from graph.settings import Tier
from loaders.cache import Breaker

log = logging.getLogger(__name__)

LEASE_SECONDS = 1.0
LEASE_SHARE = 0.02  # of a bucket's capacity
MAX_CLIENTS = 10_000  # leases kept before idle ones are forgotten

# KEYS[1]: the bucket. ARGV: capacity, restore rate (points/s), points given back, points
# needed, points wanted (>= needed). Takes min(wanted, available) if at least `needed` are
# there. Returns {taken (0: refused), points left, as a string}.
TAKE_SCRIPT = """
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local given, needed, wanted = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1e6
local state = redis.call('HMGET', KEYS[1], 'points', 'at')
local points = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
points = math.min(capacity, points + math.max(0, now - at) * rate + given)
local taken = 0
if needed <= points then
  taken = math.min(wanted, points)
  points = points - taken
end
redis.call('HSET', KEYS[1], 'points', tostring(points), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - points) / rate * 1000) + 60000)
return {tostring(taken), tostring(points)}
"""


@dataclass(frozen=True)
class Throttle:
    """A client's budget after a debit or refund."""

    admitted: bool
    available: float  # negative when refused: how far short the bucket was
    tier: Tier

    @property
    def retry_after(self) -> int:
        """Seconds until a refused cost could be admitted (at least 1)."""
        return max(1, math.ceil(-self.available / self.tier.restore_rate))

    @property
    def seconds_to_full(self) -> float:
        return max(0.0, self.tier.capacity - self.available) / self.tier.restore_rate


@dataclass
class Lease:
    points: float  # taken from the bucket, not yet spent
    in_bucket: float  # what the bucket held after the lease was taken
    expires: float


class LocalBuckets:
    """Whole buckets in one process's memory, for when Redis is away."""

    def __init__(self) -> None:
        self.buckets: dict[str, tuple[float, float]] = {}

    def apply(self, key: str, tier: Tier, cost: float, force: bool = False) -> float:
        """Debits `cost` (a refund if negative) if the bucket holds it, or `force`d; the
        points left, or, when refused, minus how far short it was."""
        now = time.monotonic()
        points, at = self.buckets.get(key, (tier.capacity, now))
        points = min(tier.capacity, points + (now - at) * tier.restore_rate)
        admitted = force or cost <= points
        if admitted:
            points = min(tier.capacity, points - cost)
        self.buckets[key] = (points, now)
        return points if admitted else points - cost


class RateLimiter:
    def __init__(
        self, redis: Redis | None, prefix: str = "corpgraph:bucket:", breaker: Breaker | None = None
    ) -> None:
        self.prefix = prefix
        self.script = redis.register_script(TAKE_SCRIPT) if redis is not None else None
        self.leases: dict[str, Lease] = {}
        self.local = LocalBuckets()
        self.degraded = redis is None
        self._warned = False
        self._breaker = breaker or Breaker()  # while open, Redis is not tried
        self._trips: dict[str, asyncio.Lock] = {}

    async def debit(self, client: str, tier: Tier, cost: int) -> Throttle:
        if (leased := self._from_lease(client, tier, cost)) is not None:
            return leased
        if self.script is None or self._breaker.open:
            return self._local(client, tier, cost)
        # one trip to Redis per client at a time: a burst waits for the lease the first takes
        # instead of each taking one of its own, or for the first to find Redis away
        lock = self._trips.setdefault(client, asyncio.Lock())
        async with lock:
            if (leased := self._from_lease(client, tier, cost)) is not None:
                return leased
            if self._breaker.open:
                return self._local(client, tier, cost)
            return await self._trip(client, tier, cost)

    def _from_lease(self, client: str, tier: Tier, cost: int) -> Throttle | None:
        lease = self.leases.get(client)
        if lease is not None and lease.points >= cost and time.monotonic() < lease.expires:
            lease.points -= cost
            return Throttle(True, lease.in_bucket + lease.points, tier)
        return None

    async def _trip(self, client: str, tier: Tier, cost: int) -> Throttle:
        assert self.script is not None
        now = time.monotonic()
        if len(self.leases) > MAX_CLIENTS:
            self._forget_idle(now)
        lease = self.leases.pop(client, None)
        given = lease.points if lease is not None else 0.0
        wanted = max(cost, math.floor(tier.capacity * LEASE_SHARE))
        try:
            arguments = [tier.capacity, tier.restore_rate, given, cost, wanted]
            taken, left = await self.script(keys=[self.prefix + client], args=arguments)
        except (RedisError, OSError) as error:
            self._degrade(error)
            return self._local(client, tier, cost)
        self._recovered()
        taken, left = float(taken), float(left)
        if taken == 0 and cost > 0:
            return Throttle(False, left - cost, tier)
        kept = taken - cost
        if (refunded := self.leases.get(client)) is not None:  # a refund came meanwhile
            kept += refunded.points
        self.leases[client] = Lease(kept, left, now + LEASE_SECONDS)
        return Throttle(True, left + kept, tier)

    def _forget_idle(self, now: float) -> None:
        """Clients not heard from for a lease's life: their leftovers stay spent (at most 2%
        of a bucket each, restored by the bucket in time); their debts are kept."""
        self.leases = {
            c: lease for c, lease in self.leases.items() if lease.expires > now or lease.points < 0
        }
        self._trips = {c: lock for c, lock in self._trips.items() if lock.locked()}

    async def refund(self, client: str, tier: Tier, points: int) -> Throttle:
        """Gives `points` back; takes them when negative, even beyond what the bucket holds
        (a request that cost more than it requested pays the difference: the bucket may go
        below zero, and the client waits longer)."""
        if self.script is None or self.degraded or self._breaker.open:
            return self._local(client, tier, -points, force=True)
        lease = self.leases.get(client)
        if lease is None:
            lease = self.leases[client] = Lease(0.0, 0.0, time.monotonic() + LEASE_SECONDS)
        lease.points += points
        return Throttle(True, min(tier.capacity, lease.in_bucket + lease.points), tier)

    def _local(self, client: str, tier: Tier, cost: int, force: bool = False) -> Throttle:
        available = self.local.apply(client, tier, cost, force)
        return Throttle(available >= 0 or cost <= 0, available, tier)

    def _degrade(self, error: Exception) -> None:
        self.degraded = True
        self._breaker.trip()
        if not self._warned:
            self._warned = True
            log.warning("rate limiting per process: Redis is unreachable (%s)", error)

    def _recovered(self) -> None:
        if self.degraded:
            log.warning("rate limiting shared again: Redis is back")
            self.degraded, self._warned = False, False
