"""Cancellation reaches PostgreSQL: a client that leaves (HTTP, WebSocket, SSE) or a request
past its deadline takes its statement with it, against a real `corpgraph serve`. The slow
statement is real: this test's own transaction holds a lock the request's query waits for,
and `pg_stat_activity` shows it waiting, then gone."""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import httpx2 as httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from db.ingest import INGEST_LOCK
from db.reader import plain_dsn
from tests.conftest import new_api_key
from tests.servers import corpgraph_processes

GONE_WITHIN_SECONDS = 1.0
POLL_SECONDS = 0.05
DEADLINE_SECONDS = 1.0  # request_timeout of the server that tests deadlines
# since ingest:0, before every filing: the replay reads the filings table, and resolving
# each event's metrics reads financial_metrics
REPLAY = 'subscription { filingAdded(since: "aW5nZXN0OjA=") { accessionNumber %s } }'
WAITS = {
    "replay": ("filings", REPLAY % ""),
    "event": ("financial_metrics", REPLAY % "metrics { name }"),
}

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def patient(database_url: str, redis_url: str) -> Iterator[str]:
    """A server whose deadlines are far away: only the client's leaving ends a request."""
    settings = {"request_timeout": "60", "statement_timeout": "60", "body_timeout": "60"}
    with corpgraph_processes(1, database_url, redis_url, **settings) as servers:
        yield servers[0]


@pytest.fixture(scope="module")
def hasty(database_url: str, redis_url: str) -> Iterator[str]:
    settings = {"request_timeout": str(DEADLINE_SECONDS), "statement_timeout": "60"}
    with corpgraph_processes(1, database_url, redis_url, **settings) as servers:
        yield servers[0]


async def reads_running(observer: asyncpg.Connection) -> int:
    """Statements of corpgraph's read pool running (or waiting) in this database."""
    count: int = await observer.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'corpgraph-read' "
        "AND datname = current_database() AND state = 'active'"
    )
    return count


async def waiting_on_lock(observer: asyncpg.Connection) -> None:
    deadline = time.monotonic() + 30
    while not await observer.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'corpgraph-read' "
        "AND datname = current_database() AND state = 'active' AND wait_event_type = 'Lock'"
    ):
        assert time.monotonic() < deadline, "the request's statement never waited on the lock"
        await asyncio.sleep(POLL_SECONDS)


async def gone(observer: asyncpg.Connection) -> None:
    """No read statement left running within GONE_WITHIN_SECONDS, polled every 50 ms."""
    deadline = time.monotonic() + GONE_WITHIN_SECONDS
    while (running := await reads_running(observer)) > 0:
        assert time.monotonic() < deadline, f"{running} statement(s) still running"
        await asyncio.sleep(POLL_SECONDS)


@asynccontextmanager
async def locked(database_url: str, table: str) -> AsyncIterator[asyncpg.Connection]:
    """`table` locked by a transaction of this test's own; yields a connection that observes."""
    holder = await asyncpg.connect(plain_dsn(database_url))
    observer = await asyncpg.connect(plain_dsn(database_url))
    try:
        async with holder.transaction():
            await holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            yield observer
    finally:
        await holder.close()
        await observer.close()


def slow_query() -> bytes:
    """Reads companies; a search of its own so that no cache answers it."""
    query = f'{{ companies(search: "{uuid.uuid4().hex}") {{ totalCount }} }}'
    return orjson.dumps({"query": query})


async def post(
    client: httpx.AsyncClient, server: str, body: bytes, **headers: str
) -> httpx.Response:
    headers["content-type"] = "application/json"
    return await client.post(f"http://{server}/graphql", content=body, headers=headers)


async def raw_post(server: str, body: bytes, **headers: str) -> asyncio.StreamWriter:
    """A POST sent on a socket of its own, which the caller closes to leave."""
    host, port = server.split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    head = "".join(f"{name.replace('_', '-')}: {value}\r\n" for name, value in headers.items())
    writer.write(
        f"POST /graphql HTTP/1.1\r\nHost: {server}\r\nContent-Type: application/json\r\n"
        f"{head}Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    return writer


async def still_serves(server: str) -> None:
    """After the lock is gone, requests that read the tables answer (the pool is healthy)."""
    async with httpx.AsyncClient(timeout=30) as client:
        for _ in range(3):  # more than one: each may get any pooled connection
            response = await post(client, server, slow_query())
            assert response.status_code == 200, response.text
            assert response.json()["data"] == {"companies": {"totalCount": 0}}
        filings = await post(client, server, b'{"query": "{ filings { totalCount } }"}')
        assert filings.json()["data"]["filings"]["totalCount"] > 0, filings.text


def test_http_client_that_leaves_cancels_its_statement(patient: str, database_url: str) -> None:
    async def run() -> None:
        async with locked(database_url, "companies") as observer:
            request = await raw_post(patient, slow_query())
            await waiting_on_lock(observer)
            request.close()
            await gone(observer)
        await still_serves(patient)

    asyncio.run(run())


def test_request_past_its_deadline_cancels_its_statement(hasty: str, database_url: str) -> None:
    async def run() -> None:
        async with locked(database_url, "companies") as observer:
            async with httpx.AsyncClient(timeout=30) as client:
                response = await post(client, hasty, slow_query())
            assert response.status_code == 504, response.text
            assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["TIMEOUT"]
            await gone(observer)
        await still_serves(hasty)

    asyncio.run(run())


@pytest.mark.parametrize("waits_in", WAITS)
@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
def test_websocket_that_closes_cancels_its_statement(
    patient: str, database_url: str, protocol: str, waits_in: str
) -> None:
    """Closed while the replay's statement runs, or while an event is being resolved."""
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    table, query = WAITS[waits_in]

    async def run() -> None:
        async with locked(database_url, table) as observer:
            async with connect(
                f"ws://{patient}/graphql", subprotocols=[Subprotocol(protocol)]
            ) as websocket:
                await websocket.send(orjson.dumps({"type": "connection_init"}).decode())
                assert orjson.loads(await websocket.recv())["type"] == "connection_ack"
                message = {"id": "1", "type": start, "payload": {"query": query}}
                await websocket.send(orjson.dumps(message).decode())
                await waiting_on_lock(observer)
            await gone(observer)
        await still_serves(patient)

    asyncio.run(run())


@pytest.mark.parametrize("waits_in", WAITS)
def test_event_stream_that_closes_cancels_its_statement(
    patient: str, database_url: str, waits_in: str
) -> None:
    table, query = WAITS[waits_in]

    async def run() -> None:
        async with locked(database_url, table) as observer:
            body = orjson.dumps({"query": query})
            stream = await raw_post(patient, body, accept="text/event-stream")
            await waiting_on_lock(observer)
            stream.close()
            await gone(observer)
        await still_serves(patient)

    asyncio.run(run())


INGEST = """mutation($input: IngestFilingInput!) {
  ingestFiling(input: $input) { accessionNumber documentUrl } }"""


def ingest_body(number: str) -> bytes:
    filing = {
        "ticker": "AAPL",
        "accessionNumber": number,
        "formType": "8-K",
        "filedAt": "2026-11-05T13:00:00Z",
        "documentText": f"the document of {number}",
    }
    return orjson.dumps({"query": INGEST, "variables": {"input": filing}})


@asynccontextmanager
async def ingest_lock_held(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """Another session holds the ingestion lock; yields a connection that observes."""
    holder = await asyncpg.connect(plain_dsn(database_url))
    observer = await asyncpg.connect(plain_dsn(database_url))
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", INGEST_LOCK)
        yield observer
    finally:
        await holder.close()
        await observer.close()


async def ingest_waits(observer: asyncpg.Connection) -> bool:
    """An ingestion waits for the lock."""
    count: int = await observer.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state = 'active' AND query LIKE '%pg_advisory_xact_lock%' "
        "AND pid <> pg_backend_pid()"
    )
    return count > 0


async def until(condition: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(POLL_SECONDS)


async def fail_a_retry(
    server: str, body: bytes, writer: str, failure: str, observer: asyncpg.Connection
) -> None:
    """Sends `body` again, then leaves, lets its deadline pass, or terminates its backend;
    its statement is gone within GONE_WITHIN_SECONDS."""
    if failure == "disconnect":
        request = await raw_post(server, body, authorization=f"Bearer {writer}")
        await until(lambda: ingest_waits(observer), 30, "the retry never waited for the lock")
        request.close()
    elif failure == "dead connection":
        async with httpx.AsyncClient(timeout=30) as client:
            sent = asyncio.ensure_future(
                post(client, server, body, authorization=f"Bearer {writer}")
            )
            await until(lambda: ingest_waits(observer), 30, "the retry never waited for the lock")
            await observer.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> "
                "pg_backend_pid() AND query LIKE '%pg_advisory_xact_lock%'"
            )
            retry = await sent
        assert retry.status_code == 503, retry.text
        assert retry.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    else:
        async with httpx.AsyncClient(timeout=30) as client:
            retry = await post(client, server, body, authorization=f"Bearer {writer}")
        assert retry.json()["errors"][0]["extensions"]["code"] == "TIMEOUT", retry.text

    async def settled() -> bool:
        return not await ingest_waits(observer)

    await until(settled, GONE_WITHIN_SECONDS, "the retry's statement still runs")


@pytest.mark.parametrize("failure", ["disconnect", "deadline", "dead connection"])
def test_a_retry_that_fails_keeps_the_stored_document(
    patient: str, hasty: str, database_url: str, failure: str
) -> None:
    """An ingestion, then the identical one again while another session holds the ingestion
    lock; the retry's client leaves, its deadline passes or its connection dies: the filing's
    document is still served at its documentUrl, before and after one more retry that
    succeeds."""
    server = hasty if failure == "deadline" else patient
    writer = new_api_key(database_url, "pro", ("filings:write",))
    number = f"0000320193-26-5003{len(failure):02d}"
    body = ingest_body(number)
    read = orjson.dumps({"query": f'{{ filing(accessionNumber: "{number}") {{ documentUrl }} }}'})

    async def run() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            first = await post(client, server, body, authorization=f"Bearer {writer}")
            url = first.json()["data"]["ingestFiling"]["documentUrl"]
            async with ingest_lock_held(database_url) as observer:
                await fail_a_retry(server, body, writer, failure, observer)
            assert (await client.get(url)).text == f"the document of {number}"
            again = await post(client, server, body, authorization=f"Bearer {writer}")
            assert again.json()["data"]["ingestFiling"]["accessionNumber"] == number, again.text
            found = (await post(client, server, read)).json()["data"]["filing"]["documentUrl"]
            assert (await client.get(found)).text == f"the document of {number}"

    asyncio.run(run())


async def next_of(websocket: ClientConnection, id: str) -> dict[str, Any]:
    """The next `next` payload of subscription `id` (others' skipped), within 10 s."""
    async with asyncio.timeout(10):
        while True:
            message = orjson.loads(await websocket.recv())
            if (message.get("id"), message.get("type")) == (id, "next"):
                payload: dict[str, Any] = message["payload"]
                return payload


def test_one_subscriptions_event_cancels_nothing_of_anothers(
    patient: str, database_url: str
) -> None:
    """On one connection, subscription `a` replays and waits for its next event's metrics
    (locked) when subscription `b` gets a live filing: `a`'s statement goes on, and its event
    comes once the lock is gone."""
    writer = new_api_key(database_url, "pro", ("filings:write",))
    subprotocols = [Subprotocol("graphql-transport-ws")]
    replay = WAITS["event"][1]
    live = "subscription { filingAdded { accessionNumber } }"
    accession = "0000320193-26-500400"

    async def run() -> None:
        async with connect(f"ws://{patient}/graphql", subprotocols=subprotocols) as websocket:
            await websocket.send(orjson.dumps({"type": "connection_init"}).decode())
            assert orjson.loads(await websocket.recv())["type"] == "connection_ack"
            async with locked(database_url, "financial_metrics") as observer:
                for id, query in (("a", replay), ("b", live)):
                    message = {"id": id, "type": "subscribe", "payload": {"query": query}}
                    await websocket.send(orjson.dumps(message).decode())
                await waiting_on_lock(observer)
                async with httpx.AsyncClient(timeout=30) as client:
                    body = ingest_body(accession)
                    stored = await post(client, patient, body, authorization=f"Bearer {writer}")
                assert "errors" not in stored.json(), stored.text
                event = await next_of(websocket, "b")
                assert event["data"]["filingAdded"]["accessionNumber"] == accession
            assert "errors" not in await next_of(websocket, "a")

    asyncio.run(run())
