"""Subscriptions over WebSocket on /graphql: graphql-transport-ws and legacy graphql-ws
(Strawberry's protocol handlers), authenticated at `connection_init` like HTTP requests.

The handlers only translate their protocol: each operation runs through the pipeline, as over
HTTP and SSE (graph/transports/streams.py), so the same limits, caches, rules, costs and
masking apply.
Only subscriptions run here: queries and mutations go over HTTP.
A page from another origin may connect only when the CORS allowlist names its origin.
"""

import asyncio
import logging
from collections.abc import Mapping
from contextlib import suppress
from datetime import timedelta
from typing import Any, cast

import orjson
from graphql import GraphQLFormattedError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ErrorMessage as TransportError,
)
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import (
    CompleteMessage,
    OperationMessage,
    StartMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import (
    ConnectionInitMessage as WSInitMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import ErrorMessage as Error
from strawberry.types.unset import UNSET, UnsetType
from strawberry.utils.aio import aclosing

from graph.observability.stream_telemetry import Transport, TransportName
from graph.pipeline.auth import Unauthenticated, presented_key, viewer_for_key
from graph.pipeline.errors import coded
from graph.pipeline.gateway import from_gateway
from graph.pipeline.persisted import Document, PersistedError
from graph.pipeline.pipeline import Outcome, bucket_of
from graph.services import Services, new_context
from graph.settings import Settings
from graph.transports.connections import WebSocketConnection
from graph.transports.streams import Subscription, subscription
from graph.transports.ws_channel import Channel
from resolvers.context import Context, Viewer

log = logging.getLogger(__name__)
DISCONNECTED = WebSocketState.DISCONNECTED
KEY_PARAMS = frozenset({"authorization", "x-api-key", "apikey"})


async def with_document(
    view: "SubscriptionsOverWebSocket", context: Context, payload: Mapping[str, Any]
) -> tuple[dict[str, Any], Document | None]:
    """The subscribe payload with the document to run: the one sent, or the persisted one its
    hash names (APQ, a manifest's id, `documentId`), and the document to remember once it
    proves valid; a PersistedError says why there is none. In trusted mode a manifest's
    document may also come in full, as graphql-ws clients send it."""
    persisted = view.services.persisted
    if not isinstance(payload, Mapping):
        raise PersistedError("BAD_REQUEST", "A subscribe payload is a JSON object.")
    variables = payload.get("variables")
    if variables is not None and not isinstance(variables, Mapping):
        raise PersistedError("BAD_REQUEST", "`variables` must be a JSON object.")
    name = payload.get("operationName")
    if name is not None and not isinstance(name, str):
        raise PersistedError("BAD_REQUEST", "`operationName` must be a string.")
    query = payload.get("query")
    if persisted.listed(query):
        return dict(payload), None
    document = await persisted.document(
        query, payload.get("extensions"), payload.get("documentId"), context.viewer.via_gateway
    )
    return {**payload, "query": document.text}, document if document.sent else None


def well_formed(message: Mapping[str, Any]) -> bool:
    """A legacy graphql-ws message: a `type`; an `id` to start or stop; a `payload` to start."""
    kind = message.get("type")
    if kind in ("start", "stop") and not isinstance(message.get("id"), str):
        return False
    if kind == "start" and not isinstance(message.get("payload"), dict):
        return False
    return isinstance(kind, str)


def refusal(error: PersistedError) -> GraphQLFormattedError:
    return {"message": str(error), "extensions": {**error.extensions, "code": error.code}}


class TryAgainLater(Exception):
    """connection_init could not look up the key in time: PostgreSQL is down or stalled."""


TRY_AGAIN_LATER = 1013  # WebSocket close code
UNAVAILABLE_REASON = "The database is unavailable: reconnect later."


class Forbidden(Exception):
    """connection_init presented a key that is malformed, unknown, expired or revoked."""


class TooManyConnections(Exception):
    """The client holds as many connections as it may (graph/transports/client_slots.py)."""


FORBIDDEN = 4403  # WebSocket close codes, on both protocols
PROTOCOL_ERROR = 1002  # legacy graphql-ws's, for a message it cannot take
INIT_TIMEOUT, INIT_TIMEOUT_REASON = 4408, "Connection initialisation timeout"  # Strawberry's
TOO_MANY = 4429


async def refuse_connection(websocket: Any, error: Exception) -> bool:
    """Closes the connection that connection_init refused (True), with its code."""
    if isinstance(error, TryAgainLater):
        await websocket.close(TRY_AGAIN_LATER, UNAVAILABLE_REASON)
    elif isinstance(error, Forbidden):
        await websocket.close(FORBIDDEN, str(error))
    elif isinstance(error, TooManyConnections):
        await websocket.close(TOO_MANY, str(error))
    else:
        return False
    return True


class PersistedTransportWS(BaseGraphQLTransportWSHandler[Context, None]):
    """graphql-transport-ws; each operation runs through the pipeline
    (graph/transports/streams.py)."""

    view: "SubscriptionsOverWebSocket"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.to_remember: dict[str, Document] = {}

    async def handle_connection_init_timeout(self) -> None:
        """Strawberry's, unless the connection is closed already: it would close it again,
        which Starlette refuses, and log that as an error (Hypercorn, a client that sent its
        frames before the handshake's answer)."""
        delay = self.connection_init_wait_timeout.total_seconds()
        await asyncio.sleep(delay)
        websocket: WebSocket = self.websocket.ws  # type: ignore[attr-defined]
        if self.connection_init_received or websocket.application_state == DISCONNECTED:
            return
        self.connection_timed_out = True
        await self.websocket.close(code=INIT_TIMEOUT, reason=INIT_TIMEOUT_REASON)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except Exception as error:
            if not await refuse_connection(self.websocket, error):
                raise

    async def shutdown(self) -> None:
        try:
            await super().shutdown()
        finally:
            self.view.disconnected(self.context)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged:  # else Strawberry closes it (4401)
            try:
                payload, sent = await with_document(self.view, self.context, message["payload"])
            except PersistedError as error:
                refused = TransportError(id=message["id"], type="error", payload=[refusal(error)])
                await self.send_message(refused)
                return
            if sent is not None:
                self.to_remember[message["id"]] = sent
            message = {**message, "payload": payload}  # type: ignore[typeddict-item]
        await super().handle_subscribe(message)

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        sent = self.to_remember.pop(operation.id, None)
        try:
            events = await self.view.events(
                operation.query,
                operation.variables,
                operation.operation_name,
                self.context,
                sent,
                "graphql-transport-ws",
            )
            if isinstance(events, Outcome):
                errors = events.payload["errors"]
                await operation.send_operation_message(
                    {"id": operation.id, "type": "error", "payload": errors}
                )
                return
            async with aclosing(events):
                async for payload in events:
                    message = {"id": operation.id, "type": "next", "payload": payload}
                    await operation.send_operation_message(message)  # type: ignore[arg-type]
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except Exception as error:
            log.error("a WebSocket operation failed", exc_info=error)
            with suppress(Exception):
                await operation.send_operation_message({"id": operation.id, "type": "complete"})
            self.operations.pop(operation.id, None)


class PersistedWS(BaseGraphQLWSHandler[Context, None]):
    """Legacy graphql-ws; each operation runs through the pipeline (graph/transports/streams.py)."""

    view: "SubscriptionsOverWebSocket"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.to_remember: dict[str, Document] = {}
        self.init_received = False

    async def handle(self) -> None:
        """Strawberry's, with graphql-transport-ws's connection_init timeout (4408): the legacy
        protocol has none, and a client that never sent connection_init held a socket and a
        task for ever, without taking a connection slot (that is taken at connection_init)."""
        waiting = asyncio.create_task(self.close_unless_initialised())
        try:
            await super().handle()
        finally:
            waiting.cancel()

    async def close_unless_initialised(self) -> None:
        await asyncio.sleep(self.view.connection_init_wait_timeout.total_seconds())
        websocket: WebSocket = self.websocket.ws  # type: ignore[attr-defined]
        if not self.init_received and websocket.application_state != DISCONNECTED:
            await self.websocket.close(code=INIT_TIMEOUT, reason=INIT_TIMEOUT_REASON)

    async def handle_message(self, message: OperationMessage) -> None:
        """Strawberry's, for messages of the protocol's shape: it failed on others (a missing
        `type` or `payload`, an `id` that is not a string: close 1011, and a logged trace)."""
        if not well_formed(message):
            await self.websocket.close(code=PROTOCOL_ERROR, reason="Invalid message")
            return
        await super().handle_message(message)

    async def handle_connection_init(self, message: WSInitMessage) -> None:
        self.init_received = True
        try:
            await super().handle_connection_init(message)
        except Exception as error:
            if not await refuse_connection(self.websocket, error):
                raise

    async def cleanup(self) -> None:
        try:
            await super().cleanup()
        finally:
            self.view.disconnected(self.context)

    async def handle_start(self, message: StartMessage) -> None:
        if self.connection_acknowledged:  # else Strawberry closes it (4401)
            try:
                payload, sent = await with_document(self.view, self.context, message["payload"])
            except PersistedError as error:
                await self.send_message(
                    Error(type="error", id=message["id"], payload=refusal(error))
                )
                return
            if sent is not None:
                self.to_remember[message["id"]] = sent
            message = {**message, "payload": payload}  # type: ignore[typeddict-item]
        await super().handle_start(message)

    async def handle_async_results(
        self,
        operation_id: str,
        query: str,
        operation_name: str | None,
        variables: dict[str, object] | None,
    ) -> None:
        sent = self.to_remember.pop(operation_id, None)
        try:
            events = await self.view.events(
                query, variables, operation_name, self.context, sent, "graphql-ws"
            )
            if isinstance(events, Outcome):
                (first, *_) = events.payload["errors"]
                await self.send_message(Error(type="error", id=operation_id, payload=first))
                return
            self.subscriptions[operation_id] = events  # type: ignore[assignment]
            async with aclosing(events):
                async for payload in events:
                    data = {"type": "data", "id": operation_id, "payload": payload}
                    await self.send_message(data)  # type: ignore[arg-type]
            await self.send_message(CompleteMessage(type="complete", id=operation_id))
        except asyncio.CancelledError:
            await self.send_message(CompleteMessage(type="complete", id=operation_id))
        finally:
            self.subscriptions.pop(operation_id, None)
            self.tasks.pop(operation_id, None)


class SubscriptionsOverWebSocket(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = PersistedTransportWS
    graphql_ws_handler_class = PersistedWS
    started: Services | None = None  # set when the app starts

    def __init__(self, schema: Any, settings: Settings) -> None:
        super().__init__(
            schema,
            graphql_ide=None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL),
            keep_alive=True,
            keep_alive_interval=15,
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=None,  # ours, with its error code: resolvers
            # a browser page from another origin is refused unless the CORS allowlist names it
            allowed_origins=settings.cors_origins,
        )
        self.settings = settings

    @property
    def services(self) -> Services:
        assert self.started is not None, "the app has started"
        return self.started

    def decode_json(self, data: str | bytes) -> object:
        """As the HTTP endpoint reads JSON: a lone surrogate (`"\\ud800"`) is not valid JSON
        (Python's json module let it through to Redis and PostgreSQL, which cannot encode it:
        an internal error, and close 1011 when it was an API key). A message is an object:
        Strawberry's handlers failed on any other (close 1011, and a logged trace)."""
        message = orjson.loads(data)
        if not isinstance(message, dict):
            raise orjson.JSONDecodeError("a message is a JSON object", str(data)[:64], 0)
        return message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        channel = Channel(receive, send, self.settings.max_body_bytes)
        await super().__call__(scope, channel.receive, channel.send)

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        assert isinstance(request, WebSocket), "queries and mutations have their own endpoint"
        services = self.services
        peer = request.client.host if request.client else None
        connection = WebSocketConnection(request)
        services.connections.add(connection)
        return new_context(
            services,
            Viewer(client_ip=peer),  # until connection_init names the key
            alerts=services.broker,
            max_subscriptions=self.settings.max_subscriptions,
            connection=connection,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """The key comes in the connection_init payload (`Authorization: Bearer ...`,
        `authorization` or `apiKey`); none is the anonymous tier; one that is presented but
        malformed, unknown, expired or revoked closes the connection with 4403."""
        try:
            params = headers_of(context.connection_params or {}, self.settings)
            trusted = from_gateway(params, self.settings)
            ip = params.get(self.settings.client_ip_header) if trusted else None
            key = presented_key(params)
            async with asyncio.timeout(self.settings.request_timeout.total_seconds()):
                context.viewer = await viewer_for_key(
                    context.loaders.db, key, ip or context.viewer.client_ip, trusted
                )
        except Unauthenticated as error:
            raise Forbidden(str(error)) from None
        except Exception as error:
            if coded(error) is None:
                raise
            raise TryAgainLater() from error  # a timeout, or PostgreSQL unavailable
        slots, connection = self.services.connection_slots, context.connection
        assert isinstance(connection, WebSocketConnection)
        client = bucket_of(context.viewer)
        if not slots.take(client):
            raise TooManyConnections(slots.message())
        connection.client = client
        return cast(UnsetType, UNSET)

    def disconnected(self, context: Context) -> None:
        """The connection's slot is free again (if connection_init took one), and the
        statements its events were waiting for are cancelled."""
        context.loaders.clear()
        connection = context.connection
        assert isinstance(connection, WebSocketConnection)
        if connection.client is not None:
            self.services.connection_slots.give_back(connection.client)
            connection.client = None

    async def events(
        self,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Context,
        sent: Document | None,
        transport: TransportName,
    ) -> Outcome | Subscription:
        """One operation through the pipeline; a document sent with its hash (APQ) is
        remembered once it proves valid."""
        services = self.services
        events = await subscription(
            services.pipeline,
            services.subscription_slots,
            query,
            variables,
            operation_name,
            context,
            Transport(transport, services.operation_names),
        )
        if sent is not None and not isinstance(events, Outcome):
            await services.persisted.remember(sent, bucket_of(context.viewer))
        return events


def headers_of(params: Mapping[str, object], settings: Settings) -> dict[str, str]:
    """connection_init's payload as the headers of an HTTP request. A key presented in any
    other shape than a non-empty string is refused (Unauthenticated), never ignored; only a
    gateway, which forwards absent headers as empty strings, may send them empty."""
    headers = {
        name.lower(): value for name, value in params.items() if isinstance(value, str) and value
    }
    trusted = from_gateway(headers, settings)
    for name, value in params.items():
        empty = value is None or value == ""
        if name.lower() in KEY_PARAMS and not headers.get(name.lower()) and not (trusted and empty):
            raise Unauthenticated(f"`{name}` must be a non-empty string: an API key.")
    if "apikey" in headers:
        headers.setdefault("x-api-key", headers["apikey"])
    return headers
