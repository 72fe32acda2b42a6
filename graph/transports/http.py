"""GraphQL over HTTP: the envelope, media types, statuses, CSRF prevention and GraphiQL."""

import asyncio
import hashlib
import logging
import time
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import orjson
from opentelemetry import trace
from opentelemetry.trace import Span, StatusCode
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from graph.observability.metrics import observe
from graph.observability.stream_telemetry import Transport
from graph.pipeline.auth import Unauthenticated, viewer_of
from graph.pipeline.errors import MASKED, coded
from graph.pipeline.limits import limit_error
from graph.pipeline.persisted import Document, PersistedDocuments, PersistedError
from graph.pipeline.pipeline import (
    RETRY_AFTER_SECONDS,
    Outcome,
    Refused,
    bucket_of,
    refused,
    timed_out,
)
from graph.services import Services, new_context, services_of
from graph.settings import Settings
from graph.transports.graphiql import graphiql_html
from graph.transports.sse import HEADERS as SSE_HEADERS
from graph.transports.sse import MEDIA_TYPE as SSE_MEDIA_TYPE
from graph.transports.sse import EventStream, wants_event_stream
from graph.transports.streams import subscription
from loaders.tracing import child_span
from resolvers.context import Context, Viewer

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
SIMPLE_CONTENT_TYPES = {"text/plain", "multipart/form-data", "application/x-www-form-urlencoded"}
T = TypeVar("T")
PREFLIGHT_HEADERS = ("apollo-require-preflight", "x-apollo-operation-name", "graphql-preflight")
TRACER = trace.get_tracer(__name__)
log = logging.getLogger(__name__)
WATCH_AFTER_SECONDS = 0.05
DEADLINE_GRACE_SECONDS = 0.1


class BadRequest(Exception):
    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


# the status of each way the pipeline refuses (a request error's only under
# application/graphql-response+json: legacy application/json gets 200, as GraphQL over HTTP says)
STATUS = {
    Refused.REQUEST: 400,
    Refused.PROTOCOL: 400,
    Refused.METHOD: 405,
    Refused.BUDGET: 429,
    Refused.UNAVAILABLE: 503,
    Refused.TIMEOUT: 504,
}


def status_of(outcome: Outcome, modern: bool) -> tuple[int, dict[str, str]]:
    """An outcome's HTTP status and headers."""
    headers = dict(outcome.headers)
    if outcome.retry_after is not None:
        headers["Retry-After"] = str(outcome.retry_after)
    if outcome.refused is Refused.METHOD:
        headers["Allow"] = "POST"
    if outcome.status is not None:
        return outcome.status, headers
    if outcome.refused is None or (outcome.refused is Refused.REQUEST and not modern):
        return 200, headers
    return STATUS[outcome.refused], headers


def response(request: Request, outcome: Outcome) -> Response:
    modern = GRAPHQL_RESPONSE in request.headers.get("accept", "")
    status, headers = status_of(outcome, modern)
    media_type = GRAPHQL_RESPONSE if modern else JSON
    return Response(orjson.dumps(outcome.payload), status, headers, media_type)


def http_refusal(code: str, message: str, status: int) -> Outcome:
    """A refusal of this transport's own, with its status (413, 415, 401, ...)."""
    outcome = refused(code, message)
    outcome.status = status
    return outcome


METHODS = frozenset({"GET", "POST"})  # /graphql's (HEAD is a GET): others are refused


def method_not_allowed(method: str) -> Outcome:
    message = (
        f"{method[:16]} is not a GraphQL method: send operations with POST, or queries with GET."
    )
    outcome = http_refusal("BAD_REQUEST", message, 405)
    outcome.headers["Allow"] = "GET, POST"
    return outcome


def http_cached(request: Request, outcome: Outcome, viewer: Viewer, max_age: timedelta) -> Response:
    """A GET's answer. A complete answer to a query that reads no per-request state may be
    kept by the client (`private` when a key asked) or a shared cache, and has an ETag over
    its data: `If-None-Match` with it gets 304. Anything else: `no-store`."""
    data = outcome.payload.get("data")
    if not outcome.shareable or data is None or "errors" in outcome.payload:
        answer = response(request, outcome)
        answer.headers["Cache-Control"] = "no-store"
        return answer
    encoded = orjson.dumps(data)
    outcome.payload["data"] = orjson.Fragment(encoded)
    scope = "private" if viewer.key_id is not None else "public"
    headers = {
        "Cache-Control": f"{scope}, max-age={int(max_age.total_seconds())}",
        "ETag": f'W/"{hashlib.blake2b(encoded, digest_size=16).hexdigest()}"',
        "Vary": "Accept, Authorization, X-API-Key",
    }
    if etag_matches(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    answer = response(request, outcome)
    answer.headers.update(headers)
    return answer


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110's weak comparison, as If-None-Match uses."""
    if not if_none_match:
        return False
    wanted = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return "*" in wanted or etag.removeprefix("W/") in wanted


def too_large(limit: int) -> BadRequest:
    return BadRequest(http_refusal("BAD_REQUEST", f"Request body exceeds {limit} bytes.", 413))


def too_slow(deadline: timedelta) -> BadRequest:
    message = f"The request body did not arrive within {deadline.total_seconds():g} s."
    return BadRequest(http_refusal("BAD_REQUEST", message, 408))


def left() -> BadRequest:
    """A client gone before its body arrived: answered, to no one, rather than raised (a
    server logs an exception as an error, with its trace, and anyone can provoke it)."""
    return BadRequest(http_refusal("BAD_REQUEST", "The client left before its body arrived.", 400))


async def read_body(request: Request, limit: int, deadline: timedelta) -> bytes:
    """The body, refused as soon as it is known to exceed `limit` bytes (413), or when it has
    not all arrived within `deadline` (408). Read from the ASGI messages themselves: most
    bodies come in one."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(deadline.total_seconds()):
            while True:
                message = await request.receive()
                if message["type"] != "http.request":
                    raise left()
                chunk: bytes = message.get("body", b"")
                size += len(chunk)
                if size > limit:  # a missing or false Content-Length
                    raise too_large(limit)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    except TimeoutError:
        raise too_slow(deadline) from None


def envelope_error(message: str) -> BadRequest:
    return BadRequest(refused("BAD_REQUEST", message))


@dataclass(frozen=True)
class Envelope:
    """One operation as a client sent it: the document itself, or the hash of a persisted one
    (graph/pipeline/persisted.py)."""

    query: str | None
    variables: dict[str, Any] | None
    operation_name: str | None
    extensions: dict[str, Any] | None
    document_id: object


def check_envelope(params: Any) -> Envelope:
    if not isinstance(params, dict):
        raise envelope_error("The body must be a JSON object with a `query`.")
    query, variables, name, extensions = (
        params.get("query"),
        params.get("variables"),
        params.get("operationName"),
        params.get("extensions"),
    )
    if query is not None and not isinstance(query, str):
        raise envelope_error("`query` must be a non-empty string.")
    if variables is not None and not isinstance(variables, dict):
        raise envelope_error("`variables` must be a JSON object.")
    if name is not None and not isinstance(name, str):
        raise envelope_error("`operationName` must be a string.")
    if extensions is not None and not isinstance(extensions, dict):
        raise envelope_error("`extensions` must be a JSON object.")
    return Envelope(query, variables, name, extensions, params.get("documentId"))


def persisted_refusal(error: PersistedError) -> Outcome:
    """Apollo's clients send the document again on PERSISTED_QUERY_NOT_FOUND, under 200."""
    why = None if error.code == "PERSISTED_QUERY_NOT_FOUND" else Refused.PROTOCOL
    return refused(error.code, str(error), why, **error.extensions)


async def document_of(
    persisted: PersistedDocuments, envelope: Envelope, viewer: Viewer
) -> Document:
    """The document to run: the query sent, or the persisted one it names."""
    try:
        return await persisted.document(
            envelope.query, envelope.extensions, envelope.document_id, viewer.via_gateway
        )
    except PersistedError as error:
        raise BadRequest(persisted_refusal(error)) from None


def get_params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query_params)
    for key in ("variables", "extensions"):
        if key in params:
            try:
                params[key] = orjson.loads(params[key])
            except orjson.JSONDecodeError:
                raise envelope_error(f"`{key}` must be JSON.") from None
    return params


async def post_params(request: Request, settings: Settings) -> tuple[list[Any], bool]:
    """The operations of a POST and whether they came as a batch (a JSON array)."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != JSON:
        raise BadRequest(
            http_refusal(
                "BAD_REQUEST", f"Content-Type must be {JSON}, received {media_type!r}.", 415
            )
        )
    try:
        body = await read_body(request, settings.max_body_bytes, settings.body_timeout)
        params = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise envelope_error("The body is not valid JSON.") from None
    if isinstance(params, list):
        if not settings.allow_batching:
            raise envelope_error("Batched requests are disabled on this server.")
        if not params:
            raise envelope_error("A batch needs at least one operation.")
        if len(params) > settings.max_batch_operations:
            error = limit_error("batchOperations", settings.max_batch_operations, len(params))
            raise BadRequest(Outcome({"errors": [error.formatted]}, Refused.REQUEST))
        return params, True
    return [params], False


def csrf_check(request: Request, settings: Settings) -> None:
    """Apollo Server's CSRF prevention: simple requests must carry a non-simple header."""
    if not settings.csrf_enabled:
        return
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if request.method == "GET" and wants_event_stream(request.headers.get("accept", "")):
        # an EventSource cannot add headers; a subscription changes nothing, and keys travel
        # in headers, never in cookies a forged request could borrow
        return
    simple = request.method == "GET" or not media_type or media_type in SIMPLE_CONTENT_TYPES
    if simple and not any(request.headers.get(header) for header in PREFLIGHT_HEADERS):
        raise envelope_error(
            "This request may be a CSRF attempt: send a `Content-Type: application/json` POST "
            "or an `apollo-require-preflight` header."
        )


def wants_graphiql(request: Request, settings: Settings) -> bool:
    # A GET carrying only a persisted-query hash has no `query`, but is not a page request.
    return (
        settings.graphiql
        and request.method == "GET"
        and "text/html" in request.headers.get("accept", "")
        and not {"query", "extensions", "documentId"} & set(request.query_params)
    )


class InFlight:
    """At most `limit` GraphQL requests at once in this process; more are shed with a 503
    (no queue that grows without bound: the client retries after Retry-After)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.running = limit, 0

    def __enter__(self) -> None:
        self.running += 1

    def __exit__(self, *_: object) -> None:
        self.running -= 1

    @property
    def full(self) -> bool:
        return self.running >= self.limit


def overloaded() -> Outcome:
    message = "The server is busy; retry shortly."
    outcome = refused("SERVICE_UNAVAILABLE", message, Refused.UNAVAILABLE)
    outcome.retry_after = RETRY_AFTER_SECONDS
    return outcome


async def disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def while_connected(request: Request, work: Coroutine[Any, Any, T]) -> T | None:
    """The result of `work`, run in this task; or None if the client disconnects first: then
    `work` (and the SQL it waits for) is cancelled. Most requests are answered before
    WATCH_AFTER_SECONDS, and never pay for a task that listens for the client."""
    task = asyncio.current_task()
    assert task is not None
    left = False
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        nonlocal left
        await disconnected(request)
        left = True
        task.cancel()

    def start_watching() -> None:
        nonlocal watcher
        watcher = asyncio.ensure_future(watch())

    timer = asyncio.get_running_loop().call_later(WATCH_AFTER_SECONDS, start_watching)
    try:
        return await work
    except asyncio.CancelledError:
        if not left:
            raise  # the server is stopping, or has cancelled the request itself
        task.uncancel()
        return None
    finally:
        timer.cancel()
        if watcher is not None:
            watcher.cancel()


class GraphQLEndpoint:
    """/graphql as a plain ASGI app (Starlette wraps a function endpoint in an exception-handler
    layer per request, which this one, answering every error itself, does not need)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "HEAD":  # a GET's answer: the server sends its headers only
            scope = {**scope, "method": "GET"}
        request = Request(scope, receive, send)
        services = services_of(request.app)  # once: every step below is given them
        if wants_graphiql(request, services.settings):
            answer: Response = HTMLResponse(graphiql_html(services.settings))
        else:
            answer = await admitted(request, services)
        await answer(scope, receive, send)


async def admitted(request: Request, services: Services) -> Response:
    """The answer to a GraphQL request. Its body arrives before it takes an in-flight slot:
    a client trickling one in holds a connection, not a slot."""
    settings = services.settings
    if request.method not in METHODS:
        return response(request, method_not_allowed(request.method))
    try:
        csrf_check(request, settings)
        if request.method == "GET":
            batch, is_batch = [get_params(request)], False
        else:
            batch, is_batch = await post_params(request, settings)
    except BadRequest as error:
        return response(request, error.outcome)
    gate = services.in_flight
    if gate.full:
        return response(request, overloaded())
    with gate:
        return await within_deadline(request, services, batch, is_batch)


async def within_deadline(
    request: Request, services: Services, batch: list[Any], is_batch: bool
) -> Response:
    """Everything the request does, the lookup of its API key included, within its deadline;
    what fails outside execution (PostgreSQL down) answers with its code too."""
    deadline = services.settings.request_timeout
    when = asyncio.get_running_loop().time() + deadline.total_seconds()
    # execution stops at `when` itself, and answers with the operation's cost
    scope = asyncio.timeout_at(when + DEADLINE_GRACE_SECONDS)
    try:
        async with scope:
            return await serve_graphql(request, services, batch, is_batch, when)
    except Exception as error:  # answered with a code, never a bare 500
        expired = isinstance(error, TimeoutError) and scope.expired()
        return response(request, timed_out(deadline) if expired else failed(error))


def failed(error: Exception) -> Outcome:
    """The answer to a request that failed outside execution: its code, or masked."""
    known = coded(error)
    if known is None:
        log.error("unexpected error answering a request", exc_info=error)
        return http_refusal("INTERNAL_SERVER_ERROR", MASKED, 500)
    code, message = known
    if code == "TIMEOUT":
        return refused(code, message, Refused.TIMEOUT)
    outcome = refused(code, message, Refused.UNAVAILABLE)
    outcome.retry_after = RETRY_AFTER_SECONDS
    return outcome


async def serve_graphql(
    request: Request, services: Services, batch: list[Any], is_batch: bool, deadline: float
) -> Response:
    settings = services.settings
    try:
        viewer = await viewer_of(request, services.reader, settings)
    except Unauthenticated as error:
        outcome = http_refusal("UNAUTHENTICATED", str(error), 401)
        outcome.headers["WWW-Authenticate"] = 'Bearer realm="corpgraph"'
        return response(request, outcome)
    if wants_event_stream(request.headers.get("accept", "")):
        return await event_stream(request, services, batch, is_batch, viewer)
    context = new_context(services, viewer, deadline=deadline)
    try:
        outcomes = await while_connected(request, run_batch(request, services, batch, context))
    finally:
        context.loaders.clear()
    if outcomes is None:
        return Response(status_code=499)  # nginx's "client closed request": nobody is listening
    if not is_batch and request.method == "GET":
        outcome = outcomes[0]
        max_age = settings.settled_max_age if outcome.settled else settings.http_cache_max_age
        return http_cached(request, outcome, viewer, max_age)
    if not is_batch:
        return response(request, outcomes[0])
    return Response(orjson.dumps([o.payload for o in outcomes]), 200, media_type=JSON)


async def event_stream(
    request: Request, services: Services, batch: list[Any], is_batch: bool, viewer: Viewer
) -> Response:
    """One subscription as Server-Sent Events (graph/transports/sse.py), or why not: with its
    status, since a client that asked for a stream reads anything else as a failure."""
    if is_batch:
        return stream_refused(refused("BAD_REQUEST", "Batches cannot stream: send one request."))
    try:
        envelope = check_envelope(batch[0])
        requested = await document_of(services.persisted, envelope, viewer)
    except BadRequest as error:
        return stream_refused(error.outcome)
    client, connections = bucket_of(viewer), services.connection_slots
    if not connections.take(client):
        return stream_refused(Outcome({"errors": [connections.refusal()]}, Refused.BUDGET))
    stream = EventStream(request.headers.get("last-event-id"))
    # its slot is given back when the stream ends, or (never started) is collected
    stream.on_end = weakref.finalize(stream, connections.give_back, client)
    context = new_context(services, viewer, alerts=services.broker, connection=stream)
    events = await subscription(
        services.pipeline,
        services.subscription_slots,
        requested.text,
        envelope.variables,
        envelope.operation_name,
        context,
        Transport("sse", services.operation_names),
    )
    if isinstance(events, Outcome):
        stream.on_end()
        return stream_refused(events)
    await services.persisted.remember(requested, bucket_of(viewer))
    services.connections.add(stream)
    events_sent = stream.events(events, context.loaders.clear)
    return StreamingResponse(events_sent, 200, SSE_HEADERS, SSE_MEDIA_TYPE)


def stream_refused(outcome: Outcome) -> Response:
    status, headers = status_of(outcome, modern=True)  # a stream's client reads the status
    return Response(orjson.dumps(outcome.payload), status, headers, JSON)


async def run_batch(
    request: Request, services: Services, batch: list[Any], context: Context
) -> list[Outcome]:
    return [await run_one(request, services, params, context) for params in batch]


async def run_one(request: Request, services: Services, params: Any, context: Context) -> Outcome:
    """One operation, in a span of its own, counted in the metrics."""
    started = time.perf_counter()
    with child_span(TRACER, "graphql.operation") as span:
        outcome = await answer(request, services, params, context, span)
        if span.is_recording():
            describe(span, outcome)
    names = services.operation_names
    if names is not None:
        observe(outcome, names.label(outcome.operation_name), time.perf_counter() - started)
    return outcome


async def answer(
    request: Request, services: Services, params: Any, context: Context, span: Span
) -> Outcome:
    try:
        envelope = check_envelope(params)
        document = await document_of(services.persisted, envelope, context.viewer)
    except BadRequest as error:
        return error.outcome
    if document.hash is not None:
        span.set_attribute("graphql.document.hash", document.hash)
    outcome = await services.pipeline.run(
        document.text,
        envelope.variables,
        envelope.operation_name,
        context,
        mutations_allowed=request.method == "POST",
        document_hash=document.hash,
    )
    if outcome.refused is None:
        await services.persisted.remember(document, bucket_of(context.viewer))
    return outcome


def describe(span: Span, outcome: Outcome) -> None:
    """The operation span's name and attributes (OpenTelemetry's GraphQL conventions)."""
    kind, name = outcome.operation_type, outcome.operation_name
    if kind is not None:
        span.update_name(f"{kind} {name}" if name else kind)
        span.set_attribute("graphql.operation.type", kind)
    if name is not None:
        span.set_attribute("graphql.operation.name", name)
    if outcome.cost is not None:
        span.set_attribute("graphql.cost.requested", outcome.cost[0])
        span.set_attribute("graphql.cost.actual", outcome.cost[1])
    codes = [error["extensions"]["code"] for error in outcome.payload.get("errors") or ()]
    if codes:
        span.set_attribute("graphql.error.codes", codes)
        if outcome.payload.get("data") is None:
            span.set_status(StatusCode.ERROR, codes[0])
