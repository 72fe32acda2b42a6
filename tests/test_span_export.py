"""OTLP/HTTP in JSON (graph/observability/span_export.py): the very messages the SDK's
protobuf encoder builds, posted as the OTLP specification says, chosen by the standard protocol
variable."""

import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from google.protobuf import json_format
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from graph.observability.span_export import JsonSpanExporter, encode, span_exporter

IDS = ("traceId", "spanId", "parentSpanId")


def made_spans() -> tuple[ReadableSpan, ...]:
    """Spans with everything OTLP carries: every kind of attribute value, events, links, an
    error status, a remote parent with trace state, two instrumentation scopes."""
    kept = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "corpgraph"}))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    gateway = SpanContext(
        0x0AF7651916CD43DD8448EB211C80319C,
        0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value")]),
    )
    parent = trace.set_span_in_context(NonRecordingSpan(gateway))
    tracer = provider.get_tracer("corpgraph.http", "1.0")
    loaders = provider.get_tracer("corpgraph.loaders", schema_url="https://opentelemetry.io/s/1")
    attributes: dict[str, Any] = {
        "text": "SELECT 1",
        "number": 7,
        "big": 2**62,
        "ratio": 0.25,
        "flag": False,
        "names": ["a", "b"],
        "sizes": [1, 2],
        "nan": float("nan"),
        "inf": float("inf"),
        "minus_inf": float("-inf"),
    }
    with tracer.start_as_current_span("POST /graphql", parent, SpanKind.SERVER, attributes) as root:
        root.add_event("exception", {"exception.type": "ValueError"})
        with loaders.start_as_current_span(
            "dataloader filings_by_company",
            links=[Link(gateway, {"reason": "batched"})],
        ) as batch:
            batch.set_status(Status(StatusCode.ERROR, "statement timeout"))
        with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT):
            pass
    provider.shutdown()
    return kept.get_finished_spans()


def as_message(encoded: bytes) -> ExportTraceServiceRequest:
    """OTLP JSON read with protobuf's own JSON parser (OTLP's ids are hex, protobuf's base64)."""

    def ids_in_base64(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: base64.b64encode(bytes.fromhex(item)).decode()
                if key in IDS
                else ids_in_base64(item)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [ids_in_base64(item) for item in value]
        return value

    return json_format.ParseDict(ids_in_base64(orjson.loads(encoded)), ExportTraceServiceRequest())


def test_the_json_is_the_message_the_sdk_encodes() -> None:
    spans = made_spans()
    assert len(spans) == 3
    assert as_message(encode(spans)) == encode_spans(spans)


def test_ids_are_hex_and_64_bit_integers_strings() -> None:
    """The two places where OTLP's JSON differs from protobuf's usual mapping, or is easy to
    get wrong: a JavaScript reader would round a 64-bit number."""
    body = orjson.loads(encode(made_spans()))
    (resource,) = body["resourceSpans"]
    root = next(
        span
        for scope in resource["scopeSpans"]
        for span in scope["spans"]
        if span["name"] == "POST /graphql"
    )
    assert root["traceId"] == "0af7651916cd43dd8448eb211c80319c"
    assert root["parentSpanId"] == "b7ad6b7169203331"
    assert root["kind"] == 2  # SPAN_KIND_SERVER
    assert isinstance(root["startTimeUnixNano"], str)
    values = {item["key"]: item["value"] for item in root["attributes"]}
    assert values["big"] == {"intValue": str(2**62)}
    assert values["nan"] == {"doubleValue": "NaN"}


class Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP endpoint that keeps what it is sent, or refuses it with `status`."""

    received: list[tuple[str, dict[str, str], bytes]]
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.received.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(self.status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[Collector]]:
    handler = type("Handler", (Collector,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20collector-key")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    yield handler
    server.shutdown()
    server.server_close()


def test_spans_are_posted_as_json_with_the_configured_headers(
    collector: type[Collector],
) -> None:
    exporter = span_exporter()
    assert isinstance(exporter, JsonSpanExporter)
    spans = made_spans()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    ((path, headers, body),) = collector.received
    assert path == "/v1/traces"
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == "Bearer collector-key"
    assert as_message(body) == encode_spans(spans)


def test_a_refused_export_is_a_failure_not_an_exception(collector: type[Collector]) -> None:
    collector.status = 400  # not retried: a client error
    assert span_exporter().export(made_spans()) is SpanExportResult.FAILURE


@pytest.mark.parametrize("protocol", [None, "http/protobuf"])
def test_protobuf_stays_the_sdks_exporter(
    monkeypatch: pytest.MonkeyPatch, protocol: str | None
) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raising=False)
    if protocol is None:
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    else:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    exporter = span_exporter()
    assert type(exporter) is OTLPSpanExporter


def test_the_traces_variable_wins_and_grpc_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")
    assert isinstance(span_exporter(), JsonSpanExporter)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    with pytest.raises(ValueError, match=r"OTEL_EXPORTER_OTLP_PROTOCOL.*'grpc'"):
        span_exporter()
