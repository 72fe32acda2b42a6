"""The WebSocket edge in-process: limits per connection and per document."""

import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from graph.app import create_app
from graph.pipeline.persisted import sha256
from graph.settings import Settings
from tests.conftest import new_api_key

ALERT = "subscription { filingAdded { accessionNumber } }"


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.replace(max_subscriptions=2, max_depth=4))) as client:
        yield client


def connected(client: TestClient) -> Any:
    return client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"])


def init(ws: WebSocketTestSession) -> None:
    ws.send_json({"type": "connection_init", "payload": {}})
    assert ws.receive_json() == {"type": "connection_ack"}


def subscribe(ws: WebSocketTestSession, id: str, query: str = ALERT) -> None:
    ws.send_json({"id": id, "type": "subscribe", "payload": {"query": query}})


def refused(ws: WebSocketTestSession, id: str) -> dict[str, Any]:
    """The error a subscription ended with (a `next` carrying it, then `complete`)."""
    message = ws.receive_json()
    assert (message["id"], message["type"]) == (id, "next"), message
    assert ws.receive_json() == {"id": id, "type": "complete"}
    (error,) = message["payload"]["errors"]
    result: dict[str, Any] = error
    return result


SUBSCRIPTIONS_LIMIT = {"code": "QUERY_LIMIT_EXCEEDED", "limit": "subscriptions"}


def test_subscriptions_per_connection_are_limited(client: TestClient) -> None:
    with connected(client) as ws:
        init(ws)
        subscribe(ws, "1")
        subscribe(ws, "2")
        time.sleep(0.5)  # nothing acknowledges a subscribe or a complete: give them a moment
        subscribe(ws, "3")
        assert refused(ws, "3")["extensions"] == SUBSCRIPTIONS_LIMIT
        ws.send_json({"id": "1", "type": "complete"})
        time.sleep(0.5)
        subscribe(ws, "4")  # room again
        subscribe(ws, "5")
        assert refused(ws, "5")["extensions"] == SUBSCRIPTIONS_LIMIT
    with connected(client) as other:  # the limit is per connection
        init(other)
        subscribe(other, "1")
        subscribe(other, "2")
        subscribe(other, "3")
        assert refused(other, "3")["extensions"] == SUBSCRIPTIONS_LIMIT


def test_documents_over_websocket_meet_the_limits(client: TestClient) -> None:
    deep = "subscription { filingAdded { company { filings { nodes { company { name } } } } } }"
    with connected(client) as ws:
        init(ws)
        subscribe(ws, "deep", deep)
        refused = ws.receive_json()
        assert refused["id"] == "deep" and "depth" in str(refused["payload"]).lower(), refused


def test_a_page_from_another_origin_is_refused(settings: Settings) -> None:
    """Strawberry's own origin check, fed the CORS allowlist."""
    allowlist = settings.replace(cors_origins=["https://app.example.com"])
    with TestClient(create_app(allowlist)) as client:
        protocol = {"sec-websocket-protocol": "graphql-transport-ws"}  # headers= replaces it
        hostile = {"origin": "https://evil.example.net", **protocol}
        with (
            pytest.raises(WebSocketDisconnect) as refused,
            client.websocket_connect("/graphql", ["graphql-transport-ws"], headers=hostile),
        ):
            pass
        assert refused.value.code == 1008  # the handshake is refused (HTTP 403)
        friendly = {"origin": "https://app.example.com", **protocol}
        with client.websocket_connect("/graphql", ["graphql-transport-ws"], headers=friendly) as ws:
            init(ws)


def test_the_legacy_graphql_ws_protocol_delivers_alerts(
    client: TestClient, database_url: str
) -> None:
    writer = new_api_key(database_url, "pro", ("filings:write",))
    ingest = """mutation($input: IngestFilingInput!) { ingestFiling(input: $input) { title } }"""
    filing = {"ticker": "MSFT", "accessionNumber": "0000789019-26-600001", "formType": "8-K",
              "filedAt": "2026-11-04T13:00:00Z", "title": "Legacy"}  # fmt: skip
    with client.websocket_connect("/graphql", ["graphql-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {"Authorization": f"Bearer {writer}"}})
        assert ws.receive_json()["type"] == "connection_ack"
        query = 'subscription { filingAdded(tickers: ["MSFT"]) { accessionNumber title } }'
        ws.send_json({"type": "start", "id": "1", "payload": {"query": query}})
        time.sleep(0.5)  # the subscription registers
        body = {"query": ingest, "variables": {"input": filing}}
        stored = client.post("/graphql", json=body, headers={"authorization": f"Bearer {writer}"})
        assert "errors" not in stored.json(), stored.json()
        message = ws.receive_json()
        while message["type"] == "ka":  # keep-alives
            message = ws.receive_json()
        assert message == {"type": "data", "id": "1", "payload": {"data": {"filingAdded": {
            "accessionNumber": "0000789019-26-600001", "title": "Legacy"}}}}  # fmt: skip
        ws.send_json({"type": "stop", "id": "1"})


def message_for(ws: WebSocketTestSession, id: str) -> dict[str, Any]:
    """The next message for subscription `id` (those still coming for others are skipped)."""
    while (message := ws.receive_json()).get("id") != id:
        pass
    result: dict[str, Any] = message
    return result


def first_event(ws: WebSocketTestSession, id: str) -> str:
    """The first filing subscription `id` replays; then it is completed."""
    message = message_for(ws, id)
    assert message["type"] == "next", message
    ws.send_json({"id": id, "type": "complete"})
    accession: str = message["payload"]["data"]["filingAdded"]["accessionNumber"]
    return accession


def error_code(ws: WebSocketTestSession, id: str) -> str:
    message = message_for(ws, id)
    assert message["type"] == "error", message
    code: str = message["payload"][0]["extensions"]["code"]
    return code


def test_persisted_subscriptions_over_websocket(client: TestClient) -> None:
    """APQ (registered over the WebSocket itself) and `documentId` name the document; a hash
    that does not match and a payload that is not an object are refused."""
    replay = "subscription($since: String) { filingAdded(since: $since) { accessionNumber } }"
    oldest = client.post(
        "/graphql", json={"query": "{ filings(last: 1) { nodes { ingestCursor } } }"}
    ).json()["data"]["filings"]["nodes"][0]["ingestCursor"]
    hash_only = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256(replay)}}}
    variables = {"variables": {"since": oldest}}
    with connected(client) as ws:
        init(ws)
        ws.send_json({"id": "1", "type": "subscribe", "payload": {**hash_only, **variables}})
        assert error_code(ws, "1") == "PERSISTED_QUERY_NOT_FOUND"
        sent = {"query": replay, **hash_only, **variables}
        ws.send_json({"id": "2", "type": "subscribe", "payload": sent})
        replayed = first_event(ws, "2")
        ws.send_json({"id": "3", "type": "subscribe", "payload": {**hash_only, **variables}})
        assert first_event(ws, "3") == replayed
        by_id = {"documentId": f"sha256:{sha256(replay)}", **variables}
        ws.send_json({"id": "4", "type": "subscribe", "payload": by_id})
        assert first_event(ws, "4") == replayed
        wrong = {"query": ALERT, **hash_only}
        ws.send_json({"id": "5", "type": "subscribe", "payload": wrong})
        assert error_code(ws, "5") == "PERSISTED_QUERY_HASH_MISMATCH"
        ws.send_json({"id": "6", "type": "subscribe", "payload": ["not", "an", "object"]})
        assert error_code(ws, "6") == "BAD_REQUEST"


NOT_OBJECTS = ["[1, 2]", "5", '"text"', "null"]


@pytest.mark.parametrize("frame", NOT_OBJECTS)
def test_a_message_that_is_not_an_object_is_refused(client: TestClient, frame: str) -> None:
    """graphql-transport-ws closes with 4400; legacy graphql-ws ignores it, as any message that
    is not JSON. Strawberry's handlers had failed on each (close 1011, and a logged trace)."""
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_text(frame)
        assert ws.receive()["code"] == 4400
    with client.websocket_connect("/graphql", subprotocols=["graphql-ws"]) as ws:
        ws.send_text(frame)
        ws.send_json({"type": "connection_init"})
        assert ws.receive_json()["type"] == "connection_ack"


@pytest.mark.parametrize(
    "message",
    [
        {},
        {"type": 5},
        {"id": "1", "type": "start"},
        {"id": ["1"], "type": "start", "payload": {"query": ALERT}},
        {"type": "stop"},
    ],
)
def test_a_legacy_message_of_another_shape_closes_with_1002(
    client: TestClient, message: dict[str, Any]
) -> None:
    with client.websocket_connect("/graphql", subprotocols=["graphql-ws"]) as ws:
        ws.send_json({"type": "connection_init"})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json(message)
        closed = ws.receive()
        while closed.get("type") == "websocket.send":  # a keep-alive
            closed = ws.receive()
        assert (closed["type"], closed["code"]) == ("websocket.close", 1002), closed
