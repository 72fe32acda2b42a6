"""Transport conformance: one body of documents over HTTP, graphql-transport-ws, legacy
graphql-ws and Server-Sent Events gets the same errors, with the same codes and masking,
in development and in production mode (subscriptions where only subscriptions travel).

Each transport is spoken by a real client to a real server (Hypercorn on a free port): httpx
for HTTP and SSE, the `websockets` library for both WebSocket protocols."""

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
import orjson
import pytest
from graphql import GraphQLSchema, get_operation_ast, parse
from sqlalchemy import text
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from db.engine import create_engine
from graph.app import create_app
from graph.cli.serving import hypercorn_config
from graph.pipeline.cost import CostModel, directives_in
from graph.pipeline.persisted import sha256
from graph.services import services_of
from graph.settings import Settings, Tier
from resolvers.subscriptions import to_ingest_cursor
from schema.schema import build_schema, sdl
from tests.conftest import new_api_key
from tests.servers import threaded

SECRET = "dsn=postgresql://u:pw@db"
TIERS = {
    "anonymous": Tier(ceiling=1_000, capacity=1_000_000, restore_rate=1_000_000),
    "free": Tier(ceiling=100, capacity=60, restore_rate=1),  # the replay test's budget
}
TRANSPORTS = ("http", "graphql-transport-ws", "graphql-ws", "sse")
STREAM = {"accept": "text/event-stream"}
ERRORS_WAIT = 20.0


def raising(*_: Any, **__: Any) -> Any:
    raise RuntimeError(f"the resolver failed: {SECRET}")


def make_title_raise(schema: GraphQLSchema) -> None:
    """A test-only resolver: `Filing.title` raises an unexpected error (not in any shipped
    schema; set on this test's own app, before its first request)."""
    filing = schema.type_map["Filing"]
    filing.fields["title"].resolve = raising  # type: ignore[attr-defined]


@dataclass
class Server:
    base: str
    app: Starlette

    @property
    def ws(self) -> str:
        return self.base.replace("http://", "ws://") + "/graphql"


def sequences(database_url: str) -> tuple[int, int]:
    async def read() -> tuple[int, int]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                row = (
                    await conn.execute(text("SELECT min(ingest_seq), max(ingest_seq) FROM filings"))
                ).one()
                return int(row[0]), int(row[1])
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.fixture(scope="module", params=["development", "production"])
def server(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Server]:
    # messages of up to 4 MB: the huge document's is refused by its parsing charge, not its size
    app = create_app(settings.replace(env=request.param, tiers=TIERS, max_body_bytes=4_000_000))
    with threaded(app, "/health/live") as base:
        make_title_raise(services_of(app).pipeline.schema)
        yield Server(base, app)


@pytest.fixture(scope="module")
def replay_since(database_url: str) -> str:
    """The cursor before the newest filing: a subscription after it replays exactly one."""
    _, newest = sequences(database_url)
    return to_ingest_cursor(newest - 1)


# the four clients: each sends one operation and returns the errors of its first answer


def over_http(server: Server, body: dict[str, Any], headers: dict[str, str]) -> list[Any]:
    answer = httpx.post(f"{server.base}/graphql", json=body, headers=headers, timeout=30)
    return list(answer.json().get("errors") or [])


def first_sse_payload(server: Server, body: dict[str, Any], headers: dict[str, str]) -> Any:
    with httpx.stream(
        "POST", f"{server.base}/graphql", json=body, headers={**STREAM, **headers}, timeout=30
    ) as answer:
        if not answer.headers["content-type"].startswith("text/event-stream"):
            answer.read()
            return answer.json()
        for line in answer.iter_lines():
            if line.startswith("data: ") and line != "data: ":
                return orjson.loads(line.removeprefix("data: "))
    raise AssertionError("the stream ended without an event")


def over_sse(server: Server, body: dict[str, Any], headers: dict[str, str]) -> list[Any]:
    return list(first_sse_payload(server, body, headers).get("errors") or [])


@contextmanager
def ws_connected(
    server: Server, protocol: str, params: dict[str, Any]
) -> Iterator[ClientConnection]:
    with connect(server.ws, subprotocols=[protocol], max_size=None) as ws:  # type: ignore[list-item]
        ws.send(orjson.dumps({"type": "connection_init", "payload": params}).decode())
        assert receive(ws)["type"] == "connection_ack"
        yield ws


def receive(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = orjson.loads(ws.recv(timeout=ERRORS_WAIT))
        if message["type"] != "ka":  # legacy graphql-ws keep-alives
            return message


def key_params(headers: dict[str, str]) -> dict[str, Any]:
    return {"authorization": headers["authorization"]} if "authorization" in headers else {}


def first_ws_message(
    server: Server, protocol: str, body: dict[str, Any], headers: dict[str, str]
) -> dict[str, Any]:
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    with ws_connected(server, protocol, key_params(headers)) as ws:
        ws.send(orjson.dumps({"id": "1", "type": start, "payload": body}).decode())
        return receive(ws)


def over_ws(
    protocol: str, server: Server, body: dict[str, Any], headers: dict[str, str]
) -> list[Any]:
    message = first_ws_message(server, protocol, body, headers)
    if message["type"] == "error":  # before execution
        payload = message["payload"]
        return payload if isinstance(payload, list) else [payload]
    assert message["type"] in ("next", "data"), message
    return list(message["payload"].get("errors") or [])


Client = Callable[[Server, dict[str, Any], dict[str, str]], list[Any]]
CLIENTS: dict[str, Client] = {
    "http": over_http,
    "graphql-transport-ws": lambda *a: over_ws("graphql-transport-ws", *a),
    "graphql-ws": lambda *a: over_ws("graphql-ws", *a),
    "sse": over_sse,
}


@dataclass(frozen=True)
class Case:
    """One document; `query` is what HTTP gets when the document is a subscription."""

    subscription: str
    code: str | None  # of the first error; None: no error
    query: str | None = None
    variables: dict[str, Any] | None = None

    def body(self, transport: str) -> dict[str, Any]:
        document = self.query if transport == "http" and self.query else self.subscription
        body: dict[str, Any] = {"query": document}
        if self.variables is not None:
            body["variables"] = self.variables
        return body


ALERT = "subscription { filingAdded { accessionNumber } }"
DEEP = (
    "subscription { filingAdded { company { filings { nodes { company { filings { nodes { "
    "company { filings { nodes { company { filings { nodes { company { filings { nodes { "
    "accessionNumber } } } } } } } } } } } } } } } } }"
)
COSTLY = "filings(first: 100) { nodes { metrics { name } company { filings(first: 100) { nodes { formType } } } } }"  # noqa: E501
CASES = {
    "syntax": Case("subscription { filingAdded {", "GRAPHQL_PARSE_FAILED"),
    "invalid": Case("subscription { filingAdded { accessionNumbr } }", "GRAPHQL_VALIDATION_FAILED"),
    "tokens": Case(
        "subscription { filingAdded { " + "__typename " * 6000 + "} }", "QUERY_LIMIT_EXCEEDED"
    ),
    "characters": Case(
        "subscription { filingAdded { accessionNumber } }\n#" + "x" * 120_000,
        "QUERY_LIMIT_EXCEEDED",
    ),
    "depth": Case(DEEP, "QUERY_LIMIT_EXCEEDED"),
    # over a limit and invalid too: the limit's one error, no validation errors after it
    "depth and invalid": Case(
        DEEP.replace("accessionNumber", " ".join(f"x{i}" for i in range(25))),
        "QUERY_LIMIT_EXCEEDED",
    ),
    "root fields and invalid": Case(
        "subscription { " + " ".join(f"r{i}: filingAdded {{ nope }}" for i in range(21)) + " }",
        "QUERY_LIMIT_EXCEEDED",
    ),
    "aliases": Case(
        "subscription { filingAdded { "
        + " ".join(f"a{i}: accessionNumber" for i in range(31))
        + " } }",
        "QUERY_LIMIT_EXCEEDED",
    ),
    "field occurrences": Case(
        "subscription { filingAdded { " + "formType " * 21 + "} }", "QUERY_LIMIT_EXCEEDED"
    ),
    "fragment spreads": Case(
        "subscription { filingAdded { " + "...F " * 101 + "} } fragment F on Filing { title }",
        "QUERY_LIMIT_EXCEEDED",
    ),
    "directives": Case(
        "subscription { filingAdded { " + "title @include(if: true) " * 51 + "} }",
        "QUERY_LIMIT_EXCEEDED",
    ),
    "introspection": Case("{ __schema { queryType { name } } }", None),  # by mode: below
    "over budget": Case(
        "subscription { filingAdded { company { " + COSTLY + " } } }",
        "COST_LIMIT_EXCEEDED",
        query='{ company(ticker: "AAPL") { ' + COSTLY + " } }",
    ),
    "nul in a variable": Case(
        "subscription($since: String) { filingAdded(since: $since) { accessionNumber } }",
        "BAD_USER_INPUT",
        query="query($t: String!) { company(ticker: $t) { name } }",
        variables={"since": "a\x00b", "t": "a\x00b"},
    ),
    # collected with the defaults by the cost estimate, a directive's missing variable was a 500
    "directive's variable missing": Case(
        "subscription($s: Boolean!) { filingAdded { accessionNumber title @skip(if: $s) } }",
        "BAD_USER_INPUT",
        query='query($s: Boolean!) { company(ticker: "AAPL") { name @skip(if: $s) } }',
        variables={},
    ),
}


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("case", CASES, ids=str)
def test_the_same_document_gets_the_same_error(server: Server, transport: str, case: str) -> None:
    production = services_of(server.app).settings.production
    document: Case = CASES[case]
    if case == "introspection":  # refused in production, and then only
        code: str | None = "GRAPHQL_VALIDATION_FAILED" if production else "BAD_REQUEST"
        if transport == "http":  # a query: answered in development
            code = "GRAPHQL_VALIDATION_FAILED" if production else None
        document = Case(document.subscription, code)
    errors = CLIENTS[transport](server, document.body(transport), {})
    if document.code is None:
        assert not errors, errors
        return
    assert errors, f"{case} over {transport}: no error"
    assert errors[0]["extensions"]["code"] == document.code, errors
    if document.code == "QUERY_LIMIT_EXCEEDED":  # refused before validation: alone
        assert len(errors) == 1, errors
    if case == "invalid":  # suggestions only in development, everywhere
        assert ("Did you mean" in errors[0]["message"]) is not production, errors[0]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_an_unexpected_error_is_masked_everywhere(
    server: Server, transport: str, replay_since: str
) -> None:
    body = Case(
        "subscription($since: String) { filingAdded(since: $since) { accessionNumber title } }",
        None,
        query="{ filings(first: 1) { nodes { accessionNumber title } } }",
        variables={"since": replay_since},
    ).body(transport)
    errors = CLIENTS[transport](server, body, {})
    assert [error["extensions"]["code"] for error in errors] == ["INTERNAL_SERVER_ERROR"]
    assert errors[0]["message"] == "Internal server error."
    assert "pw@" not in orjson.dumps(errors).decode()


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_persisted_hash_names_the_document_everywhere(
    server: Server, transport: str, replay_since: str
) -> None:
    document = "subscription($since: String) { filingAdded(since: $since) { formType } }"
    if transport == "http":
        document = "{ filings(first: 1) { nodes { formType } } }"
    mode = services_of(server.app).settings.env
    document += f" # {transport} {mode}"  # a hash that no other test has registered
    hashed = {"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}}
    variables = {"since": replay_since}
    unknown = CLIENTS[transport](server, {"extensions": hashed, "variables": variables}, {})
    assert unknown[0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    registered = {"query": document, "extensions": hashed, "variables": variables}
    assert CLIENTS[transport](server, registered, {}) == []
    assert CLIENTS[transport](server, {"extensions": hashed, "variables": variables}, {}) == []


STREAMS = TRANSPORTS[1:]


@pytest.mark.parametrize("transport", STREAMS)
def test_since_past_the_newest_filing_is_refused(server: Server, transport: str) -> None:
    body = Case(
        "subscription($since: String) { filingAdded(since: $since) { accessionNumber } }",
        None,
        variables={"since": to_ingest_cursor(10**39)},  # a 40-digit sequence
    ).body(transport)
    errors = CLIENTS[transport](server, body, {})
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT", errors


def test_a_last_event_id_past_the_newest_filing_is_refused(server: Server) -> None:
    past = {"last-event-id": to_ingest_cursor(10**39)}
    errors = over_sse(server, {"query": ALERT}, past)
    assert errors[0]["extensions"] == {"code": "BAD_USER_INPUT", "argument": "since"}


BAD_KEYS: list[Any] = [12345, "", "Bearer cg_not_a_key", "Basic abc", None, ["cg_x"]]


@pytest.mark.parametrize("protocol", ["graphql-transport-ws", "graphql-ws"])
def test_a_bad_key_closes_the_connection_with_4403(
    server: Server, protocol: str, database_url: str
) -> None:
    for key in BAD_KEYS:
        with connect(server.ws, subprotocols=[protocol]) as ws:  # type: ignore[list-item]
            init = {"type": "connection_init", "payload": {"authorization": key}}
            ws.send(orjson.dumps(init).decode())
            with pytest.raises(ConnectionClosed) as closed:
                receive(ws)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403, key
    good = new_api_key(database_url)
    with ws_connected(server, protocol, {"authorization": f"Bearer {good}"}):
        pass
    with ws_connected(server, protocol, {}):  # no key: anonymous
        pass


@pytest.mark.parametrize("transport", STREAMS)
def test_a_replay_is_charged_per_event_and_bounded_by_the_budget(
    server: Server, transport: str, database_url: str
) -> None:
    """The `free` tier here holds 60 points, restored at 1 a second; each event costs what
    the cost model says its data costs: a replay of the whole history ends with RATE_LIMITED
    after about 60 points' worth of events."""
    oldest, newest = sequences(database_url)
    assert newest - oldest > 100, "the seed holds enough filings to replay"
    key = new_api_key(database_url, "free")
    body = {
        "query": "subscription($since: String) { filingAdded(since: $since) "
        "{ accessionNumber company { name } } }",
        "variables": {"since": to_ingest_cursor(oldest - 1)},
    }
    headers = {"authorization": f"Bearer {key}"}
    started = time.monotonic()
    payloads = every_payload(server, transport, body, headers)
    elapsed = time.monotonic() - started
    *delivered, last = payloads
    assert all("errors" not in payload for payload in delivered)
    assert last["errors"][0]["extensions"]["code"] == "RATE_LIMITED", last
    per_event = event_cost(body, delivered[0]["data"])
    paid = len(delivered) * per_event  # the deposit is refunded when the replay ends
    assert 60 - 2 * per_event <= paid <= 60 + elapsed + per_event, (len(delivered), per_event)


def event_cost(body: dict[str, Any], data: dict[str, Any]) -> int:
    """What one event's data costs under the server's (default) cost model."""
    schema = build_schema()
    settings = Settings()
    model = CostModel(schema._schema, directives_in(sdl(schema)), fetch_cost=settings.fetch_cost)
    document = parse(body["query"])
    operation = get_operation_ast(document)
    assert operation is not None
    return model.costing(document, operation, body["variables"]).actual(data)


def every_payload(
    server: Server, transport: str, body: dict[str, Any], headers: dict[str, str]
) -> list[dict[str, Any]]:
    """Every payload of a subscription that ends by itself."""
    if transport == "sse":
        answer = httpx.post(
            f"{server.base}/graphql", json=body, headers={**STREAM, **headers}, timeout=60
        )
        assert answer.text.endswith("event: complete\ndata: \n\n")
        return [
            orjson.loads(line.removeprefix("data: "))
            for line in answer.text.splitlines()
            if line.startswith("data: ") and line != "data: "
        ]
    start = "subscribe" if transport == "graphql-transport-ws" else "start"
    payloads = []
    with ws_connected(server, transport, key_params(headers)) as ws:
        ws.send(orjson.dumps({"id": "1", "type": start, "payload": body}).decode())
        while (message := receive(ws))["type"] != "complete":
            payloads.append(message["payload"])
    return payloads


def test_a_huge_document_is_refused_before_parsing_while_the_server_answers(
    server: Server,
) -> None:
    """1.9 MiB of fragment spreads over WebSocket: refused before the parser sees it (by
    the charge for parsing it, 1 point per 1,000 characters, over the tier's ceiling; under
    the default `CORPGRAPH_MAX_BODY_BYTES` the connection is closed with 1009 first), while
    /health/live answers within 100 ms all along."""
    spreads = "...F " * 400_000
    document = "subscription { filingAdded { " + spreads + "} } fragment F on Filing { title }"
    assert len(document) > 1_900_000
    stop = threading.Event()
    slowest = [0.0]

    def probe() -> None:
        with httpx.Client() as client:
            while not stop.is_set():
                began = time.perf_counter()
                assert client.get(f"{server.base}/health/live", timeout=5).status_code == 200
                slowest[0] = max(slowest[0], time.perf_counter() - began)
                time.sleep(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        errors = over_ws("graphql-transport-ws", server, {"query": document}, {})
    finally:
        stop.set()
        prober.join(10)
    assert errors[0]["extensions"]["code"] == "COST_LIMIT_EXCEEDED", errors
    assert slowest[0] < 0.1, slowest[0]


def test_a_websocket_message_is_bounded_like_a_request_body(settings: Settings) -> None:
    config = hypercorn_config(settings.replace(max_body_bytes=2048))
    assert config.websocket_max_message_size == 2048


@pytest.fixture(scope="module")
def limited(settings: Settings) -> Iterator[Server]:
    """A server where a client may hold 2 connections and run 3 subscriptions."""
    app = create_app(settings.replace(max_connections_per_client=2, max_subscriptions_per_client=3))
    with threaded(app, "/health/live") as base:
        yield Server(base, app)


def sse_status(server: Server, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    """The status of an SSE request, and its JSON body when it is not a stream."""
    with httpx.stream(
        "POST", f"{server.base}/graphql", json=body, headers=STREAM, timeout=30
    ) as answer:
        if answer.headers["content-type"].startswith("text/event-stream"):
            return answer.status_code, None
        answer.read()
        return answer.status_code, answer.json()


def subscribe_to(ws: ClientConnection, protocol: str, id: str) -> None:
    start = "subscribe" if protocol == "graphql-transport-ws" else "start"
    ws.send(orjson.dumps({"id": id, "type": start, "payload": {"query": ALERT}}).decode())


def test_connections_per_client_are_limited(limited: Server) -> None:
    with (
        ws_connected(limited, "graphql-transport-ws", {}),
        ws_connected(limited, "graphql-ws", {}) as second,
    ):
        for protocol in ("graphql-transport-ws", "graphql-ws"):
            with connect(limited.ws, subprotocols=[protocol]) as third:  # type: ignore[list-item]
                third.send(orjson.dumps({"type": "connection_init", "payload": {}}).decode())
                with pytest.raises(ConnectionClosed) as closed:
                    receive(third)
                assert closed.value.rcvd is not None
                assert closed.value.rcvd.code == 4429
                assert "at most 2" in closed.value.rcvd.reason
        status, body = sse_status(limited, {"query": ALERT})
        assert status == 429 and body is not None
        assert body["errors"][0]["extensions"] == {
            "code": "RATE_LIMITED",
            "limit": "connections",
            "maximum": 2,
        }
        second.close()
        time.sleep(0.5)  # the server sees the close
        assert sse_status(limited, {"query": ALERT})[0] == 200  # room again


def test_subscriptions_per_client_are_limited_across_connections(limited: Server) -> None:
    with (
        ws_connected(limited, "graphql-transport-ws", {}) as first,
        ws_connected(limited, "graphql-ws", {}) as second,
    ):
        subscribe_to(first, "graphql-transport-ws", "1")
        subscribe_to(first, "graphql-transport-ws", "2")
        subscribe_to(second, "graphql-ws", "1")
        time.sleep(0.5)  # nothing acknowledges a subscription: give them a moment
        subscribe_to(second, "graphql-ws", "2")
        refusal = receive(second)
        assert (refusal["type"], refusal["id"]) == ("error", "2"), refusal
        assert refusal["payload"]["extensions"]["limit"] == "subscriptions"
        assert refusal["payload"]["extensions"]["code"] == "RATE_LIMITED"
        first.send(orjson.dumps({"id": "1", "type": "complete"}).decode())
        time.sleep(0.5)
        subscribe_to(second, "graphql-ws", "3")  # room again
        subscribe_to(first, "graphql-transport-ws", "4")
        refusal = receive(first)
        assert (refusal["type"], refusal["id"]) == ("error", "4"), refusal
        assert refusal["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
