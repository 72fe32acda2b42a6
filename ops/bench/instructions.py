"""What one request costs each server, in instructions counted by valgrind instead of time.

    python ops/bench/instructions.py [--light 1000] [--heavy 100] [--requests LIGHT,HEAVY]
                                     [--variables] [--persisted] [--observability]

run.py's throughput moves by ±20% between runs on a shared machine, as much as the gaps it is
meant to show. This count moves by under 1%. Each server runs twice under
`valgrind --tool=cachegrind --cache-sim=no` (Debian's `valgrind` package): k6 (8 virtual
users) sends it WARMUP requests in one run and WARMUP + N in the other; the difference in the
instructions the server process executed, over N, is one request's cost.

What it counts: the server process's own instructions (every thread: the span exporter's
too), not the kernel's work for its sockets, nor PostgreSQL's or Redis's. Between Python
servers on the same HTTP stack, and between two versions of corpgraph, instructions compare
as CPU time does. Not across runtimes: PostGraphile executes more instructions per LIGHT
request than corpgraph and spends half its CPU time (V8's compiled code retires several
times more instructions per cycle than CPython's interpreter), so it is not measured here.

Servers: corpgraph x1 as run.py runs it (cost control and metrics on) and the raw endpoint.
--variables adds corpgraph x1 sent the documents with every argument a variable, as typed
clients send them (run.py's AS_VARIABLES).
--persisted adds corpgraph x1 sent each document by its APQ hash, its manifest id and its
`documentId` (each registered first, as run.py's persisted views), and response-cache hits: held
in the process, and read from Redis.
--observability adds corpgraph without metrics (bare) and with tracing under the always_off
and always_on samplers; the cost at a sample rate r follows from them:
always_off + r x (always_on - always_off).
"""

import argparse
import re
import signal
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import httpx2 as httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import (  # noqa: E402
    BARE,
    CACHE_HIT,
    JSON,
    PERSISTED,
    REQUESTS,
    SAMPLE_RATE,
    VARIABLES,
    Server,
    k6,
    named_by,
    registrations,
    servers_env,
    span_sink,
    start_cache_hits,
    start_corpgraph,
    start_raw,
    traced,
    variables_bodies,
    wait_up,
)

from graph.cli.embedded import embedded_servers  # noqa: E402

WARMUP = 100
VALGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")
TOTAL = re.compile(r"I\s+refs:\s+([\d,]+)")
# valgrind runs a server ~50x slower: on a busy machine, HEAVY at 8 virtual users passes the
# default 10 s request deadline (504s, failed checks); deadlines are not what this counts. Nor
# is a response-cache miss: a 60 s TTL would expire in the middle of the cache hits counted. A
# held answer lives 50 s, as many requests as its second does at full speed
UNHURRIED = {
    "CORPGRAPH_REQUEST_TIMEOUT": "900",
    "CORPGRAPH_DB_POOL_TIMEOUT": "900",
    "CORPGRAPH_RESPONSE_CACHE_TTL": "600",
    "CORPGRAPH_RESPONSE_CACHE_LOCAL": "50",
}
FROM_REDIS = " from Redis"  # cache hits with no answers held in the process
ALWAYS_OFF, ALWAYS_ON = " tracing always_off", " tracing always_on"

Start = Callable[[Sequence[str]], Server]


def executed(start: Start, request: str, requests: int, workdir: Path) -> int:
    """Instructions the server executes from start to stop, answering `requests` requests."""
    log = workdir / "valgrind.log"
    server = start([*VALGRIND, f"--log-file={log}"])
    try:
        wait_up(server.urls[request], seconds=1800)  # valgrind starts servers ~50x slower
        for body in server.setup:
            httpx.post(server.urls[request], content=body, headers=JSON, timeout=600)
        drive(server, request, requests, workdir)
    finally:
        server.process.send_signal(signal.SIGINT)
        server.process.wait(1800)
    found = TOTAL.search(log.read_text())
    if found is None:
        raise SystemExit(f"valgrind counted nothing for {server.name}: see {log}")
    return int(found.group(1).replace(",", ""))


def drive(server: Server, request: str, requests: int, workdir: Path) -> None:
    failed = k6(server, request, 8, "1h", workdir, iterations=requests)["failed"]
    if failed:
        raise SystemExit(f"{server.name}: {failed:.0f} failed checks on {request}")


def per_request(start: Start, request: str, requests: int, workdir: Path) -> float:
    warm = executed(start, request, WARMUP, workdir)
    return (executed(start, request, WARMUP + requests, workdir) - warm) / requests


def starters(env: dict[str, str], args: argparse.Namespace) -> dict[str, Start]:
    found: dict[str, Start] = {
        "corpgraph x1": partial(start_corpgraph, env, 1, ""),
        "raw asyncpg": partial(start_raw, env),
    }
    if args.variables:
        found[f"corpgraph x1{VARIABLES}"] = partial(start_sent_variables, env)
    if args.persisted:
        for label in PERSISTED:
            found[f"corpgraph x1{label}"] = partial(start_sent_persisted, env, label)
        found[f"corpgraph x1{CACHE_HIT}"] = partial(start_cache_hits, env)
        unheld = {**env, "CORPGRAPH_RESPONSE_CACHE_LOCAL": "0"}
        found[f"corpgraph x1{CACHE_HIT}{FROM_REDIS}"] = partial(start_cache_hits, unheld)
    if args.observability:
        sink = span_sink()
        bare = {**env, "CORPGRAPH_METRICS": "false"}
        found[f"corpgraph x1{BARE}"] = partial(start_corpgraph, bare, 1, BARE)
        for label, sampler in ((ALWAYS_OFF, "always_off"), (ALWAYS_ON, "always_on")):
            sampled = traced({**env, "OTEL_TRACES_SAMPLER": sampler}, sink)
            found[f"corpgraph x1{label}"] = partial(start_corpgraph, sampled, 1, label)
    return found


def start_sent_variables(env: dict[str, str], wrapper: Sequence[str]) -> Server:
    server = start_corpgraph(env, 1, VARIABLES, wrapper)
    server.bodies = variables_bodies()
    return server


def start_sent_persisted(env: dict[str, str], label: str, wrapper: Sequence[str]) -> Server:
    server = start_corpgraph(env, 1, label, wrapper)
    server.bodies = named_by(label)
    server.setup = registrations()
    return server


def report(request: str, costs: dict[str, float]) -> None:
    raw = costs["raw asyncpg"]
    for name, cost in costs.items():
        print(f"{name:<34}{request:<8}{cost:>14,.0f}{cost / raw:>9.2f}")
    if f"corpgraph x1{ALWAYS_ON}" in costs:
        bare, metrics = costs[f"corpgraph x1{BARE}"], costs["corpgraph x1"]
        off, on = costs[f"corpgraph x1{ALWAYS_OFF}"], costs[f"corpgraph x1{ALWAYS_ON}"]
        sampled = off + SAMPLE_RATE * (on - off)
        print(
            f"  {request}: metrics add {metrics / bare - 1:+.1%} to bare; tracing on metrics:"
            f" always_off {off / metrics - 1:+.1%}, always_on {on / metrics - 1:+.1%},"
            f" at {SAMPLE_RATE:.0%} {sampled / metrics - 1:+.1%}: throughput, and so the ratio"
            f" to PostGraphile, {metrics / sampled - 1:+.1%} (the limit: -10%)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--light", type=int, default=1000, help="LIGHT requests counted")
    parser.add_argument("--heavy", type=int, default=100, help="HEAVY requests counted")
    parser.add_argument("--requests", default="LIGHT,HEAVY")
    parser.add_argument("--variables", action="store_true")
    parser.add_argument("--observability", action="store_true")
    parser.add_argument("--persisted", action="store_true")
    args = parser.parse_args()
    counts = {"LIGHT": args.light, "HEAVY": args.heavy}
    with (
        tempfile.TemporaryDirectory() as workdir,
        embedded_servers(Path(workdir), print, with_redis=True) as embedded,
    ):
        assert embedded.redis_url is not None
        env = {**servers_env(embedded.database_url, embedded.redis_url, Path(workdir)), **UNHURRIED}
        servers = starters(env, args)
        print(f"{'server':<34}{'request':<8}{'instr/req':>14}{'vs raw':>9}")
        for request in args.requests.split(","):
            if request not in REQUESTS:
                raise SystemExit(f"unknown request {request}: {', '.join(REQUESTS)}")
            costs = {
                name: per_request(start, request, counts[request], Path(workdir))
                for name, start in servers.items()
            }
            report(request, costs)


if __name__ == "__main__":
    main()
