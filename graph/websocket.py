"""Subscriptions over WebSocket on /graphql: graphql-transport-ws and legacy graphql-ws
(Strawberry's protocol handlers), authenticated at `connection_init` like HTTP requests.

Only subscriptions run here: queries and mutations go over HTTP, where cost control applies.
A page from another origin may connect only when the CORS allowlist names its origin.
"""

import asyncio
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, cast

from graphql import (
    GraphQLError,
    GraphQLFormattedError,
    OperationDefinitionNode,
    OperationType,
    ValidationRule,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.extensions import AddValidationRules
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
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
    ConnectionInitMessage as WSInitMessage,
)
from strawberry.subscriptions.protocols.graphql_ws.types import ErrorMessage as Error
from strawberry.subscriptions.protocols.graphql_ws.types import StartMessage
from strawberry.types.unset import UNSET, UnsetType

from graph.auth import Unauthenticated, presented_key, viewer_for_key
from graph.connections import WebSocketConnection
from graph.errors import coded
from graph.execution import Pipeline, bucket_of
from graph.gateway import from_gateway
from graph.http import new_context
from graph.limits import shape_limits
from graph.persisted import PersistedDocuments, PersistedError
from graph.settings import Settings
from graph.text_inputs import NoNulInArguments, nul_in_variables
from resolvers.context import Context, Viewer


class SubscriptionsOnly(ValidationRule):
    def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
        if node.operation != OperationType.SUBSCRIPTION:
            self.report_error(
                GraphQLError(
                    "Only subscriptions run over WebSocket: send queries and mutations over HTTP.",
                    node,
                )
            )


def websocket_rules(settings: Settings) -> Callable[[], AddValidationRules]:
    """The rules added to Strawberry's (WebSocket-only) execution: HTTP has its own pipeline."""
    limits = shape_limits(settings.max_depth, settings.max_aliases, settings.max_root_fields)
    return lambda: AddValidationRules([SubscriptionsOnly, limits, NoNulInArguments])


async def with_document(
    view: "SubscriptionsOverWebSocket", context: Context, payload: Mapping[str, Any]
) -> dict[str, Any]:
    """The subscribe payload with the document to run: the one sent, or the persisted one its
    hash names (APQ, a manifest's id, `documentId`); a PersistedError says why there is none.
    In trusted mode a manifest's document may also come in full, as graphql-ws clients send it."""
    persisted, pipeline = view.persisted, view.pipeline
    assert persisted is not None and pipeline is not None, "the app has started"
    if not isinstance(payload, Mapping):
        raise PersistedError("BAD_REQUEST", "A subscribe payload is a JSON object.", 400)
    variables = payload.get("variables")
    if isinstance(variables, Mapping) and (nul := nul_in_variables(variables)) is not None:
        raise PersistedError("BAD_USER_INPUT", nul.message, 400, nul.extensions or {})
    query = payload.get("query")
    if persisted.listed(query):
        return dict(payload)
    document = await persisted.document(
        query, payload.get("extensions"), payload.get("documentId"), context.viewer.via_gateway
    )
    errors = pipeline.prepare(document.text).errors
    for error in errors:  # refused here: Strawberry would validate it again, unbounded
        if error["extensions"]["code"] == "QUERY_LIMIT_EXCEEDED":
            extensions = error["extensions"]
            raise PersistedError(extensions["code"], error["message"], 400, extensions)
    if document.sent and not errors:
        await persisted.remember(document, bucket_of(context.viewer))
    return {**payload, "query": document.text}


def refusal(error: PersistedError) -> GraphQLFormattedError:
    return {"message": str(error), "extensions": {**error.extensions, "code": error.code}}


class TryAgainLater(Exception):
    """connection_init could not look up the key in time: PostgreSQL is down or stalled."""


TRY_AGAIN_LATER = 1013  # WebSocket close code
UNAVAILABLE_REASON = "The database is unavailable: reconnect later."


class PersistedTransportWS(BaseGraphQLTransportWSHandler[Context, None]):
    view: "SubscriptionsOverWebSocket"

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except TryAgainLater:
            await self.websocket.close(TRY_AGAIN_LATER, UNAVAILABLE_REASON)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if self.connection_acknowledged:  # else Strawberry closes it (4401)
            try:
                payload = await with_document(self.view, self.context, message["payload"])
            except PersistedError as error:
                refused = TransportError(id=message["id"], type="error", payload=[refusal(error)])
                await self.send_message(refused)
                return
            message = {**message, "payload": payload}  # type: ignore[typeddict-item]
        await super().handle_subscribe(message)


class PersistedWS(BaseGraphQLWSHandler[Context, None]):
    view: "SubscriptionsOverWebSocket"

    async def handle_connection_init(self, message: WSInitMessage) -> None:
        try:
            await super().handle_connection_init(message)
        except TryAgainLater:
            await self.websocket.close(TRY_AGAIN_LATER, UNAVAILABLE_REASON)

    async def handle_start(self, message: StartMessage) -> None:
        try:
            payload = await with_document(self.view, self.context, message["payload"])
        except PersistedError as error:
            await self.send_message(Error(type="error", id=message["id"], payload=refusal(error)))
            return
        await super().handle_start({**message, "payload": payload})  # type: ignore[typeddict-item]


class SubscriptionsOverWebSocket(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = PersistedTransportWS
    graphql_ws_handler_class = PersistedWS
    # set when the app starts (they need its Redis)
    persisted: PersistedDocuments | None = None
    pipeline: Pipeline | None = None

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

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        assert isinstance(request, WebSocket), "queries and mutations have their own endpoint"
        state = request.app.state
        peer = request.client.host if request.client else None
        connection = WebSocketConnection(request)
        state.connections.add(connection)
        return new_context(
            state,
            Viewer(client_ip=peer),  # until connection_init names the key
            alerts=state.broker,
            charge=state.pipeline.charge_subscription,
            max_subscriptions=self.settings.max_subscriptions,
            connection=connection,
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """The key comes in the connection_init payload (`Authorization: Bearer ...`,
        `authorization` or `apiKey`); none is the anonymous tier, a bad one closes with 4403."""
        params = headers_of(context.connection_params or {})
        trusted = from_gateway(params, self.settings)
        ip = params.get(self.settings.client_ip_header) if trusted else context.viewer.client_ip
        try:
            key = presented_key(params)
            async with asyncio.timeout(self.settings.request_timeout.total_seconds()):
                context.viewer = await viewer_for_key(context.loaders.db, key, ip, trusted)
        except Unauthenticated:
            raise ConnectionRejectionError() from None
        except Exception as error:
            if coded(error) is None:
                raise
            raise TryAgainLater() from error  # a timeout, or PostgreSQL unavailable
        return cast(UnsetType, UNSET)


def headers_of(params: Mapping[str, object]) -> dict[str, str]:
    # a gateway forwards absent headers as empty strings
    headers = {
        name.lower(): value for name, value in params.items() if isinstance(value, str) and value
    }
    if "apikey" in headers:
        headers.setdefault("x-api-key", headers["apikey"])
    return headers
