"""Subscriptions over WebSocket on /graphql: graphql-transport-ws and legacy graphql-ws
(Strawberry's protocol handlers), authenticated at `connection_init` like HTTP requests.

Only subscriptions run here: queries and mutations go over HTTP, where cost control applies.
A page from another origin may connect only when the CORS allowlist names its origin.
"""

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
    ErrorMessage as TransportError,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import SubscribeMessage
from strawberry.subscriptions.protocols.graphql_ws.handlers import BaseGraphQLWSHandler
from strawberry.subscriptions.protocols.graphql_ws.types import ErrorMessage as Error
from strawberry.subscriptions.protocols.graphql_ws.types import StartMessage
from strawberry.types.unset import UNSET, UnsetType

from graph.auth import Unauthenticated, presented_key, viewer_for_key
from graph.connections import WebSocketConnection
from graph.gateway import from_gateway
from graph.http import new_context
from graph.limits import shape_limits
from graph.settings import Settings
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
    return lambda: AddValidationRules([SubscriptionsOnly, limits])


def untrusted(context: Context, payload: Mapping[str, Any], trusted: frozenset[str] | None) -> bool:
    """In trusted mode, a subscription whose document is not in a manifest (the gateway's
    query plans excepted)."""
    return (
        trusted is not None
        and not context.viewer.via_gateway
        and payload.get("query") not in trusted
    )


NOT_IN_LIST: GraphQLFormattedError = {
    "message": "This document is not in the trusted list.",
    "extensions": {"code": "PERSISTED_QUERY_NOT_IN_LIST"},
}


class TrustedTransportWS(BaseGraphQLTransportWSHandler[Context, None]):
    view: "SubscriptionsOverWebSocket"

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if untrusted(self.context, message["payload"], self.view.trusted):
            refusal = TransportError(id=message["id"], type="error", payload=[NOT_IN_LIST])
            await self.send_message(refusal)
            return
        await super().handle_subscribe(message)


class TrustedWS(BaseGraphQLWSHandler[Context, None]):
    view: "SubscriptionsOverWebSocket"

    async def handle_start(self, message: StartMessage) -> None:
        if untrusted(self.context, message["payload"], self.view.trusted):
            await self.send_message(Error(type="error", id=message["id"], payload=NOT_IN_LIST))
            return
        await super().handle_start(message)


class SubscriptionsOverWebSocket(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = TrustedTransportWS
    graphql_ws_handler_class = TrustedWS

    def __init__(self, schema: Any, settings: Settings, manifest: Mapping[str, str]) -> None:
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
        # in trusted mode, the documents that may run (sent in full: Strawberry's handlers
        # take no hash)
        trusted_mode = settings.persisted_mode == "trusted"
        self.trusted = frozenset(manifest.values()) if trusted_mode else None

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
        assert context.writer is not None
        trusted = from_gateway(params, self.settings)
        ip = params.get(self.settings.client_ip_header) if trusted else context.viewer.client_ip
        try:
            key = presented_key(params)
            context.viewer = await viewer_for_key(context.writer, key, ip, trusted)
        except Unauthenticated:
            raise ConnectionRejectionError() from None
        return cast(UnsetType, UNSET)


def headers_of(params: Mapping[str, object]) -> dict[str, str]:
    # a gateway forwards absent headers as empty strings
    headers = {
        name.lower(): value for name, value in params.items() if isinstance(value, str) and value
    }
    if "apikey" in headers:
        headers.setdefault("x-api-key", headers["apikey"])
    return headers
