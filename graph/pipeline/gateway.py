"""Trust in the federation gateway: a shared secret header proves a request came through it.

With `CORPGRAPH_GATEWAY_SECRET` set, only such requests may use `_service` and `_entities`
(the gateway's own fields) and name the client's IP in a header; anyone else's header is
ignored and the socket's address counts.
"""

import hmac
from collections.abc import Mapping

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from starlette.requests import HTTPConnection

from graph.settings import Settings

GATEWAY_ONLY = frozenset({"_service", "_entities"})


def from_gateway(headers: Mapping[str, str], settings: Settings) -> bool:
    if settings.gateway_secret is None:
        return False
    presented = headers.get(settings.gateway_secret_header)
    expected = settings.gateway_secret.get_secret_value()
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())


def client_ip(connection: HTTPConnection, settings: Settings, trusted: bool) -> str | None:
    if trusted:
        forwarded = connection.headers.get(settings.client_ip_header, "").split(",")[0].strip()
        if forwarded:
            return forwarded
    return connection.client.host if connection.client else None


def root_field_names(document: DocumentNode, operation: OperationDefinitionNode) -> set[str]:
    """Field names selected at the root, through fragments and inline fragments."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    names: set[str] = set()
    seen: set[str] = set()
    pending: list[SelectionSetNode] = [operation.selection_set]
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FieldNode):
                names.add(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                pending.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                if (fragment := fragments.get(selection.name.value)) is not None:
                    pending.append(fragment.selection_set)
    return names
