"""Persisted against plain on ONE corpgraph process: the same LIGHT and HEAVY documents sent as
plain POSTs, as an APQ hash only (registered first), as the id of a manifest's document, and as
a `documentId`, in interleaved blocks, with the worker's CPU time per request (from /proc) and
the wall time per request of each.

    python ops/bench/persisted.py [--requests 200] [--rounds 8] [--seed-size small|default]

A persisted request skips sending and decoding the document's text, and everything after the
lookup is the same work, so its CPU per request should be at most a plain one's. Comparing
separate server processes (as run.py's throughput cells do) mixes in the noise of whatever
else the machine did meanwhile; here every mode meets the same process, warm caches and
connections, one block after another, rounds in rotating order, and the medians of the rounds
are compared. Nothing is asserted: the machines are shared and noisy.
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx2 as httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from run import (  # noqa: E402
    PERSISTED,
    REQUESTS,
    ROOMY,
    cpu_seconds,
    manifest_file,
    persisted_bodies,
    registrations,
    start_corpgraph,
    wait_up,
)

from graph.cli.embedded import embedded_servers  # noqa: E402
from graph.cli.prepare import prepare_database  # noqa: E402
from graph.settings import Settings  # noqa: E402

MODES = ("plain", *PERSISTED)


JSON = {"content-type": "application/json"}


def bodies(query: str) -> dict[str, bytes]:
    """The request body of each mode for one document."""
    return {"plain": json.dumps({"query": query}).encode(), **persisted_bodies(query)}


def block(
    client: httpx.Client, url: str, body: bytes, pid: int, requests: int
) -> tuple[float, float]:
    """CPU and wall microseconds per request of `requests` sequential requests."""
    cpu, started = cpu_seconds(pid), time.perf_counter()
    for _ in range(requests):
        response = client.post(url, content=body, headers=JSON)
        if response.status_code != 200 or b'"errors"' in response.content:
            raise SystemExit(f"refused: {response.content[:300]!r}")
    wall = time.perf_counter() - started
    return (cpu_seconds(pid) - cpu) / requests * 1e6, wall / requests * 1e6


def compare(url: str, pid: int, requests: int, rounds: int) -> None:
    with httpx.Client(timeout=60) as client:
        for registration in registrations():  # APQ: the documents sent with their hashes once
            client.post(url, content=registration, headers=JSON).raise_for_status()
        for query in REQUESTS.values():  # warm everything
            for body in bodies(query).values():
                block(client, url, body, pid, 20)
        print(
            f"{'request':<8}{'mode':<13}{'CPU us/req':>11}{'wall us/req':>12}{'CPU vs plain':>14}"
        )
        for name, query in REQUESTS.items():
            sent = bodies(query)
            cpu: dict[str, list[float]] = {mode: [] for mode in MODES}
            wall: dict[str, list[float]] = {mode: [] for mode in MODES}
            for round_ in range(rounds):
                turn = round_ % len(MODES)
                order = MODES[turn:] + MODES[:turn]  # no mode always goes first
                for mode in order:
                    one_cpu, one_wall = block(client, url, sent[mode], pid, requests)
                    cpu[mode].append(one_cpu)
                    wall[mode].append(one_wall)
            plain = statistics.median(cpu["plain"])
            for mode in MODES:
                median = statistics.median(cpu[mode])
                print(f"{name:<8}{mode.strip():<13}{median:>11.0f}{statistics.median(wall[mode]):>12.0f}"
                      f"{plain / median:>13.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200, help="per block")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seed-size", choices=("small", "default"), default="small")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="corpgraph-bench-"))
    with embedded_servers(folder, print, with_redis=True) as embedded:
        assert embedded.redis_url is not None
        asyncio.run(prepare_database(Settings(database_url=embedded.database_url), args.seed_size))
        env = {**os.environ, "CORPGRAPH_DATABASE_URL": embedded.database_url,
               "CORPGRAPH_REDIS_URL": embedded.redis_url, "CORPGRAPH_RESPONSE_CACHE": "false",
               "CORPGRAPH_TIERS": json.dumps({"anonymous": ROOMY}),
               "CORPGRAPH_PERSISTED_MANIFESTS": str(manifest_file(folder))}  # fmt: skip
        server = start_corpgraph(env, 1)
        url = server.urls["LIGHT"]
        try:
            wait_up(url)
            compare(url, server.process.pid, args.requests, args.rounds)
        finally:
            server.process.terminate()
            server.process.wait(30)


if __name__ == "__main__":
    main()
