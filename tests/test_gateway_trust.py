"""With a gateway secret set, `_service` and `_entities` answer the gateway only, and only the
gateway may name the client's IP."""

from collections.abc import Iterator

import pytest
from starlette.requests import HTTPConnection
from starlette.testclient import TestClient

from graph.app import create_app
from graph.pipeline.gateway import client_ip, from_gateway
from graph.settings import Settings

SECRET = "s3cret-shared-with-the-gateway"
GATEWAY = {"x-corpgraph-gateway-secret": SECRET}
REPRESENTATIONS = {"r": [{"__typename": "Company", "ticker": "AAPL"}]}


@pytest.fixture(scope="module")
def guarded(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.replace(gateway_secret=SECRET))) as client:
        yield client


def ask(client: TestClient, query: str, headers: dict[str, str] | None = None) -> dict[str, object]:
    body = {"query": query, "variables": REPRESENTATIONS}
    result: dict[str, object] = client.post("/graphql", json=body, headers=headers or {}).json()
    return result


@pytest.mark.parametrize(
    "query",
    [
        "{ _service { sdl } }",
        "query($r: [_Any!]!) { _entities(representations: $r) { __typename } }",
        "query($r: [_Any!]!) { e: _entities(representations: $r) { __typename } }",
        "query($r: [_Any!]!) { ...F }"
        " fragment F on Query { _entities(representations: $r) { __typename } }",
        '{ company(ticker: "AAPL") { name } ... on Query { _service { sdl } } }',
    ],
)
def test_gateway_fields_need_the_secret(guarded: TestClient, query: str) -> None:
    for headers in (None, {"x-corpgraph-gateway-secret": "wrong"}):
        refused = ask(guarded, query, headers)
        assert "data" not in refused
        assert [e["extensions"]["code"] for e in refused["errors"]] == ["FORBIDDEN"]  # type: ignore[attr-defined]
    assert "errors" not in ask(guarded, query, GATEWAY)


def test_other_fields_need_no_secret(guarded: TestClient) -> None:
    body = ask(guarded, '{ company(ticker: "AAPL") { name } }')
    assert "errors" not in body and body["data"] == {"company": {"name": "Apple Inc."}}


def test_without_a_secret_federation_fields_are_open(client: TestClient) -> None:
    assert "errors" not in ask(client, "{ _service { sdl } }")


def connection(headers: dict[str, str], peer: str = "203.0.113.7") -> HTTPConnection:
    raw = [(name.encode(), value.encode()) for name, value in headers.items()]
    return HTTPConnection({"type": "http", "headers": raw, "client": (peer, 5555)})


def test_only_the_gateway_names_the_client_ip(settings: Settings) -> None:
    guarded = settings.replace(gateway_secret=SECRET)
    forged = connection({"x-client-ip": "10.9.9.9"})
    assert not from_gateway(forged.headers, guarded)
    assert client_ip(forged, guarded, trusted=False) == "203.0.113.7"
    relayed = connection({**GATEWAY, "x-client-ip": "198.51.100.4, 10.0.0.1"})
    assert from_gateway(relayed.headers, guarded)
    assert client_ip(relayed, guarded, trusted=True) == "198.51.100.4"
    assert not from_gateway(relayed.headers, settings)  # no secret configured: nobody is trusted
