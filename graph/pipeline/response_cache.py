"""Answers to persisted queries, kept in Redis (cache role) for a short while.

An answer is keyed by everything that can change it: the document's hash, the operation, the
variables, and who asks (tier and scopes). It is listed under each company it was read from, in
one Redis set per company; ingesting a filing of a company drops the answers listed under it.
An answer read while a filing was being ingested is not kept (the epoch it began in has
passed), so a drop can never be overtaken by a slow request storing what it read before.
Redis is an accelerator here: when it is away, requests run as if nothing were cached.

Each process also holds the answers it reads or makes for a moment (`local`, a second by
default, never longer than Redis still keeps them) in its own memory, so that a popular answer
skips the round trip to Redis. A drop forgets them all, before it sends anything to Redis;
every process drops on every ingested filing (through its alert broker), so a held answer
outlives a drop only while the broker has not heard of it, and never by more than `local`. An
answer read before a drop is not held after it, as in Redis.

A drop that does not reach Redis (away, or to come back from its own file with the answers it
had) is sent again before this process answers from the cache: until it arrives, the cache is
away for this process (every process hears of every filing, so each holds the drops it missed),
and an answer looked up before it is not kept.

A settled answer (read wholly as of instants long past: loaders/request.py) is kept longer,
under its key with SETTLED appended, so that a hit knows it is settled without a second read;
the company indexes live as long as the longest-lived answer they list.
"""

import hashlib
import logging
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from graph.bounded import BoundedByBytes
from loaders.cache import CACHE_LOOKUPS, Breaker
from loaders.request import EVERY_COMPANY
from resolvers.context import Viewer

log = logging.getLogger(__name__)
HITS = CACHE_LOOKUPS.labels("response", "hit")  # in Redis
MISSES = CACHE_LOOKUPS.labels("response", "miss")
HELD_HITS = CACHE_LOOKUPS.labels("response_held", "hit")  # in the process, before Redis
HELD_MISSES = CACHE_LOOKUPS.labels("response_held", "miss")

PREFIX = "cg:response:v1:"
INDEX = "cg:response:v1:company:"
EPOCH = "cg:response:v1:epoch"
SETTLED = ":settled"
# root fields whose answer is the asker's own, right now
UNCACHEABLE_FIELDS = frozenset({"rateLimit"})

# KEYS: epoch, answer, company indexes; ARGV: epoch seen, answer, ttl in seconds, the most
# answers an index may list (a full index is dropped with its answers: its members would
# otherwise outlive their expired answers for as long as the company files nothing)
PUT = """
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
for i = 3, #KEYS do
  if redis.call('SCARD', KEYS[i]) >= tonumber(ARGV[4]) then
    for _, answer in ipairs(redis.call('SMEMBERS', KEYS[i])) do redis.call('UNLINK', answer) end
    redis.call('UNLINK', KEYS[i])
  end
end
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
for i = 3, #KEYS do
  redis.call('SADD', KEYS[i], KEYS[2])
  if redis.call('TTL', KEYS[i]) < tonumber(ARGV[3]) then redis.call('EXPIRE', KEYS[i], ARGV[3]) end
end
return 1
"""
# KEYS: answer, settled answer, epoch. Both answers, the epoch, and the milliseconds the one
# found has left (a held answer must not outlive it)
READ = """
local found = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3])
local left = 0
if found[2] then
  left = redis.call('PTTL', KEYS[2])
elseif found[1] then
  left = redis.call('PTTL', KEYS[1])
end
return {found[1], found[2], found[3], left}
"""
MAX_LISTED = 10_000
LOCAL_BYTES = 16_000_000  # answers each process holds, at most (expired ones until pushed out)
HELD_OVERHEAD = 256  # bytes a held answer takes beyond its key's and its own: the entry, Held
# KEYS: epoch, company indexes. The answers a set lists are deleted by name: fine on one Redis
# server (the cache role is never a cluster here).
DROP = """
redis.call('INCR', KEYS[1])
local dropped = 0
for i = 2, #KEYS do
  local answers = redis.call('SMEMBERS', KEYS[i])
  for _, answer in ipairs(answers) do dropped = dropped + redis.call('UNLINK', answer) end
  redis.call('UNLINK', KEYS[i])
end
return dropped
"""


@dataclass(frozen=True)
class Lookup:
    key: str
    answer: bytes | str | None  # the cached `data`, as JSON
    epoch: bytes | str  # when it was made: an answer computed now is kept only if unchanged
    settled: bool = False  # the answer was settled (kept for settled_ttl)
    drops: int = 0  # the process's drops before it: an answer is held only if none came since


@dataclass(frozen=True)
class Held:
    """An answer in this process's memory, until `until` (time.monotonic)."""

    answer: bytes | str
    settled: bool
    until: float


class ResponseCache:
    def __init__(
        self,
        redis: Redis,
        ttl: timedelta,
        settled_ttl: timedelta | None = None,
        max_listed: int = MAX_LISTED,
        local: timedelta = timedelta(0),
        breaker: Breaker | None = None,
    ) -> None:
        self.redis, self.ttl, self.max_listed = redis, ttl, max_listed
        self.breaker = breaker or Breaker()  # while it is open, Redis is away
        self.settled_ttl = settled_ttl or ttl
        self.local = min(local, ttl).total_seconds()  # never longer than Redis keeps it
        self._held: BoundedByBytes[str, Held] = BoundedByBytes(LOCAL_BYTES)
        self._drops = 0
        self._undelivered: set[str] = set()  # company indexes whose drop Redis missed
        self._read = redis.register_script(READ)
        self._put = redis.register_script(PUT)
        self._drop = redis.register_script(DROP)

    @staticmethod
    def key(
        document_hash: str,
        operation_name: str | None,
        variables: Mapping[str, Any] | None,
        viewer: Viewer,
    ) -> str:
        scopes = sorted(viewer.scopes)
        identity = [document_hash, operation_name, variables or {}, viewer.tier, scopes]
        digest = hashlib.sha256(orjson.dumps(identity, option=orjson.OPT_SORT_KEYS))
        return PREFIX + digest.hexdigest()

    async def lookup(self, key: str) -> Lookup | None:
        """The cached answer, if any; None when Redis is away (then nothing is kept either)."""
        if self.local:
            held = self._held.get(key)
            if held is not None and held.until > time.monotonic():
                HELD_HITS.inc()
                return Lookup(key, held.answer, b"", held.settled)
            HELD_MISSES.inc()
        if self.breaker.open or (self._undelivered and await self._deliver() is None):
            return None
        drops = self._drops
        try:
            answer, settled, epoch, left = await self._read([key, key + SETTLED, EPOCH])
        except RedisError as error:
            self.breaker.trip()
            log.warning("response cache read failed: %s", error)
            return None
        found = answer if settled is None else settled
        if found is None:
            MISSES.inc()
            return Lookup(key, None, epoch or b"0", drops=drops)
        HITS.inc()
        self._hold(key, found, settled is not None, drops, left / 1000)
        return Lookup(key, found, epoch or b"0", settled is not None)

    def _hold(
        self, key: str, answer: bytes | str, settled: bool, drops: int, seconds_left: float
    ) -> None:
        """Holds an answer in this process for `local`, or the `seconds_left` to it in Redis if
        fewer, unless a drop came since it was read (`drops`: how many there had been)."""
        seconds = min(self.local, seconds_left)
        if seconds > 0 and drops == self._drops:
            held = Held(answer, settled, time.monotonic() + seconds)
            self._held.put(key, held, len(key) + len(answer) + HELD_OVERHEAD)

    async def keep(
        self, lookup: Lookup, answer: bytes, companies: Collection[str], settled: bool = False
    ) -> bool:
        """Keeps `answer` under `lookup.key`, listed under each company, unless a filing was
        ingested since the lookup (Redis's epoch; and this process's drops, for those Redis
        missed); a settled one longer. Whether it was kept."""
        if lookup.drops != self._drops or self.breaker.open:
            return False
        indexes = [INDEX + company for company in companies]
        key = lookup.key + SETTLED if settled else lookup.key
        ttl = max(1, int((self.settled_ttl if settled else self.ttl).total_seconds()))
        try:
            keys, arguments = [EPOCH, key, *indexes], [lookup.epoch, answer, ttl]
            kept = await self._put(keys, [*arguments, self.max_listed])
        except RedisError as error:
            self.breaker.trip()
            log.warning("response cache write failed: %s", error)
            return False
        if kept:  # a copy: orjson's bytes keep 4 KB allocated, however short (a 40-byte answer)
            self._hold(lookup.key, bytes(memoryview(answer)), settled, lookup.drops, ttl)
        return bool(kept)

    @property
    def held_bytes(self) -> int:
        """What the answers this process holds are counted for, against LOCAL_BYTES."""
        return self._held.bytes

    def forget_held(self) -> None:
        """Forgets the answers this process holds, and those its lookups under way read."""
        self._drops += 1
        self._held.clear()

    async def drop(self, companies: Iterable[int]) -> int:
        """Drops every answer read from these companies (or from a list of all filings); how
        many. Called after the commit of an ingested filing."""
        self.forget_held()  # first: a lookup under way must not hold what it read
        self._undelivered |= {INDEX + EVERY_COMPANY, *(INDEX + str(c) for c in companies)}
        if self.breaker.open:
            return 0
        return await self._deliver() or 0

    async def _deliver(self) -> int | None:
        """Sends the drops Redis has not had: how many answers they dropped; None when it is
        away (they are sent again before any hit)."""
        indexes = [*self._undelivered]
        try:
            dropped = int(await self._drop([EPOCH, *indexes]))
        except RedisError as error:
            self.breaker.trip()
            log.warning("response cache invalidation failed, sent again before any hit: %s", error)
            return None
        self._undelivered.difference_update(indexes)
        return dropped
