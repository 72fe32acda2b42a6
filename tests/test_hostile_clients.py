"""Clients that misbehave below GraphQL, against a real `corpgraph serve` process on each HTTP
server, over sockets on 127.0.0.1: slow bodies (headers, then a byte at a time) hold no
in-flight slot while they trickle in, and are answered 408 (BAD_REQUEST) once the body
deadline passes; clients that leave in the middle of their body, and WebSocket messages that
are not text, leave no error in the server's log; subscribers that quit in the middle of a
replay leave no subscription running, and WebSockets that never send connection_init are
closed, on both protocols. Anyone can do each of these, as often as
they like: an error logged each time (with its trace) would fill the log and page whoever
watches its errors."""

import asyncio
import base64
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx2 as httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from graph.transports.ws_channel import CLOSE_GRACE_SECONDS
from tests.servers import SERVERS, corpgraph_environment, free_port, start_corpgraph, stop

pytestmark = pytest.mark.e2e

SLOTS = 4  # max_in_flight
ATTACKERS = 3 * SLOTS
BODY_SECONDS = 2.0  # body_timeout
SLACK_SECONDS = 3.0
DRIP_SECONDS = 0.5  # between two body bytes
DRIPS = 20  # at most: the attack ends within DRIPS * DRIP_SECONDS
QUERY = {"query": '{ company(ticker: "AAPL") { name } }'}
LEAVERS = 5


@dataclass(frozen=True)
class Served:
    address: str  # host:port
    log: Path  # what the server wrote
    pid: int

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest, database_url: str, redis_url: str) -> Iterator[Served]:
    """`corpgraph serve` on each HTTP server: the deadline is the app's, not the server's."""
    data_dir = tempfile.mkdtemp(prefix="corpgraph-slow-")
    log = Path(data_dir) / "serve.log"
    environment = corpgraph_environment(
        database_url,
        redis_url,
        data_dir,
        server=request.param,
        max_in_flight=str(SLOTS),
        body_timeout=str(BODY_SECONDS),
    )
    port = free_port()
    with log.open("wb") as output:
        process = start_corpgraph(port, environment, output)
        try:
            yield Served(f"127.0.0.1:{port}", log, process.pid)
        finally:
            stop(process)
            shutil.rmtree(data_dir, ignore_errors=True)


async def http_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


async def slow_body(host: str, port: int) -> tuple[bytes, float]:
    """Headers, then one body byte every DRIP_SECONDS; the answer (empty if none came) and
    when it came, in seconds after the headers were sent (from just before)."""
    reader, writer = await asyncio.open_connection(host, port)
    sent = time.monotonic()  # before the server can have the headers: the deadline starts later
    writer.write(
        f"POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n{".encode()
    )
    await writer.drain()
    answer = asyncio.ensure_future(http_response(reader))
    try:
        for _ in range(DRIPS):
            done, _ = await asyncio.wait({answer}, timeout=DRIP_SECONDS)
            if done:
                break
            writer.write(b" ")
            await writer.drain()
        done, _ = await asyncio.wait({answer}, timeout=SLACK_SECONDS)
        return answer.result() if done else b"", time.monotonic() - sent
    finally:
        answer.cancel()
        writer.close()


async def normal_requests(base: str) -> list[httpx.Response]:
    """Ordinary queries, one after another, while the attack goes on."""
    responses = []
    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.sleep(DRIP_SECONDS)  # every attacker has sent its headers
        for _ in range(8):
            responses.append(await client.post(f"{base}/graphql", json=QUERY))
            await asyncio.sleep(0.1)
    return responses


async def attack(server: str) -> tuple[list[tuple[bytes, float]], list[httpx.Response]]:
    host, port = server.split(":")
    slow = asyncio.gather(*(slow_body(host, int(port)) for _ in range(ATTACKERS)))
    normal = await normal_requests(f"http://{server}")
    return await slow, normal


def test_slow_bodies_hold_no_slot_and_are_cut_off(server: Served) -> None:
    slow, normal = asyncio.run(attack(server.address))
    assert [r.status_code for r in normal] == [200] * len(normal)
    assert {r.json()["data"]["company"]["name"] for r in normal} == {"Apple Inc."}
    for answer, seconds in slow:
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), head
        error = orjson.loads(body)["errors"][0]
        assert error["extensions"]["code"] == "BAD_REQUEST"
        assert "2 s" in error["message"]
        assert BODY_SECONDS <= seconds <= BODY_SECONDS + SLACK_SECONDS


async def half_body_and_leave(host: str, port: int) -> None:
    _, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"POST /graphql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        'Content-Length: 1000\r\n\r\n{"query": "{ __typename'.encode()
    )
    await writer.drain()
    await asyncio.sleep(0.2)  # the server is reading the body
    writer.close()
    await writer.wait_closed()


def assert_no_error_logged(server: Served) -> None:
    logged = server.log.read_text(errors="replace")
    assert "Traceback" not in logged and " ERROR " not in logged, logged[-2000:]


def test_clients_that_leave_mid_body_leave_no_error(server: Served) -> None:
    host, port = server.address.split(":")

    async def leave_and_ask() -> httpx.Response:
        await asyncio.gather(*(half_body_and_leave(host, int(port)) for _ in range(LEAVERS)))
        async with httpx.AsyncClient(timeout=10) as client:
            return await client.post(f"http://{server.address}/graphql", json=QUERY)

    answer = asyncio.run(leave_and_ask())
    assert answer.json()["data"]["company"]["name"] == "Apple Inc."
    assert_no_error_logged(server)


@pytest.mark.parametrize(
    ("protocol", "code"), [("graphql-transport-ws", 4400), ("graphql-ws", 1002)]
)
def test_a_binary_websocket_message_closes_the_connection(
    server: Served, protocol: str, code: int
) -> None:
    """Both protocols carry JSON text only: anything else closes the connection, with
    graphql-transport-ws's 4400, or legacy graphql-ws's 1002 (protocol error)."""

    async def send_binary() -> int | None:
        url = f"ws://{server.address}/graphql"
        async with connect(url, subprotocols=[Subprotocol(protocol)]) as websocket:
            await websocket.send(b'{"type": "connection_init"}')
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(websocket.recv(), 10)
            return websocket.close_code

    assert asyncio.run(send_binary()) == code
    assert_no_error_logged(server)


EAGER = 20  # WebSocket clients that send a frame before the handshake is answered
INIT_SECONDS = 10  # graphql-transport-ws's connection_init timeout (graph/transports/websocket.py)


def masked_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A client's frame (RFC 6455: masked; text by default), of under 126 bytes."""
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


INIT = masked_frame(b'{"type": "connection_init"}')
EAGER_FRAMES = [  # what each eager client sends with its upgrade
    INIT,
    masked_frame(b"\x00\xff", opcode=2),  # binary
    masked_frame(b'\xff\xfe{"type"'),  # text, not UTF-8
    INIT[:-3],  # the start of a frame
]


async def eager_websocket(host: str, port: int, frame: bytes) -> None:
    """An upgrade and connection_init in one write, then gone: RFC 6455 says to wait for the
    101 first, which nothing enforces."""
    key = base64.b64encode(os.urandom(16)).decode()
    upgrade = (
        f"GET /graphql HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
    )
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(upgrade.encode() + frame)
    await writer.drain()
    with suppress(TimeoutError):
        await asyncio.wait_for(reader.read(100), 2)
    writer.close()
    await writer.wait_closed()


def test_websockets_that_do_not_wait_for_the_handshake_let_go(server: Served) -> None:
    """Hypercorn answers such a connection 400 and never tells the app it is gone: each held a
    socket, and the app's task, for ever; and the connection_init timeout logged an error for
    some (it closed a connection closed already)."""
    host, port = server.address.split(":")
    httpx.post(f"http://{server.address}/graphql", json=QUERY)  # its pools are open
    before = server.open_files()

    async def attack() -> None:
        frames = EAGER_FRAMES * (EAGER // len(EAGER_FRAMES))
        await asyncio.gather(*(eager_websocket(host, int(port), frame) for frame in frames))

    asyncio.run(attack())
    deadline = time.monotonic() + INIT_SECONDS + CLOSE_GRACE_SECONDS + SLACK_SECONDS
    while server.open_files() > before + 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert server.open_files() <= before + 2, (before, server.open_files())
    assert_no_error_logged(server)


REPLAYED = {  # AAPL's filings from the first one on: a replay, then the live wait
    "query": 'subscription { filingAdded(tickers: ["AAPL"], since: "aW5nZXN0OjE=") '
    "{ accessionNumber } }"
}
QUITTERS = 5


def active_subscriptions(server: Served) -> float:
    metrics = httpx.get(f"http://{server.address}/metrics").text
    line = next(m for m in metrics.splitlines() if m.startswith("corpgraph_subscriptions_active"))
    return float(line.split()[-1])


async def quit_during_replay(address: str) -> None:
    """Subscribes, takes two of the replayed filings and closes, as the rest are sent."""
    url = f"ws://{address}/graphql"
    protocol = Subprotocol("graphql-transport-ws")
    async with connect(url, subprotocols=[protocol], open_timeout=5) as websocket:
        await websocket.send(orjson.dumps({"type": "connection_init"}).decode())
        await asyncio.wait_for(websocket.recv(), 5)  # connection_ack
        subscribe = {"id": "1", "type": "subscribe", "payload": REPLAYED}
        await websocket.send(orjson.dumps(subscribe).decode())
        for _ in range(2):
            assert orjson.loads(await asyncio.wait_for(websocket.recv(), 5))["type"] == "next"


def test_subscriptions_whose_client_quits_during_their_replay_end(server: Served) -> None:
    """Each was cancelled as it charged an event to the budget in Redis, which redis-py lost
    on Python 3.11: it then waited for live alerts for ever, on Hypercorn, holding the client's
    connection and subscription slots (graph/redis_client.py)."""
    assert active_subscriptions(server) == 0

    async def quitters() -> None:
        for _ in range(QUITTERS):
            await quit_during_replay(server.address)

    asyncio.run(quitters())
    deadline = time.monotonic() + SLACK_SECONDS
    while active_subscriptions(server) > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert active_subscriptions(server) == 0
    assert_no_error_logged(server)


async def closed_without_init(address: str, protocol: str) -> int | None:
    """The close code a WebSocket gets that never sends connection_init."""
    subprotocol = Subprotocol(protocol)
    async with connect(f"ws://{address}/graphql", subprotocols=[subprotocol]) as websocket:
        with suppress(ConnectionClosed):
            await asyncio.wait_for(websocket.recv(), INIT_SECONDS + SLACK_SECONDS)
        return websocket.close_code


def test_a_websocket_that_never_initialises_is_closed(server: Served) -> None:
    """On both protocols: legacy graphql-ws had no timeout, and such a connection (which takes
    no slot before connection_init) held a socket and a task for ever."""

    async def both() -> list[int | None]:
        protocols = ("graphql-transport-ws", "graphql-ws")
        return list(
            await asyncio.gather(*(closed_without_init(server.address, p) for p in protocols))
        )

    assert asyncio.run(both()) == [4408, 4408]
    assert_no_error_logged(server)


def test_an_event_streams_status_comes_before_its_first_event(server: Served) -> None:
    """A stream with nothing to send yet still answers its status and headers at once (an
    EventSource's `onopen`), not with its first heartbeat 15 s later."""
    host, port = server.address.split(":")
    query = quote('subscription { filingAdded(tickers: ["AAPL"]) { formType } }')  # none yet

    async def head() -> bytes:
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"GET /graphql?query={query} HTTP/1.1\r\nHost: {host}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        try:
            return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), SLACK_SECONDS)
        finally:
            writer.close()

    assert asyncio.run(head()).startswith(b"HTTP/1.1 200")
