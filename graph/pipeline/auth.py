"""Who is asking: the API key of a request, resolved once at the edge into a `Viewer`."""

from collections.abc import Mapping

from starlette.requests import HTTPConnection

from db.apikeys import active_key
from db.reader import Reader
from graph.pipeline.gateway import client_ip, from_gateway
from graph.settings import Settings
from resolvers.context import Viewer


class Unauthenticated(Exception):
    """A key was presented but is malformed, unknown, expired or revoked: never downgraded."""


def presented_key(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, key = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise Unauthenticated("Authorization must be `Bearer <API key>`.")
        return key.strip()
    api_key = headers.get("x-api-key")
    return api_key.strip() if api_key is not None else None


async def viewer_for_key(
    db: Reader, key: str | None, client_ip: str | None, via_gateway: bool = False
) -> Viewer:
    if key is None:
        return Viewer(client_ip=client_ip, via_gateway=via_gateway)
    row = await active_key(db, key)
    if row is None:
        raise Unauthenticated("The API key is unknown, expired or revoked.")
    return Viewer(row.tier, frozenset(row.scopes), client_ip, row.id, via_gateway)


async def viewer_of(connection: HTTPConnection, db: Reader, settings: Settings) -> Viewer:
    trusted = from_gateway(connection.headers, settings)
    ip = client_ip(connection, settings, trusted)
    return await viewer_for_key(db, presented_key(connection.headers), ip, trusted)
