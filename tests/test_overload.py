"""Overload: requests over the in-flight cap are shed with 503 + Retry-After, never a 500, and
a request whose client went away stops waiting on PostgreSQL. The slow queries are real: a
test transaction holds a lock they wait for."""

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx2 as httpx
import orjson
import pytest
from sqlalchemy import text

from db.engine import create_engine
from graph.app import create_app
from graph.settings import Settings
from tests.servers import threaded

QUERY = {"query": '{ company(ticker: "AAPL") { name } }'}
WAITING = (
    "SELECT count(*) FROM pg_stat_activity"
    " WHERE wait_event_type = 'Lock' AND query LIKE '%FROM companies%'"
)


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[str]:
    # no entity cache: AAPL must come from the (locked) table
    slow = settings.replace(
        redis_url=None, max_in_flight=3, statement_timeout=timedelta(seconds=20)
    )
    with threaded(create_app(slow), "/health/live") as base:
        yield f"{base}/graphql"


def waiting_queries(database_url: str) -> int:
    async def count() -> int:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(text(WAITING))).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(count())


async def burst(url: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(*(client.post(url, json=QUERY) for _ in range(count)))


def test_a_burst_over_the_cap_is_shed(
    server: str, companies_locked: threading.Event, database_url: str
) -> None:
    async def scenario() -> list[httpx.Response]:
        pending = asyncio.ensure_future(burst(server, 12))
        deadline = time.monotonic() + 10
        while await asyncio.to_thread(waiting_queries, database_url) < 3:
            assert time.monotonic() < deadline, "three requests never reached PostgreSQL"
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the rest of the burst arrives and is shed meanwhile
        companies_locked.set()  # the three admitted requests may now finish
        return await pending

    responses = asyncio.run(scenario())
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) >= 3 and statuses.count(503) >= 1, statuses
    assert set(statuses) <= {200, 503}
    for shed in (r for r in responses if r.status_code == 503):
        assert shed.headers["retry-after"] == "1"
        assert shed.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    for served in (r for r in responses if r.status_code == 200):
        assert served.json()["data"] == {"company": {"name": "Apple Inc."}}
    after = httpx.post(server, json=QUERY)
    assert after.status_code == 200 and after.json()["data"]["company"]["name"] == "Apple Inc."


def test_a_client_that_leaves_stops_its_sql(
    server: str, companies_locked: threading.Event, database_url: str
) -> None:
    host, port = server.removeprefix("http://").split("/")[0].split(":")
    body = orjson.dumps(QUERY)
    request = (
        f"POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection((host, int(port))) as client:
        client.sendall(request)
        deadline = time.monotonic() + 10
        while waiting_queries(database_url) == 0:
            assert time.monotonic() < deadline, "the query never reached PostgreSQL"
            time.sleep(0.1)
    deadline = time.monotonic() + 5  # the client is gone: its query must be cancelled
    while waiting_queries(database_url) > 0:
        assert time.monotonic() < deadline, "the query kept waiting after the client left"
        time.sleep(0.1)
    companies_locked.set()
    assert httpx.post(server, json=QUERY).status_code == 200
