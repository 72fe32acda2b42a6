"""OpenTelemetry tracing, on when CORPGRAPH_TRACING is true.

The exporter is OTLP over HTTP, configured by the SDK's standard variables
(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME,
OTEL_TRACES_SAMPLER, ...). A request's spans: the HTTP request (the ASGI middleware, which
continues a W3C `traceparent` sent by the gateway) -> the GraphQL operation (graph/http.py)
-> DataLoader batches (loaders/request.py) -> SQL (asyncpg) and Redis commands.
"""

import os
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.sdk.environment_variables import OTEL_SERVICE_NAME
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

DEFAULT_SERVICE_NAME = "corpgraph"
_started: TracerProvider | None = None


def start_tracing(processor: SpanProcessor | None = None) -> TracerProvider:
    """The process's tracer provider, made on the first call and exporting to OTLP unless
    given another processor (tests pass an in-memory exporter's). A process has one."""
    global _started
    if _started is None:
        if processor is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            processor = BatchSpanProcessor(OTLPSpanExporter())
        service = os.environ.get(OTEL_SERVICE_NAME, DEFAULT_SERVICE_NAME)
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
        provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
        RedisInstrumentor().instrument()
        _started = provider
    return _started


def traced(app: Any) -> Any:
    """The ASGI app wrapped in a span per HTTP request (and WebSocket connection)."""
    return OpenTelemetryMiddleware(app, exclude_spans=["receive", "send"])
