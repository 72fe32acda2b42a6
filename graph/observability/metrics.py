"""Prometheus metrics on /metrics.

With several Hypercorn workers, `corpgraph serve` points PROMETHEUS_MULTIPROC_DIR at an
empty directory before they start: each process then writes its samples to files there, and
/metrics, whichever worker answers it, adds them all up. The other metrics live next to what
they measure: DataLoader batches (loaders/request.py), caches (loaders/cache.py), database
pools (db/engine.py), open subscriptions (resolvers/subscriptions.py), subscriptions by
transport: admitted, refused, their events and ends (graph/observability/stream_telemetry.py),
compiled query runs answered and abandoned (graph/execution/compiled.py).
"""

import asyncio
import os
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphql import GraphQLError, OperationDefinitionNode, parse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response

from graph.observability.health import PROBE_TIMEOUT_SECONDS, redis_status
from graph.pipeline.pipeline import Outcome

if TYPE_CHECKING:
    from graph.services import Services

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` twin of every counter and histogram
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
ANONYMOUS = "anonymous"
MAX_NAME_CHARS = 100  # of an operation name given a label of its own
THROTTLE_CODES = frozenset({"RATE_LIMITED", "COST_LIMIT_EXCEEDED"})

REQUESTS = Counter(
    "corpgraph_graphql_requests",
    "GraphQL operations answered over HTTP, by operation name and outcome "
    "(success: no errors; partial: data and errors; error: no data)",
    ["operation", "outcome"],
)
LATENCY = Histogram(
    "corpgraph_graphql_request_duration_seconds",
    "Time to answer a GraphQL operation over HTTP, by operation name and outcome",
    ["operation", "outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ERRORS = Counter(
    "corpgraph_graphql_errors", "GraphQL errors in responses, by extensions.code", ["code"]
)
COST = Histogram(
    "corpgraph_graphql_query_cost",
    "Query cost of costed operations: requested (before execution) and actual (after)",
    ["kind"],
    buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000),
)
THROTTLED = Counter(
    "corpgraph_graphql_throttled",
    "Operations refused by cost control: over the tier's ceiling or the client's budget",
    ["code"],
)
for code in THROTTLE_CODES:  # exposed at 0 from the start, so that rates and alerts work
    THROTTLED.labels(code)
REQUESTED_COST, ACTUAL_COST = COST.labels("requested"), COST.labels("actual")
REDIS_UP = Gauge(
    "corpgraph_redis_up",
    "1 when Redis answered the last probe of each process, by role (state, cache)",
    ["role"],
    multiprocess_mode="livemin",
)
REDIS_MEMORY = Gauge(
    "corpgraph_redis_memory_bytes",
    "Redis memory by role (state, cache): `used`, and `max` (its maxmemory; 0: unbounded)",
    ["role", "kind"],
    multiprocess_mode="livemax",
)


class OperationNames:
    """Operation names as label values, bounded: those of the trusted manifests, then the
    first `limit` other names this process sees, of at most MAX_NAME_CHARS (a document may
    be 100,000 characters: 100 names of 90,000 had made /metrics 270 MB). Unnamed operations
    and names beyond those bounds (a client inventing names) are `anonymous`."""

    def __init__(self, known: Iterable[str], limit: int) -> None:
        self.names = set(known)
        self.room = limit

    def label(self, name: str | None) -> str:
        if name is None:
            return ANONYMOUS
        if name not in self.names:
            if self.room <= 0 or len(name) > MAX_NAME_CHARS:
                return ANONYMOUS
            self.room -= 1
            self.names.add(name)
        return name


def operation_names_in(documents: Iterable[str]) -> set[str]:
    names = set()
    for text in documents:
        try:
            document = parse(text, no_location=True)
        except GraphQLError:
            continue
        for definition in document.definitions:
            if isinstance(definition, OperationDefinitionNode) and definition.name:
                names.add(definition.name.value)
    return names


def observe(outcome: Outcome, operation: str, seconds: float) -> None:
    """Count one answered operation: its outcome, latency, errors and cost."""
    errors = outcome.payload.get("errors") or ()
    if not errors:
        result = "success"
    else:
        result = "partial" if outcome.payload.get("data") is not None else "error"
    count, latency = series(operation, result)
    count.inc()
    latency.observe(seconds)
    count_errors(errors)
    if outcome.cost is not None:
        requested, actual = outcome.cost
        REQUESTED_COST.observe(requested)
        ACTUAL_COST.observe(actual)


def count_errors(errors: Iterable[dict[str, Any]]) -> None:
    """The errors of a response, by code; those of cost control also as throttled."""
    for error in errors:
        code = error["extensions"]["code"]
        ERRORS.labels(code).inc()
        if code in THROTTLE_CODES:
            THROTTLED.labels(code).inc()


@cache  # bounded: operation names are (OperationNames), outcomes are three
def series(operation: str, outcome: str) -> tuple[Counter, Histogram]:
    return REQUESTS.labels(operation, outcome), LATENCY.labels(operation, outcome)


def registry() -> CollectorRegistry:
    if MULTIPROCESS_DIR not in os.environ:
        return REGISTRY
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
    return merged


async def metrics_endpoint(request: Request) -> Response:
    services: Services = request.app.state.services  # graph/services.py imports this module
    roles = {"state": services.redis, "cache": services.cache_redis}
    statuses = await asyncio.gather(*(redis_status(client) for client in roles.values()))
    for role, status in zip(roles, statuses, strict=True):
        if status != "disabled":
            REDIS_UP.labels(role).set(1 if status == "ok" else 0)
        client = roles[role]
        if status == "ok" and client is not None:
            await observe_memory(role, client)
    # reads every worker's files: off the event loop
    body = await asyncio.to_thread(generate_latest, registry())
    return Response(body, media_type=CONTENT_TYPE_LATEST)


async def observe_memory(role: str, redis: Redis) -> None:
    """Used and maximum memory of a Redis, for the alerts before it fills."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            memory = await redis.info("memory")
    except (RedisError, OSError, TimeoutError):
        return
    REDIS_MEMORY.labels(role, "used").set(memory.get("used_memory", 0))
    REDIS_MEMORY.labels(role, "max").set(memory.get("maxmemory", 0))


def prepare_multiprocess(directory: Path) -> None:
    """Before the workers start: an empty directory for their samples, named in the
    environment they inherit."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_DIR] = str(directory)


def worker_exited(pid: int) -> None:
    """Drop a dead worker's live gauges (open subscriptions, connections in use)."""
    if MULTIPROCESS_DIR in os.environ:
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
