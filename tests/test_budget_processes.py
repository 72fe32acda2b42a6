"""One client's budget holds across server processes: two `corpgraph serve` processes share
the bucket in Redis, so 300 concurrent requests never spend more than the bucket gave."""

import asyncio
import time
from collections.abc import Iterator

import httpx2 as httpx
import orjson
import pytest

from tests.conftest import new_api_key
from tests.servers import corpgraph_processes

pytestmark = pytest.mark.e2e

CAPACITY, RESTORE_RATE = 200, 5.0
# requested 25 (a fetch of 4, a page of 20), actual 5: no company is in this sector, so 20 come
# back each time
QUERY = {"query": '{ companies(first: 20, sector: "No Such Sector") { nodes { name } } }'}


@pytest.fixture(scope="module")
def key(database_url: str) -> str:
    return new_api_key(database_url)


@pytest.fixture(scope="module")
def two_servers(database_url: str, redis_url: str) -> Iterator[list[str]]:
    tier = {"ceiling": CAPACITY, "capacity": CAPACITY, "restore_rate": RESTORE_RATE}
    tiers = orjson.dumps({"free": tier}).decode()
    # max_in_flight: this test is about budgets, not shedding
    with corpgraph_processes(2, database_url, redis_url, tiers=tiers, max_in_flight="500") as hosts:
        yield [f"http://{host}/graphql" for host in hosts]


async def hammer(urls: list[str], key: str, count: int) -> list[httpx.Response]:
    headers = {"authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=count)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        return await asyncio.gather(
            *(client.post(urls[i % 2], json=QUERY, headers=headers) for i in range(count))
        )


def test_concurrent_requests_never_overspend(two_servers: list[str], key: str) -> None:
    started = time.monotonic()
    responses = asyncio.run(hammer(two_servers, key, 300))
    elapsed = time.monotonic() - started
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, sorted(set(statuses))
    admitted = [r.json() for r in responses if r.status_code == 200]
    for body in admitted:
        cost = body["extensions"]["cost"]
        assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (25, 5)
    # every admitted request spent 5 points in the end, and the bucket gave no more than this
    given = CAPACITY + RESTORE_RATE * elapsed
    assert len(admitted) <= given / 5 + 1, (len(admitted), elapsed)
    # without refunds each would have kept 25 points: far fewer would have been admitted
    assert len(admitted) > given / 25 + 1, (len(admitted), elapsed)
    assert statuses.count(429) > 0
