"""OTLP/HTTP with the JSON encoding (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json`), which the
SDK's exporter does not offer.

Why: the SDK's encoder (opentelemetry-exporter-otlp-proto-common) builds each span as protobuf
messages from Python, about 300,000 instructions a span: encoding a traced LIGHT request's
four spans (1.25 million) costs half as much as the whole request. Built as plain dicts and
serialized by orjson, a span costs a third of that. The format is the OTLP specification's JSON
encoding of the same messages (lowerCamelCase keys, enums as numbers, trace and span ids in
hex, 64-bit integers as strings), which the OpenTelemetry Collector and Jaeger accept. Only
the encoding is ours: endpoint, headers, TLS, compression and retries are the SDK exporter's.
tests/test_span_export.py holds it to the SDK's encoder, message for message.
"""

import base64
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.environment_variables import (
    OTEL_EXPORTER_OTLP_PROTOCOL,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind

JSON_PROTOCOL = "http/json"
PROTOBUF_PROTOCOL = "http/protobuf"
KINDS = {  # the SDK's SpanKind to OTLP's (which has SPAN_KIND_UNSPECIFIED = 0)
    SpanKind.INTERNAL: 1,
    SpanKind.SERVER: 2,
    SpanKind.CLIENT: 3,
    SpanKind.PRODUCER: 4,
    SpanKind.CONSUMER: 5,
}
HAS_IS_REMOTE, IS_REMOTE = 0x100, 0x200  # OTLP's SpanFlags
NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def span_exporter() -> SpanExporter:
    """OTLP over HTTP, encoded as the standard variables say (protobuf unless told)."""
    protocol = os.environ.get(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) or os.environ.get(
        OTEL_EXPORTER_OTLP_PROTOCOL, PROTOBUF_PROTOCOL
    )
    if protocol == JSON_PROTOCOL:
        return JsonSpanExporter()
    if protocol == PROTOBUF_PROTOCOL:
        return OTLPSpanExporter()
    raise ValueError(
        f"{OTEL_EXPORTER_OTLP_PROTOCOL} (or {OTEL_EXPORTER_OTLP_TRACES_PROTOCOL}) is "
        f"{protocol!r}: corpgraph exports over HTTP, as {PROTOBUF_PROTOCOL!r} or {JSON_PROTOCOL!r}"
    )


class JsonSpanExporter(OTLPSpanExporter):
    def __init__(self) -> None:
        super().__init__(headers={"content-type": "application/json"})

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        sent = self._client.export(encode(spans))
        return SpanExportResult.SUCCESS if sent.success else SpanExportResult.FAILURE


def encode(spans: Sequence[ReadableSpan]) -> bytes:
    """An ExportTraceServiceRequest: spans grouped by resource, then by scope."""
    resources: dict[int, tuple[Resource, dict[Any, tuple[Any, list[dict[str, Any]]]]]] = {}
    for span in spans:
        # grouped by identity: a Resource hashes by serializing its attributes to JSON
        resource = span.resource
        _, scopes = resources.setdefault(id(resource), (resource, {}))
        scope = span.instrumentation_scope
        scopes.setdefault(scope, (scope, []))[1].append(span_of(span))
    return orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": attributes(resource.attributes)},
                    "scopeSpans": [
                        {**scope_of(scope), "spans": encoded} for scope, encoded in scopes.values()
                    ],
                    **optional("schemaUrl", resource.schema_url),
                }
                for resource, scopes in resources.values()
            ]
        }
    )


def scope_of(scope: InstrumentationScope | None) -> dict[str, Any]:
    if scope is None:
        return {"scope": {}}
    named: dict[str, Any] = {"name": scope.name, **optional("version", scope.version)}
    if scope.attributes:
        named["attributes"] = attributes(scope.attributes)
    return {"scope": named, **optional("schemaUrl", scope.schema_url)}


def span_of(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None, "an SDK span has a context"
    encoded: dict[str, Any] = {
        **ids_of(context),
        "flags": flags_of(span.parent),
        "name": span.name,
        "kind": KINDS[span.kind],
        "startTimeUnixNano": str(span.start_time),
        "endTimeUnixNano": str(span.end_time),
        "status": {"code": span.status.status_code.value}
        | optional("message", span.status.description),
    }
    if context.trace_state:
        encoded["traceState"] = context.trace_state.to_header()
    if span.parent is not None:
        encoded["parentSpanId"] = f"{span.parent.span_id:016x}"
    if span.attributes:
        encoded["attributes"] = attributes(span.attributes)
    if span.events:
        encoded["events"] = [event_of(event) for event in span.events]
    if span.links:
        encoded["links"] = [link_of(link) for link in span.links]
    for key, count in (
        ("droppedAttributesCount", span.dropped_attributes),
        ("droppedEventsCount", span.dropped_events),
        ("droppedLinksCount", span.dropped_links),
    ):
        if count:
            encoded[key] = count
    return encoded


def ids_of(context: SpanContext) -> dict[str, str]:
    return {"traceId": f"{context.trace_id:032x}", "spanId": f"{context.span_id:016x}"}


def flags_of(parent: SpanContext | None) -> int:
    return HAS_IS_REMOTE | (IS_REMOTE if parent is not None and parent.is_remote else 0)


def event_of(event: Event) -> dict[str, Any]:
    encoded: dict[str, Any] = {"name": event.name, "timeUnixNano": str(event.timestamp)}
    if event.attributes:
        encoded["attributes"] = attributes(event.attributes)
    if event.dropped_attributes:
        encoded["droppedAttributesCount"] = event.dropped_attributes
    return encoded


def link_of(link: Link) -> dict[str, Any]:
    encoded: dict[str, Any] = {**ids_of(link.context), "flags": flags_of(link.context)}
    if link.attributes:
        encoded["attributes"] = attributes(link.attributes)
    if link.dropped_attributes:
        encoded["droppedAttributesCount"] = link.dropped_attributes
    return encoded


def attributes(values: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    return [{"key": key, "value": any_value(value)} for key, value in (values or {}).items()]


def any_value(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, bool):  # before int: a bool is an int
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        # JSON has no NaN or infinities: protobuf's JSON mapping spells them out
        return {"doubleValue": value if math.isfinite(value) else NON_FINITE[str(value)]}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, Sequence):
        return {"arrayValue": {"values": [any_value(item) for item in value]}}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": attributes(value)}}
    raise TypeError(f"an attribute value of type {type(value).__name__}: {value!r}")


def optional(key: str, value: str | None) -> dict[str, str]:
    return {key: value} if value else {}
