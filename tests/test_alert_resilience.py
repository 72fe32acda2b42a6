"""No alert is lost when things go wrong: Redis restarts, the ingesting process dies right
after a commit, a server stops (1012 after flushing), a consumer is too slow (1013). Real
`corpgraph serve` processes, the npm graphql-ws client, and a client that stops reading."""

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close
from websockets.typing import Subprotocol

from db.engine import create_engine
from tests.filings import ALERT, NUMBERS, ingest
from tests.node import NodeClient, Subscriber
from tests.servers import (
    SERVERS,
    corpgraph_environment,
    free_port,
    redis_server,
    start_corpgraph,
    stop,
)

pytestmark = pytest.mark.e2e


class Stack:
    """A Redis of its own, and `corpgraph serve` processes on it that tests may stop."""

    def __init__(self, database_url: str, directory: Path) -> None:
        self.directory = directory
        self.redis_port = free_port()
        self.redis = redis_server(self.redis_port, directory)
        self.environment = corpgraph_environment(
            database_url, f"redis://127.0.0.1:{self.redis_port}/0", str(directory)
        )
        self.processes: list[subprocess.Popen[bytes]] = []

    def serve(self, port: int | None = None, **settings: str) -> str:
        port = port or free_port()
        environment = self.environment | {
            f"CORPGRAPH_{name.upper()}": value for name, value in settings.items()
        }
        self.processes.append(start_corpgraph(port, environment))
        return f"127.0.0.1:{port}"

    def restart_redis(self) -> None:
        self.redis.kill()  # an outage: nothing is saved
        self.redis.wait(10)
        self.redis = redis_server(self.redis_port, self.directory)

    def close(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                stop(process)
        self.redis.kill()
        self.redis.wait(10)


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(database_url, tmp_path_factory.mktemp("stack"))
    yield running
    running.close()


@pytest.fixture(scope="module")
def writer_server(stack: Stack) -> str:
    return stack.serve()


@pytest.fixture
def clients(client_tools: Path) -> Iterator[Any]:
    started: list[Subscriber] = []

    def start(server: str, variables: dict[str, Any], count: int = 1000) -> Subscriber:
        subscriber = Subscriber(client_tools, f"ws://{server}/graphql", variables, count)
        started.append(subscriber)
        return subscriber

    yield start
    for subscriber in started:
        subscriber.close()


def numbers(subscriber: Subscriber, count: int, seconds: float = 10) -> list[str]:
    got = []
    for _ in range(count):
        event = subscriber.next(seconds)
        assert "data" in event, event  # not {"closed": 1013}, not errors
        got.append(event["data"]["filingAdded"]["accessionNumber"])
    return got


def test_alerts_survive_a_redis_restart(
    stack: Stack, writer_server: str, writer: str, clients: Any
) -> None:
    reader = stack.serve()
    live = clients(reader, {"tickers": ["NVDA"]})
    live.connected()
    since = ingest(writer_server, writer, "NVDA")
    stack.restart_redis()  # budgets, caches: gone; ingestion and alerts do not need them
    missed = [ingest(writer_server, writer, "NVDA")["accessionNumber"] for _ in range(5)]
    assert numbers(live, 6) == [since["accessionNumber"], *missed]
    replay = clients(reader, {"tickers": ["NVDA"], "since": since["ingestCursor"]})
    assert replay.next() == {"connected": True}
    assert numbers(replay, 5) == missed
    time.sleep(0.5)
    after = ingest(writer_server, writer, "NVDA")["accessionNumber"]
    assert numbers(replay, 1) == numbers(live, 1) == [after]


def test_alerts_survive_the_ingesting_process_dying_right_after_a_commit(
    stack: Stack, writer_server: str, writer: str, clients: Any, database_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    """`corpgraph ingest` is killed (SIGKILL) the moment its first alert arrives: whatever it
    committed reaches the live subscriber and the replay, and nothing else does."""
    reader = stack.serve()
    before = ingest(writer_server, writer, "AMZN")["ingestCursor"]
    live = clients(reader, {"tickers": ["AMZN"], "since": before})
    live.connected()
    lines = [
        {"ticker": "AMZN", "accessionNumber": f"0001018724-26-7{next(NUMBERS):05d}",
         "formType": "8-K", "filedAt": "2026-11-02T13:00:00Z"}
        for _ in range(1500)
    ]  # fmt: skip
    bulk = tmp_path / "filings.jsonl"
    bulk.write_bytes(b"\n".join(orjson.dumps(line) for line in lines))
    loader = subprocess.Popen(
        [sys.executable, "-m", "graph", "ingest", str(bulk)],
        env=stack.environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    first = live.next(seconds=60)["data"]["filingAdded"]["accessionNumber"]
    loader.kill()
    loader.wait(10)
    wanted = [line["accessionNumber"] for line in lines]
    committed = asyncio.run(stored_numbers(database_url, wanted))
    assert 0 < len(committed) < len(lines), "the loader was not stopped half-way"
    assert [first, *numbers(live, len(committed) - 1)] == committed
    replay = clients(writer_server, {"tickers": ["AMZN"], "since": before})
    assert replay.next() == {"connected": True}
    assert numbers(replay, len(committed)) == committed
    after = ingest(writer_server, writer, "AMZN")["accessionNumber"]
    assert numbers(live, 1) == [after], "an alert came that nobody committed"


async def stored_numbers(database_url: str, wanted: list[str]) -> list[str]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT accession_number FROM filings WHERE accession_number = ANY(:wanted)"
                    " ORDER BY ingest_seq"
                ),
                {"wanted": wanted},
            )
            return [row[0] for row in rows]
    finally:
        await engine.dispose()


@pytest.mark.parametrize("server", SERVERS)
def test_a_stopping_server_flushes_then_closes_with_1012(
    stack: Stack, writer_server: str, writer: str, clients: Any, server: str
) -> None:
    """On either HTTP server: subscribers over both protocols (graphql-ws's npm client, and
    legacy graphql-ws) get every alert committed before SIGTERM, then 1012. A message larger
    than a request body may be is refused with 1009 first."""
    reader = stack.serve(server=server, max_body_bytes="4096")
    assert asyncio.run(closed_by_a_large_message(f"ws://{reader}/graphql")) == 1009
    alerts = clients(reader, {"tickers": ["GOOGL"]})
    alerts.connected()
    legacy = legacy_subscriber(f"ws://{reader}/graphql", "GOOGL")
    sent = [ingest(writer_server, writer, "GOOGL")["accessionNumber"] for _ in range(5)]
    stack.processes[-1].terminate()  # SIGTERM at once: the alerts may not have gone out yet
    assert numbers(alerts, 5) == sent
    assert alerts.next() == {"closed": 1012}
    assert legacy.result(timeout=30) == (sent, 1012)
    assert stack.processes[-1].wait(30) == 0


async def closed_by_a_large_message(url: str) -> int:
    protocols = [Subprotocol("graphql-transport-ws")]
    async with connect(url, subprotocols=protocols) as ws:
        await ws.send(orjson.dumps({"type": "connection_init"}).decode())
        assert orjson.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(orjson.dumps({"id": "1", "type": "subscribe",
                                    "payload": {"query": "#" * 5000}}).decode())  # fmt: skip
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code


def legacy_subscriber(url: str, ticker: str) -> "Future[tuple[list[str], int]]":
    """A legacy graphql-ws (subscriptions-transport-ws) subscriber in a thread of its own,
    subscribed when this returns: the accession numbers it then gets, and its close code."""
    subscribed = threading.Event()

    async def run() -> tuple[list[str], int]:
        got = []
        async with connect(url, subprotocols=[Subprotocol("graphql-ws")]) as ws:
            await ws.send(orjson.dumps({"type": "connection_init"}).decode())
            assert orjson.loads(await ws.recv())["type"] == "connection_ack"
            payload = {"query": ALERT, "variables": {"tickers": [ticker]}}
            await ws.send(orjson.dumps({"id": "1", "type": "start", "payload": payload}).decode())
            await asyncio.sleep(0.5)  # registered
            subscribed.set()
            try:
                while True:
                    message = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
                    if message["type"] == "data":
                        got.append(message["payload"]["data"]["filingAdded"]["accessionNumber"])
            except ConnectionClosed as error:
                assert error.rcvd is not None, "closed without a close frame"
                return got, error.rcvd.code

    done = ThreadPoolExecutor(1).submit(asyncio.run, run())
    assert subscribed.wait(30) or done.result(), "the legacy subscriber never subscribed"
    return done


METRICS = "metrics { name value unit periodStart periodEnd fiscalYear fiscalPeriod }"
# some 420 KB an event: the sockets' buffers hold a dozen or two (4-8 MB seen on loopback)
SLOW = (
    'subscription { filingAdded(tickers: ["META"]) { accessionNumber ingestCursor company { '
    + " ".join(f"m{n}: {METRICS}" for n in range(16))
    + " } } }"
)
INGESTED = 80


def test_a_consumer_too_slow_is_closed_with_1013_and_resumes(
    stack: Stack, writer_server: str, writer: str, clients: Any
) -> None:
    """A client that stops reading: its backlog fills, and it is closed with 1013 after
    the events it was sent, while another subscriber on the process keeps up. Resuming with
    `since` from the last event it got brings the rest, none twice."""
    # a backlog the stalled client fills within INGESTED events, and that the keeping-up one,
    # sharing the event loop with the stalled one's 420 KB events, does not (4 did, under load)
    reader = stack.serve(subscriber_backlog="24")
    keeping_up = clients(reader, {"tickers": ["META"]})
    keeping_up.connected()
    url = f"ws://{reader}/graphql"
    received, closed = asyncio.run(stalled_subscriber(url, writer_server, writer))
    assert closed.code == 1013, closed
    assert "since" in closed.reason
    everything = numbers(keeping_up, INGESTED, seconds=60)
    assert 0 < len(received) < INGESTED
    assert [number for number, _ in received] == everything[: len(received)]
    resumed = clients(reader, {"tickers": ["META"], "since": received[-1][1]})
    assert resumed.next() == {"connected": True}
    rest = numbers(resumed, INGESTED - len(received), seconds=60)
    assert rest == everything[len(received) :]


async def stalled_subscriber(
    url: str, writer_server: str, writer: str
) -> tuple[list[tuple[str, str]], Close]:
    """Subscribes, stops reading while INGESTED filings are ingested, then reads to the end:
    the (accessionNumber, ingestCursor) it got, and how it was closed."""
    received: list[tuple[str, str]] = []
    protocols = [Subprotocol("graphql-transport-ws")]
    # the client library stops reading once a frame waits unread (max_queue=1): the kernel's
    # buffers fill and the server's sends wait, as for a client on a slow link. (Not a tiny
    # SO_RCVBUF: below loopback's 64 KB MSS the window never reopens by itself, and the rest
    # of the stream crawls behind zero-window probes backing off for tens of seconds.)
    # No keepalive pings either: their pongs would wait behind the unread data.
    stalled = connect(url, subprotocols=protocols, max_queue=1, ping_interval=None)
    async with stalled as ws:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {writer}"}}
        await ws.send(orjson.dumps(init).decode())
        assert orjson.loads(await ws.recv())["type"] == "connection_ack"
        subscribe = {"id": "1", "type": "subscribe", "payload": {"query": SLOW}}
        await ws.send(orjson.dumps(subscribe).decode())
        await asyncio.sleep(0.5)
        for _ in range(INGESTED):
            await asyncio.to_thread(ingest, writer_server, writer, "META")
        try:
            while True:
                message = orjson.loads(await asyncio.wait_for(ws.recv(), 30))
                assert message["type"] in ("next", "ping"), message  # no error, no complete
                if message["type"] == "next":
                    filing = message["payload"]["data"]["filingAdded"]
                    received.append((filing["accessionNumber"], filing["ingestCursor"]))
        except ConnectionClosed as error:
            assert error.rcvd is not None, "closed without a close frame"
            return received, error.rcvd


def test_an_event_source_resumes_after_a_restart_with_last_event_id(
    stack: Stack, writer_server: str, writer: str, client_tools: Path
) -> None:
    """A browser-style EventSource (the npm `eventsource` package): the server stops, filings
    come meanwhile, the server is back on the same address, and the EventSource, reconnecting
    by itself with Last-Event-ID, gets the missed ones in order, then live ones, none twice."""
    port = free_port()
    reader = stack.serve(port)
    variables = orjson.dumps({"tickers": ["ORCL"]}).decode()
    source = NodeClient(
        client_tools / "sse.mjs", "eventsource", f"http://{reader}/graphql", ALERT, variables, "9"
    )
    try:
        assert source.next() == {"open": True}
        time.sleep(0.5)
        before = [ingest(writer_server, writer, "ORCL") for _ in range(2)]
        got = [source.next() for _ in range(2)]
        assert [event["id"] for event in got] == [filing["ingestCursor"] for filing in before]
        stop(stack.processes[-1])  # the stream ends without `complete`: EventSource retries
        missed = [ingest(writer_server, writer, "ORCL")["accessionNumber"] for _ in range(5)]
        stack.serve(port)
        assert source.next(seconds=30) == {"open": True}
        resumed = [source.next()["data"]["data"]["filingAdded"] for _ in range(5)]
        assert [filing["accessionNumber"] for filing in resumed] == missed
        time.sleep(0.5)
        live = ingest(writer_server, writer, "ORCL")
        event = source.next()
        assert (event["id"], event["data"]["data"]["filingAdded"]["accessionNumber"]) == (
            live["ingestCursor"], live["accessionNumber"])  # fmt: skip
    finally:
        source.close()
