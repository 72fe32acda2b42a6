"""Hostile documents against a running corpgraph: server CPU per document, and what each cost.

    python ops/bench/hostile.py --url http://127.0.0.1:8000 --pid <server pid> [--count 20]
        [--seconds 60] [--batch 5000]

Sends --count distinct copies (a numbered comment makes each text new to the server's cache)
of each document of issue 24's review, one after another, for at most --seconds per kind, and
prints the server process's CPU time per document (psutil: user + system), the wall time, the
answer's code and the points charged. With --batch N (the server needs
CORPGRAPH_ALLOW_BATCHING=true) it also sends one batch of N invalid operations. 127.0.0.1
only; numbers, not assertions.
"""

import argparse
import time
from collections.abc import Callable
from typing import Any

import httpx2 as httpx
import psutil


def spreads(count: int) -> str:
    definitions = "".join(f"fragment F{i} on Company {{ name }} " for i in range(count))
    body = " ".join(f"...F{i}" for i in range(count))
    return f'{definitions}{{ company(ticker: "AAPL") {{ {body} }} }}'


DOCUMENTS: dict[str, Callable[[], str]] = {
    "400 fragment spreads": lambda: spreads(400),
    "2,400 repeated fields": lambda: "{ " + "__typename " * 2400 + "}",
    "repeated nested fields": lambda: (
        '{ company(ticker: "AAPL") { ' + "filings { nodes { title } } " * 500 + "} }"
    ),
    "4,900 unknown fields": lambda: '{ company(ticker: "AAPL") { ' + "nope " * 4900 + "} }",
    "1,600 unknown arguments": lambda: (
        '{ company(ticker: "AAPL" ' + " ".join(f"x{i}: 1" for i in range(1600)) + ") { name } }"
    ),
    "valid, light": lambda: '{ company(ticker: "AAPL") { name } }',
}


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def attack(client: httpx.Client, process: psutil.Process, make: Callable[[], str],
           count: int, seconds: float) -> tuple[int, float, float, dict[str, Any]]:  # fmt: skip
    """Documents sent, server CPU s and wall s per document, and the last answer."""
    document, last, sent = make(), {}, 0
    started_cpu, started, deadline = cpu(process), time.perf_counter(), time.monotonic() + seconds
    while sent < count and time.monotonic() < deadline:
        last = client.post("/graphql", json={"query": f"# {time.time_ns()}\n{document}"}).json()
        sent += 1
    wall, used = time.perf_counter() - started, cpu(process) - started_cpu
    return sent, used / max(sent, 1), wall / max(sent, 1), last


def outcome(answer: dict[str, Any]) -> tuple[str, str]:
    errors = answer.get("errors") or [{"extensions": {"code": "ok"}}]
    extensions = errors[0].get("extensions", {})
    code = extensions.get("code", "?") + (
        f" ({extensions['limit']})" if "limit" in extensions else ""
    )
    cost = (answer.get("extensions") or {}).get("cost") or {}
    return code, str(cost.get("requestedQueryCost", "-"))


def batch(client: httpx.Client, process: psutil.Process, size: int) -> None:
    started_cpu, started = cpu(process), time.perf_counter()
    operations = [{"query": f"# {number}\n{{ nope }}"} for number in range(size)]  # distinct
    response = client.post("/graphql", json=operations)
    body = response.json()
    answer = body[0] if isinstance(body, list) else body
    code, _ = outcome(answer)
    used, wall = cpu(process) - started_cpu, time.perf_counter() - started
    name = f"one batch of {size} invalid"
    print(f"{name:28s} {used:9.3f} s CPU {wall:7.3f} s wall  {response.status_code} {code}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--pid", type=int, required=True, help="the serving process")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--batch", type=int, default=0)
    arguments = parser.parse_args()
    assert arguments.url.startswith("http://127.0.0.1"), "127.0.0.1 only"
    process = psutil.Process(arguments.pid)
    print(f"{'document':28s} {'sent':>5s} {'CPU/doc':>10s} {'wall/doc':>10s}  answer, points")
    with httpx.Client(base_url=arguments.url, timeout=120) as client:
        for name, make in DOCUMENTS.items():
            sent, per_cpu, per_wall, last = attack(
                client, process, make, arguments.count, arguments.seconds
            )
            code, points = outcome(last)
            print(f"{name:28s} {sent:5d} {per_cpu * 1000:7.1f} ms {per_wall * 1000:7.1f} ms"
                  f"  {code}, {points}")  # fmt: skip
        if arguments.batch:
            batch(client, process, arguments.batch)


if __name__ == "__main__":
    main()
