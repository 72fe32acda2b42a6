"""A NUL character in any text argument or variable is BAD_USER_INPUT naming it, on every
transport, before anything runs: PostgreSQL's text cannot hold one. The arguments are
generated from the schema, so a new text argument is covered without being listed here."""

import json
from typing import Any

import pytest
from graphql import GraphQLList, GraphQLNonNull, GraphQLObjectType, GraphQLScalarType
from starlette.testclient import TestClient

from tests.conftest import StatementLog
from tests.test_list_sizes import SCHEMA, call, literal, required_arguments, routes

NUL_TEXT = "AA\x00PL"


def text_type(type_: Any) -> str | None:
    """The type as written (`String`, `[String!]`, ...) for arguments that take text."""
    named = _named(type_)
    if isinstance(named, GraphQLScalarType) and named.name in ("String", "ID"):
        return str(type_)
    return None


def text_arguments() -> list[tuple[str, str, str, str]]:
    """(type, field, argument, its type) for every text argument of a readable field."""
    found = []
    reachable = routes()
    for type_name in sorted(reachable):
        parent = SCHEMA.get_type(type_name)
        assert isinstance(parent, GraphQLObjectType)
        for field_name, field in sorted(parent.fields.items()):
            for argument, definition in sorted(field.args.items()):
                kind = text_type(definition.type)
                if kind is not None and not field_name.startswith("_"):
                    found.append((type_name, field_name, argument, kind))
    return found


def document_for(type_name: str, field_name: str, argument: str, kind: str) -> str:
    parent = SCHEMA.get_type(type_name)
    assert isinstance(parent, GraphQLObjectType)
    field = parent.fields[field_name]
    arguments = [f"{argument}: $text", *required_arguments(field.args, skip=argument)]
    selection = (
        f"{call(field_name, arguments)} {{ __typename }}"
        if not isinstance(_named(field.type), GraphQLScalarType)
        else call(field_name, arguments)
    )
    route = routes()[type_name].replace("{}", f"{{ {selection} }}")
    return f"query($text: {kind}) {route}"


def _named(type_: Any) -> Any:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


CASES = text_arguments()


def test_every_text_argument_is_covered() -> None:
    assert len(CASES) >= 12
    assert ("Query", "company", "ticker", "String") in {
        (t, f, a, k.strip("!")) for t, f, a, k in CASES
    }


@pytest.mark.parametrize(("type_name", "field_name", "argument", "kind"), CASES)
def test_nul_in_a_variable_is_refused_by_name(
    client: TestClient, sql: StatementLog, type_name: str, field_name: str, argument: str, kind: str
) -> None:
    document = document_for(type_name, field_name, argument, kind)
    value: Any = [NUL_TEXT] if kind.startswith("[") else NUL_TEXT
    sql.clear()
    body = client.post("/graphql", json={"query": document, "variables": {"text": value}}).json()
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "variable": "text"}, body
    assert "data" not in body
    assert len(sql) == 0, sql.statements


@pytest.mark.parametrize(("type_name", "field_name", "argument", "kind"), CASES)
def test_nul_in_a_literal_is_refused_by_name(
    client: TestClient, type_name: str, field_name: str, argument: str, kind: str
) -> None:
    document = document_for(type_name, field_name, argument, kind)
    written = literal(SCHEMA.get_type("String")).replace("AAPL", "AA\\u0000PL")  # type: ignore[arg-type]
    if kind.startswith("["):
        written = f"[{written}]"
    document = document.replace(f"query($text: {kind}) ", "").replace("$text", written)
    body = client.post("/graphql", json={"query": document}).json()
    codes = {(e["extensions"]["code"], e["extensions"].get("argument")) for e in body["errors"]}
    assert ("BAD_USER_INPUT", argument) in codes, body


def test_nul_over_websocket_is_refused(client: TestClient) -> None:
    query = "subscription($t: [String!]) { filingAdded(tickers: $t) { accessionNumber } }"
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {}})
        assert ws.receive_json()["type"] == "connection_ack"
        payload = {"query": query, "variables": {"t": [NUL_TEXT]}}
        ws.send_json({"id": "1", "type": "subscribe", "payload": payload})
        message = ws.receive_json()
        assert message["type"] == "error" and message["id"] == "1", message
        assert message["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        literal_query = 'subscription { filingAdded(tickers: ["A\\u0000"]) { accessionNumber } }'
        ws.send_json({"id": "2", "type": "subscribe", "payload": {"query": literal_query}})
        message = ws.receive_json()
        assert message["id"] == "2", message
        assert "BAD_USER_INPUT" in str(message["payload"]), message


LONE_SURROGATE = '"\\ud800"'  # JSON's escape of half a UTF-16 pair: no character at all


@pytest.mark.parametrize(
    "message",
    [
        '{"type": "connection_init", "payload": {"authorization": "Bearer cg_\\ud800"}}',
        '{"type": "connection_init", "payload": {"x-api-key": "cg_\\udfffabc"}}',
        '{"type": "connection_init", "payload": {"note": ' + LONE_SURROGATE + "}}",
    ],
)
def test_a_lone_surrogate_is_not_json_over_websocket(client: TestClient, message: str) -> None:
    """As over HTTP (400, not valid JSON): it had reached Redis and PostgreSQL, which cannot
    encode it (an internal error; close 1011 when it was the key)."""
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_text(message)
        closed = ws.receive()
        assert closed == {
            "type": "websocket.close",
            "code": 4400,
            "reason": "WebSocket message must be valid JSON",
        }, closed


def with_lone_surrogate(message: dict[str, Any]) -> str:
    """`message` as JSON, each "SURROGATE" in it written as a lone surrogate."""
    return json.dumps(message).replace('"SURROGATE"', LONE_SURROGATE)


def test_a_lone_surrogate_in_subscription_variables_closes_the_connection(
    client: TestClient,
) -> None:
    query = "subscription($t: [String!]) { filingAdded(tickers: $t) { accessionNumber } }"
    payload = {"query": query, "variables": {"t": ["SURROGATE"]}}
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_text(with_lone_surrogate({"id": "1", "type": "subscribe", "payload": payload}))
        assert ws.receive()["code"] == 4400
    body = with_lone_surrogate(payload)
    answer = client.post("/graphql", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
