"""Traces, metrics and logs: graph/observability/telemetry.py, metrics.py and logs.py."""

import asyncio
import io
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from starlette.responses import PlainTextResponse
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import connect
from websockets.sync.client import connect as connect_sync
from websockets.typing import Subprotocol

from graph.app import create_app
from graph.observability.logs import configure_logging, redact
from graph.observability.metrics import ANONYMOUS, MAX_NAME_CHARS, OperationNames
from graph.observability.telemetry import RequestSpans, start_tracing
from graph.settings import Settings, Tier
from resolvers.subscriptions import to_ingest_cursor
from tests.conftest import REPO, new_api_key
from tests.servers import SERVERS, corpgraph_environment, free_port, stop, threaded, wait_ready
from tests.test_fast_path import compiled_runs
from tests.test_transports import sequences

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
REMOTE_PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{REMOTE_PARENT}-01"
PAGE = """query CompanyPage { company(ticker: "AAPL") { name
  filings(first: 3) { nodes { formType metrics(names: ["Revenue"]) { name value } } } } }"""
# the page's metrics: a compiled run reads them as JSON (loaders/json_lists.py)
METRICS_LOADER = {"compiled": "metrics_json_by_filing", "standard": "metrics_by_filing"}


@pytest.fixture(scope="module")
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    start_tracing(SimpleSpanProcessor(exporter))  # the process's provider, once
    yield exporter
    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    RedisInstrumentor().uninstrument()
    exporter.shutdown()


@pytest.fixture(scope="module")
def traced(settings: Settings, spans: InMemorySpanExporter) -> Iterator[TestClient]:
    # the compiled path, whatever --executor says: it must still answer when traced
    with TestClient(create_app(settings.replace(tracing=True, executor="compiled"))) as client:
        yield client


def test_a_request_is_traced_from_the_gateway_to_sql(
    traced: TestClient, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    response = traced.post("/graphql", json={"query": PAGE}, headers={"traceparent": TRACEPARENT})
    assert "errors" not in response.json()
    # the request's trace (the filing broker's background reads make traces of their own)
    finished = [s for s in spans.get_finished_spans() if s.context.trace_id == int(TRACE_ID, 16)]

    (http,) = [span for span in finished if span.kind == SpanKind.SERVER]
    assert http.parent is not None and http.parent.is_remote
    assert format(http.parent.span_id, "016x") == REMOTE_PARENT
    assert http.name == "POST /graphql"
    assert (http.attributes or {})["http.response.status_code"] == 200

    (operation,) = [span for span in finished if span.name == "query CompanyPage"]
    assert child_of(operation, http)
    attributes: dict[str, Any] = dict(operation.attributes or {})
    assert attributes["graphql.operation.name"] == "CompanyPage"
    assert attributes["graphql.operation.type"] == "query"
    assert attributes["graphql.cost.requested"] >= attributes["graphql.cost.actual"] > 0

    batches = {span.name: span for span in finished if span.name.startswith("dataloader ")}
    assert {"dataloader company_by_ticker", "dataloader filings_by_company"} <= set(batches)
    metrics = f"dataloader {METRICS_LOADER['compiled']}"
    assert metrics in batches
    for batch in batches.values():
        assert child_of(batch, operation)
    assert (batches[metrics].attributes or {})["dataloader.batch.size"] == 3

    sql = [span for span in finished if system_of(span) == "postgresql"]
    for batch in batches.values():
        assert len([span for span in sql if child_of(span, batch)]) == 1, batch.name
    commands = [span for span in finished if system_of(span) == "redis"]
    assert any(child_of(span, batches["dataloader company_by_ticker"]) for span in commands), (
        "the entity cache's MGET is not traced inside its batch"
    )


def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    return span.parent is not None and span.parent.span_id == parent.context.span_id


def system_of(span: ReadableSpan) -> object:
    attributes = span.attributes or {}
    return attributes.get("db.system") or attributes.get("db.system.name")


def test_without_a_traceparent_a_trace_begins_here(
    traced: TestClient, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    traced.post("/graphql", json={"query": PAGE})
    (http,) = [span for span in spans.get_finished_spans() if span.kind == SpanKind.SERVER]
    assert http.parent is None


def test_a_request_the_gateway_did_not_sample_makes_no_spans(
    traced: TestClient, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    unsampled = f"00-{TRACE_ID}-{REMOTE_PARENT}-00"
    response = traced.post("/graphql", json={"query": PAGE}, headers={"traceparent": unsampled})
    assert "errors" not in response.json()
    assert not [s for s in spans.get_finished_spans() if s.context.trace_id == int(TRACE_ID, 16)]


@pytest.mark.parametrize(("flags", "recorded"), [("01", True), ("00", False)])
def test_instrumentation_runs_only_for_recorded_requests(
    spans: InMemorySpanExporter, flags: str, recorded: bool
) -> None:
    """SQL and Redis instrumentation is suppressed for a request the sampler leaves out."""
    seen: list[tuple[bool, bool]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((trace.get_current_span().is_recording(), is_instrumentation_enabled()))
        await PlainTextResponse("ok")(scope, receive, send)

    traceparent = f"00-{TRACE_ID}-{REMOTE_PARENT}-{flags}"
    client = TestClient(RequestSpans(app))  # no lifespan: the bare app has none
    assert client.get("/", headers={"traceparent": traceparent}).text == "ok"
    assert seen == [(recorded, recorded)]


def test_a_route_names_the_span_and_errors_mark_it(
    traced: TestClient, spans: InMemorySpanExporter
) -> None:
    spans.clear()
    traced.get("/health/live")
    traced.get("/documents/0000320193-26-000048")
    traced.get("/documents/documents")  # a key that repeats the route's own words
    traced.get("/no/such/page")
    names = {span.name for span in spans.get_finished_spans() if span.kind == SpanKind.SERVER}
    assert names == {"GET /health/live", "GET /documents/{key}", "GET"}


@pytest.mark.parametrize("name", ["light", "heavy"])
def test_the_fast_path_still_answers_when_traced(traced: TestClient, name: str) -> None:
    document = (REPO / f"ops/bench/{name}.graphql").read_text()
    compiled, abandoned = compiled_runs()
    response = traced.post("/graphql", json={"query": document})
    assert "errors" not in response.json()
    assert compiled_runs() == (compiled + 1, abandoned)


def samples(text: str, name: str) -> list[Sample]:
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    ]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples with these labels (0 when there are none)."""
    return sum(s.value for s in samples(text, name) if labels.items() <= s.labels.items())


def exposed(text: str, name: str, **labels: str) -> float:
    found = [s for s in samples(text, name) if labels.items() <= s.labels.items()]
    assert found, f"{name} {labels} is not exposed"
    return sum(s.value for s in found)


def test_metrics_after_traffic(settings: Settings, database_url: str) -> None:
    tiny = {**settings.tiers, "anonymous": Tier(ceiling=5, capacity=1_000, restore_rate=100)}
    key = new_api_key(database_url)
    with TestClient(create_app(settings.replace(tiers=tiny))) as client:
        before = client.get("/metrics").text
        keyed = {"x-api-key": key}
        for _ in range(3):
            answer = client.post("/graphql", json={"query": PAGE}, headers=keyed)
            assert "errors" not in answer.json()
        client.post("/graphql", json={"query": "{ company(ticker: 7) { name } }"})
        expensive = client.post("/graphql", json={"query": PAGE})  # over the anonymous ceiling
        assert expensive.json()["errors"][0]["extensions"]["code"] == "COST_LIMIT_EXCEEDED"
        apq = {"persistedQuery": {"version": 1, "sha256Hash": "0" * 64}}
        client.get("/graphql", params={"extensions": json.dumps(apq)}, headers=keyed)
        scraped = client.get("/metrics")
    assert scraped.headers["content-type"].startswith("text/plain")
    after = scraped.text

    def grew(name: str, **labels: str) -> float:
        return exposed(after, name, **labels) - value(before, name, **labels)

    page = {"operation": "CompanyPage"}
    assert grew("corpgraph_graphql_requests_total", **page, outcome="success") == 3
    assert grew("corpgraph_graphql_requests_total", **page, outcome="error") == 1
    assert grew("corpgraph_graphql_request_duration_seconds_count", **page) == 4
    assert grew("corpgraph_graphql_errors_total", code="GRAPHQL_VALIDATION_FAILED") == 1
    assert grew("corpgraph_graphql_errors_total", code="PERSISTED_QUERY_NOT_FOUND") == 1
    assert grew("corpgraph_graphql_throttled_total", code="COST_LIMIT_EXCEEDED") == 1
    # the three pages, the refusal, and the invalid document (charged for its preparation)
    assert grew("corpgraph_graphql_query_cost_count", kind="actual") == 5
    metrics = METRICS_LOADER[settings.executor]
    assert grew("corpgraph_dataloader_batch_size_count", loader=metrics) == 3
    assert grew("corpgraph_dataloader_batch_size_sum", loader=metrics) == 9
    assert grew("corpgraph_cache_lookups_total", cache="entity", result="hit") >= 2
    assert grew("corpgraph_cache_lookups_total", cache="persisted", result="miss") == 1
    assert exposed(after, "corpgraph_db_pool_size", pool="read") > 0
    assert exposed(after, "corpgraph_db_pool_in_use", pool="read") == 0  # all returned
    assert exposed(after, "corpgraph_redis_up", role="state") == 1
    exposed(after, "corpgraph_subscriptions_active")


ALERTS = "subscription Alerts($since: String) { filingAdded(since: $since) { accessionNumber } }"
STREAM = {"accept": "text/event-stream"}


@pytest.fixture(scope="module")
def streaming(settings: Settings, spans: InMemorySpanExporter) -> Iterator[str]:
    """A traced server on a port of its own, in this process (its spans reach `spans`)."""
    with threaded(create_app(settings.replace(tracing=True)), "/health/live") as base:
        yield base


@pytest.fixture(scope="module")
def replay_one(database_url: str) -> dict[str, Any]:
    """Variables of a subscription that replays the newest filing, then waits for more."""
    _, newest = sequences(database_url)
    return {"since": to_ingest_cursor(newest - 1)}


def first_sse_event(base: str, body: dict[str, Any]) -> dict[str, Any]:
    with httpx.stream("POST", base + "/graphql", json=body, headers=STREAM, timeout=30) as answer:
        for line in answer.iter_lines():
            if line.startswith("data: ") and line != "data: ":
                event: dict[str, Any] = json.loads(line.removeprefix("data: "))
                return event
    raise AssertionError("the stream ended without an event")


def first_ws_message(base: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Over graphql-transport-ws: the first answer to a subscribe, then `complete` from us."""
    url = base.replace("http://", "ws://") + "/graphql"
    with connect_sync(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        ws.send(json.dumps({"type": "connection_init"}))
        assert json.loads(ws.recv(timeout=30))["type"] == "connection_ack"
        ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        message: dict[str, Any] = json.loads(ws.recv(timeout=30))
        ws.send(json.dumps({"id": "1", "type": "complete"}))
    return message


def admission_span(spans: InMemorySpanExporter, name: str, transport: str) -> ReadableSpan:
    (span,) = [
        span
        for span in spans.get_finished_spans()
        if span.name == name and (span.attributes or {}).get("graphql.transport") == transport
    ]
    return span


def grown(base: str, before: str, name: str, wanted: float, **labels: str) -> float:
    """How much a counter grew since `before`, waiting (5 s at most) for it to reach `wanted`:
    a subscription ends in the server a moment after its client leaves."""
    for _ in range(50):
        grew = exposed(httpx.get(base + "/metrics").text, name, **labels) - value(
            before, name, **labels
        )
        if grew >= wanted:
            break
        time.sleep(0.1)
    return grew


@pytest.mark.parametrize("transport", ["graphql-transport-ws", "sse"])
def test_a_subscription_is_traced_and_counted(
    streaming: str, spans: InMemorySpanExporter, replay_one: dict[str, Any], transport: str
) -> None:
    spans.clear()
    before = httpx.get(streaming + "/metrics").text
    body = {"query": ALERTS, "variables": replay_one}
    if transport == "sse":
        event = first_sse_event(streaming, body)
    else:
        message = first_ws_message(streaming, body)
        assert message["type"] == "next", message
        event = message["payload"]
    assert "errors" not in event and event["data"]["filingAdded"]["accessionNumber"]

    span = admission_span(spans, "subscription Alerts", transport)
    attributes: dict[str, Any] = dict(span.attributes or {})
    assert attributes["graphql.operation.name"] == "Alerts"
    assert attributes["graphql.operation.type"] == "subscription"
    assert attributes["graphql.cost.requested"] > 0
    assert "graphql.error.codes" not in attributes
    assert span.parent is not None  # the request's span, or the WebSocket connection's

    on = {"transport": transport}
    admitted = {**on, "operation": "Alerts", "outcome": "admitted"}
    assert grown(streaming, before, "corpgraph_subscriptions_total", 1, **admitted) == 1
    assert grown(streaming, before, "corpgraph_subscription_events_total", 1, **on) == 1
    assert grown(streaming, before, "corpgraph_subscription_charged_points_total", 1, **on) > 0
    ended = {**on, "reason": "closed"}  # its client stopped it, or left
    assert grown(streaming, before, "corpgraph_subscriptions_ended_total", 1, **ended) == 1
    count = "corpgraph_subscription_admission_duration_seconds_count"
    assert grown(streaming, before, count, 1, **on) == 1


@pytest.mark.parametrize(
    ("transport", "document", "span_name", "code"),
    [
        ("sse", "subscription Bad { filingAdded { nope } }", "graphql.operation",
         "GRAPHQL_VALIDATION_FAILED"),
        ("graphql-transport-ws", "query Q { __typename }", "query Q", "BAD_REQUEST"),
    ],
)  # fmt: skip
def test_a_refused_subscription_is_traced_and_counted_with_its_code(
    streaming: str,
    spans: InMemorySpanExporter,
    transport: str,
    document: str,
    span_name: str,
    code: str,
) -> None:
    spans.clear()
    before = httpx.get(streaming + "/metrics").text
    if transport == "sse":
        answer = httpx.post(streaming + "/graphql", json={"query": document}, headers=STREAM)
        errors = answer.json()["errors"]
    else:
        message = first_ws_message(streaming, {"query": document})
        assert message["type"] == "error", message
        errors = message["payload"]
    assert errors[0]["extensions"]["code"] == code

    span = admission_span(spans, span_name, transport)
    assert (span.attributes or {})["graphql.error.codes"] == (code,)
    assert span.status.status_code == StatusCode.ERROR

    on = {"transport": transport}
    refused = {**on, "outcome": "refused"}
    assert grown(streaming, before, "corpgraph_subscriptions_total", 1, **refused) == 1
    by_code = {**on, "code": code}
    assert grown(streaming, before, "corpgraph_subscriptions_refused_total", 1, **by_code) == 1
    assert grown(streaming, before, "corpgraph_graphql_errors_total", 1, code=code) == 1
    after, admitted = httpx.get(streaming + "/metrics").text, {**on, "outcome": "admitted"}
    name = "corpgraph_subscriptions_total"
    assert value(after, name, **admitted) == value(before, name, **admitted)


def test_operation_names_are_bounded() -> None:
    names = OperationNames({"CompanyPage"}, limit=2)
    assert names.label("CompanyPage") == "CompanyPage"
    assert [names.label(f"Made{i}") for i in range(4)] == ["Made0", "Made1", ANONYMOUS, ANONYMOUS]
    assert names.label("Made1") == "Made1"  # admitted ones stay
    assert names.label("CompanyPage") == "CompanyPage"  # the manifests' never run out
    assert names.label(None) == ANONYMOUS


def test_long_operation_names_share_one_label() -> None:
    names = OperationNames((), limit=100)
    assert names.label("N" * MAX_NAME_CHARS) == "N" * MAX_NAME_CHARS
    assert names.label("M" * (MAX_NAME_CHARS + 1)) == ANONYMOUS
    assert names.room == 99  # the long one took no room


def test_log_lines_are_json_with_trace_ids_and_no_secrets() -> None:
    key = "cg_" + "A1b2C3d4E5" * 4
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(json=True, level="INFO")
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        tracer = trace.get_tracer(__name__)
        with tracer.start_as_current_span("work") as span:
            logging.getLogger("corpgraph.test").warning(
                "key %s failed for postgresql://corpgraph:hunter2@db/corpgraph, Bearer %s",
                key,
                key,
            )
        context = span.get_span_context()
    finally:
        root.handlers, root.level = saved
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert (record["level"], record["logger"]) == ("WARNING", "corpgraph.test")
    assert "time" in record
    if context.is_valid:  # a provider is installed (the tracing tests ran in this process)
        assert record["trace_id"] == format(context.trace_id, "032x")
        assert record["span_id"] == format(context.span_id, "016x")
    assert key not in line and "hunter2" not in line
    assert "cg_A1b2C3d" in record["message"]  # the prefix `apikey list` shows, to tell keys apart


def test_redaction_leaves_ordinary_text_alone() -> None:
    text = "filing 0000320193-24-000123 of AAPL at http://minio:9000/corpgraph-documents/x"
    assert redact(text) == text


@pytest.mark.e2e
@pytest.mark.parametrize("server", SERVERS)
def test_metrics_add_up_across_two_workers(database_url: str, redis_url: str, server: str) -> None:
    """Two workers of either HTTP server, each answering some of the requests: /metrics
    (answered by either) counts them all, and a subscription open in one of them. The log is
    JSON lines, the server's own included, without the API key the requests carried."""
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="corpgraph-test-")
    environment = corpgraph_environment(
        database_url, redis_url, data_dir, workers="2", log_format="json", tiers="{}",
        server=server,
    )  # fmt: skip
    key = new_api_key(database_url)
    logged = Path(data_dir) / "stderr"
    with logged.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "graph", "serve", "--port", str(port)],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    base = f"http://127.0.0.1:{port}"
    keyed = {"x-api-key": key}
    try:
        wait_ready(base + "/health/ready", process)
        with httpx.Client(base_url=base, headers=keyed) as client:
            # a fresh connection per request: the kernel spreads them over both workers
            for _ in range(40):
                response = httpx.post(base + "/graphql", json={"query": PAGE}, headers=keyed)
                assert "errors" not in response.json()
            asyncio.run(while_subscribed(port, lambda: check_subscription_gauge(client)))
            text = client.get("/metrics").text
        assert exposed(text, "corpgraph_graphql_requests_total", operation="CompanyPage") == 40
        metrics = METRICS_LOADER["compiled"]  # the default executor
        batches = exposed(text, "corpgraph_dataloader_batch_size_count", loader=metrics)
        assert batches == 40
        # both workers' samples: each one's read pool is counted once
        assert exposed(text, "corpgraph_db_pool_size", pool="read") == 2 * 20
        assert exposed(text, "corpgraph_subscriptions_active") == 0  # closed again
    finally:
        stop(process)
    lines = logged.read_text().splitlines()
    records = [json.loads(line) for line in lines if line.strip()]
    listening = {"hypercorn": "Running on", "granian": "Listening at"}[server]
    assert any(listening in record["message"] for record in records), lines[:5]
    assert key not in logged.read_text()
    shutil.rmtree(data_dir, ignore_errors=True)


def check_subscription_gauge(client: httpx.Client) -> None:
    text = client.get("/metrics").text
    assert exposed(text, "corpgraph_subscriptions_active") == 1


async def while_subscribed(port: int, check: Callable[[], None]) -> None:
    protocol = Subprotocol("graphql-transport-ws")
    async with connect(f"ws://127.0.0.1:{port}/graphql", subprotocols=[protocol]) as socket:
        await socket.send(json.dumps({"type": "connection_init"}))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        subscribe = {"query": "subscription { filingAdded { accessionNumber } }"}
        await socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": subscribe}))
        for _ in range(50):  # counted once the server has started the resolver
            try:
                await asyncio.to_thread(check)
                break
            except AssertionError:
                await asyncio.sleep(0.1)
        else:
            await asyncio.to_thread(check)
    await asyncio.sleep(0.5)  # the server notices the close
