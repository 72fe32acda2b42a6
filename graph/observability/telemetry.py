"""OpenTelemetry tracing, on when CORPGRAPH_TRACING is true.

The exporter is OTLP over HTTP, configured by the SDK's standard variables
(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS, OTEL_SERVICE_NAME,
OTEL_TRACES_SAMPLER, ...), encoded as protobuf or, with OTEL_EXPORTER_OTLP_PROTOCOL=http/json,
as JSON at a third of the cost (graph/observability/span_export.py). A request's spans: the
HTTP request (`RequestSpans`, which continues a W3C `traceparent` sent by the gateway) -> the
GraphQL operation (graph/transports/http.py) -> DataLoader batches (loaders/request.py) -> SQL
(asyncpg) and Redis commands. The spans under the HTTP one are made by loaders/tracing.py.

The sampler decides once per request, before any work: a request it leaves out runs with
instrumentation suppressed and makes no span at all. (The ASGI instrumentation computes a
request's attributes and wraps its messages whatever the sampler says, and the asyncpg and
Redis ones build every statement's attributes: ~0.13 ms on a 1.2 ms query, sampled or not.)
"""

import os
import re
from typing import Any, cast

from opentelemetry import context, propagate, trace
from opentelemetry.instrumentation.asgi import asgi_getter
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.environment_variables import OTEL_SERVICE_NAME
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.semconv.attributes.client_attributes import CLIENT_ADDRESS
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.network_attributes import NETWORK_PROTOCOL_VERSION
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_SCHEME
from opentelemetry.semconv.attributes.user_agent_attributes import USER_AGENT_ORIGINAL
from opentelemetry.trace import Span, SpanKind, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graph.observability.span_export import span_exporter

DEFAULT_SERVICE_NAME = "corpgraph"
TRACER = trace.get_tracer(__name__)
CONVERTER = re.compile(r":\w+}")  # a path parameter's type in a route template
_started: TracerProvider | None = None


def start_tracing(processor: SpanProcessor | None = None) -> TracerProvider:
    """The process's tracer provider, made on the first call and exporting to OTLP unless
    given another processor (tests pass an in-memory exporter's). A process has one."""
    global _started
    if _started is None:
        if processor is None:
            processor = BatchSpanProcessor(span_exporter())
        service = os.environ.get(OTEL_SERVICE_NAME, DEFAULT_SERVICE_NAME)
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
        provider.add_span_processor(processor)
        trace.set_tracer_provider(provider)
        AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
        RedisInstrumentor().instrument()
        _started = provider
    return _started


class RequestSpans:
    """A SERVER span for each HTTP request and WebSocket connection, a child of the span in
    the request's `traceparent` header if any."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # the headers the configured propagators read (traceparent, tracestate, baggage)
        self.carried = {name.encode() for name in propagate.get_global_textmap().fields}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        parent = None  # a new trace, unless the request carries one
        if any(name in self.carried for name, _ in scope["headers"]):
            parent = propagate.extract(headers_of(scope), getter=asgi_getter)
        span = TRACER.start_span(scope.get("method", "WEBSOCKET"), parent, SpanKind.SERVER)
        if not span.is_recording():
            with suppress_instrumentation():
                await self.app(scope, receive, send)
            return
        describe_request(span, scope)
        token = context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, response_status(span, send))
        except BaseException as error:
            span.record_exception(error)
            span.set_status(StatusCode.ERROR, type(error).__name__)
            raise
        finally:
            context.detach(token)
            name_by_route(span, scope)
            span.end()


def headers_of(scope: Scope) -> dict[str, Any]:
    return cast("dict[str, Any]", scope)  # the getter reads the scope's `headers`


def describe_request(span: Span, scope: Scope) -> None:
    if "method" in scope:
        span.set_attribute(HTTP_REQUEST_METHOD, scope["method"])
    span.set_attributes(
        {
            URL_PATH: scope["path"],
            URL_SCHEME: scope.get("scheme", "http"),
            NETWORK_PROTOCOL_VERSION: scope.get("http_version", ""),
        }
    )
    if scope.get("client"):
        span.set_attribute(CLIENT_ADDRESS, scope["client"][0])
    user_agent = asgi_getter.get(headers_of(scope), "user-agent")
    if user_agent:
        span.set_attribute(USER_AGENT_ORIGINAL, user_agent[0])


def name_by_route(span: Span, scope: Scope) -> None:
    """`POST /graphql`, `GET /documents/{key}`: the template of the route the router matched
    (it notes the endpoint in the scope), never the raw path of a request nothing matched."""
    endpoint = scope.get("endpoint")
    if endpoint is None:
        return
    templates = [r.path for r in scope["app"].routes if getattr(r, "endpoint", None) is endpoint]
    if not templates:
        return
    route = CONVERTER.sub("}", templates[0])  # `{key:path}` -> `{key}`
    span.set_attribute(HTTP_ROUTE, route)
    span.update_name(f"{scope['method']} {route}" if "method" in scope else route)


def response_status(span: Span, send: Send) -> Send:
    """`send`, noting the response's status on the span (5xx: an error)."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            status = message["status"]
            span.set_attribute(HTTP_RESPONSE_STATUS_CODE, status)
            if status >= 500:
                span.set_status(StatusCode.ERROR)
        await send(message)

    return sending
