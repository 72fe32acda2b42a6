"""Every misuse gets its documented code and HTTP status, never a 500 (DESIGN.md's table)."""

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient
from starlette.types import Message, Scope

from db.apikeys import create_key, revoke_key
from db.engine import create_engine
from graph.app import create_app
from graph.settings import Settings
from schema.node import to_global_id

pytestmark = pytest.mark.executors  # the HTTP answers are the same with both

MODERN = {"accept": "application/graphql-response+json"}
LEGACY = {"accept": "application/json"}


def codes(body: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in body["errors"]]


def post(client: TestClient, query: str, variables: Any = None, **headers: str) -> Any:
    return client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)


@pytest.mark.parametrize("first", [0, 101, -1])
@pytest.mark.parametrize(("accept", "status"), [(LEGACY, 200), (MODERN, 400)])
def test_page_size_out_of_range(
    client: TestClient, first: int, accept: dict[str, str], status: int
) -> None:
    response = post(
        client, "query($n: Int) { companies(first: $n) { totalCount } }", {"n": first}, **accept
    )
    assert response.status_code == status
    assert codes(response.json()) == ["BAD_USER_INPUT"]
    assert "between 1 and 100" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("cursor", ["not-a-cursor", "WyJmaWxpbmciLCJ4Il0", "", "%%%"])
def test_malformed_cursor(client: TestClient, cursor: str) -> None:
    response = post(
        client, "query($c: String) { companies(after: $c) { totalCount } }", {"c": cursor}
    )
    assert codes(response.json()) == ["BAD_USER_INPUT"]


def test_first_and_last_together_are_refused(client: TestClient) -> None:
    response = post(client, "{ companies(first: 2, last: 2) { totalCount } }")
    assert codes(response.json()) == ["BAD_USER_INPUT"]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b'[{"query": "{ __typename }"}]', "application/json", 400),
        (b'"a string"', "application/json", 400),
        (b'{"query": 42}', "application/json", 400),
        (b'{"query": "{ __typename }", "variables": [1]}', "application/json", 400),
        (b'{"query": "{ __typename }"}', "text/plain", 415),
        (b"query=%7B__typename%7D", "application/x-www-form-urlencoded", 415),
    ],
)
def test_bad_envelopes(client: TestClient, body: bytes, content_type: str, status: int) -> None:
    response = client.post("/graphql", content=body, headers={"content-type": content_type})
    assert response.status_code == status
    assert codes(response.json()) == ["BAD_REQUEST"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"])
def test_other_methods_are_405_with_a_code(client: TestClient, method: str) -> None:
    """Not Starlette's plain-text 405: a client reads every refusal the same way."""
    response = client.request(method, "/graphql", json={"query": "{ __typename }"})
    assert (response.status_code, response.headers["allow"]) == (405, "GET, POST")
    assert codes(response.json()) == ["BAD_REQUEST"]
    assert method in response.json()["errors"][0]["message"]


def test_head_answers_with_a_gets_headers(client: TestClient) -> None:
    """Load balancers and uptime checks send HEAD: it had gone the POST way (415, not JSON)."""
    params = {"query": "{ __typename }"}
    head, get = client.head("/graphql", params=params), client.get("/graphql", params=params)
    assert (head.status_code, head.headers["etag"]) == (200, get.headers["etag"])
    page = client.head("/graphql", headers={"accept": "text/html"})
    assert (page.status_code, page.headers["content-type"]) == (200, "text/html; charset=utf-8")


def test_body_over_the_limit_is_413(client: TestClient) -> None:
    query = "{ __typename }" + " " * 1_000_001
    response = client.post("/graphql", json={"query": query})
    assert response.status_code == 413
    assert codes(response.json()) == ["BAD_REQUEST"]


def test_a_client_that_leaves_mid_body_is_answered_not_raised(client: TestClient) -> None:
    """Answered with its code (to no one): an exception would reach the server, which logs
    it as an error (tests/test_hostile_clients.py)."""
    messages: list[Message] = [
        {"type": "http.request", "body": b'{"query": "{ __type', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"content-length", b"100")]
    scope: Scope = {"type": "http", "method": "POST", "path": "/graphql", "headers": headers,
                    "query_string": b"", "app": client.app}  # fmt: skip

    async def ask() -> None:
        await client.app(scope, receive, send)

    assert client.portal is not None
    client.portal.call(ask)
    assert sent[0]["status"] == 400
    assert codes(orjson.loads(sent[1]["body"])) == ["BAD_REQUEST"]


@pytest.mark.parametrize(
    ("variables", "query"),
    [
        ({"n": "ten"}, "query($n: Int) { companies(first: $n) { totalCount } }"),
        ({"t": 5}, "query($t: String!) { company(ticker: $t) { name } }"),
        ({}, "query($t: String!) { company(ticker: $t) { name } }"),
        ({"a": "yesterday"}, "query($a: DateTime) { filings(filedAfter: $a) { totalCount } }"),
        (
            {"a": "2024-01-01T00:00:00"},
            "query($a: DateTime) { filings(filedAfter: $a) { totalCount } }",
        ),
        (
            {"d": "2024-13-01"},
            'query($d: Date) { company(ticker: "AAPL") { prices(from: $d) { close } } }',
        ),
        # a directive's missing or wrong variable: the cost estimate, which collects the
        # fields first, answered it with a 500
        ({}, 'query($s: Boolean!) { company(ticker: "AAPL") { name @skip(if: $s) } }'),
        ({"i": "no"}, "query($i: Boolean!) { companies { ... @include(if: $i) { totalCount } } }"),
    ],
)
@pytest.mark.parametrize(("accept", "status"), [(LEGACY, 200), (MODERN, 400)])
def test_wrong_variable_types(
    client: TestClient, variables: dict[str, Any], query: str, accept: dict[str, str], status: int
) -> None:
    response = client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=accept
    )
    assert response.status_code == status
    assert set(codes(response.json())) == {"BAD_USER_INPUT"}
    assert "data" not in response.json()


@pytest.mark.parametrize(("accept", "status"), [(LEGACY, 200), (MODERN, 400)])
def test_parse_and_validation_errors(
    client: TestClient, accept: dict[str, str], status: int
) -> None:
    response = post(client, "{ companies(first: 2) { nodes { ticker }", **accept)
    assert (response.status_code, codes(response.json())) == (status, ["GRAPHQL_PARSE_FAILED"])
    response = post(client, "{ companies { nodes { tickr } } }", **accept)
    assert (response.status_code, codes(response.json())) == (status, ["GRAPHQL_VALIDATION_FAILED"])
    assert "Did you mean" in response.json()["errors"][0]["message"]


def nested(depth: int) -> str:
    inner = "ticker"
    for _ in range(depth):
        inner = (
            f"company {{ {inner} }}" if _ % 2 else f"filings(first: 1) {{ nodes {{ {inner} }} }}"
        )
    return f'{{ company(ticker: "AAPL") {{ {inner} }} }}'


@pytest.mark.parametrize(
    ("query", "limit"),
    [
        (nested(12), "depth"),
        ("{ " + " ".join(f"a{i}: __typename" for i in range(31)) + " }", "aliases"),
        ("{ " + "__typename " * 11 + "rateLimit { cost } " * 10 + "}", "rootFields"),
        ("{ " + " ".join("__typename" for _ in range(5001)) + " }", "tokens"),
        ("query { ...A } fragment A on Query { ...A __typename }", None),
    ],
)
def test_shape_limits(client: TestClient, query: str, limit: str | None) -> None:
    body = post(client, query).json()
    if limit is None:  # a fragment cycle: the standard rule reports it, our limits do not loop
        assert codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
        return
    errors = [e for e in body["errors"] if e["extensions"].get("limit") == limit]
    assert errors and errors[0]["extensions"]["code"] == "QUERY_LIMIT_EXCEEDED"


def test_limits_allow_the_defaults(client: TestClient) -> None:
    body = post(client, "{ " + " ".join(f"a{i}: __typename" for i in range(20)) + " }").json()
    assert "errors" not in body


ENTITIES = """query($r: [_Any!]!) { _entities(representations: $r) {
    __typename ... on Company { ticker } ... on Filing { accessionNumber } } }"""


@pytest.mark.parametrize(
    "bad",
    [
        {"ticker": "AAPL"},  # no __typename
        {"__typename": "Nope", "ticker": "AAPL"},  # unknown type
        "x",  # not an object
        {"__typename": "Company"},  # no key field
        {"__typename": "Company", "name": "Apple Inc."},  # not a key field
        {"__typename": "Company", "ticker": 5},  # key of the wrong type
        {"__typename": "Company", "ticker": None, "cik": ["0000320193"]},
        {"__typename": "Filing", "accessionNumber": 123},
        {"__typename": "Company", "cik": "12x"},  # a CIK is digits
    ],
)
def test_bad_entity_representations_fail_alone(client: TestClient, bad: Any) -> None:
    good = {"__typename": "Company", "ticker": "AAPL"}
    body = post(client, ENTITIES, {"r": [good, bad, good]}).json()
    assert body["data"]["_entities"] == [{"__typename": "Company", "ticker": "AAPL"}, None,
                                         {"__typename": "Company", "ticker": "AAPL"}]  # fmt: skip
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["path"] == ["_entities", 1]


def test_unknown_entity_keys_resolve_to_null(client: TestClient) -> None:
    representations = [
        {"__typename": "Company", "ticker": "NOPE"},
        {"__typename": "Company", "cik": "0000000001"},
        {"__typename": "Filing", "accessionNumber": "0000000000-00-000000"},
        {"__typename": "Company", "cik": "0000789019", "extra": "ignored"},
        {"__typename": "Company", "id": "not-a-global-id"},
        {"__typename": "Filing", "id": to_global_id("Company", "0000789019")},  # wrong type
        {"__typename": "Company", "id": to_global_id("Company", "0000789019")},
    ]
    body = post(client, ENTITIES, {"r": representations}).json()
    assert "errors" not in body
    msft = {"__typename": "Company", "ticker": "MSFT"}
    assert body["data"]["_entities"] == [None, None, None, msft, None, None, msft]


def test_node_ids(client: TestClient) -> None:
    company = post(client, '{ company(ticker: "AAPL") { id } }').json()["data"]["company"]
    body = post(
        client,
        "query($id: ID!) { node(id: $id) { ... on Company { ticker } } }",
        {"id": company["id"]},
    )
    assert body.json()["data"]["node"] == {"ticker": "AAPL"}
    assert codes(post(client, '{ node(id: "!!") { id } }').json()) == ["BAD_USER_INPUT"]
    unknown = post(client, '{ company(ticker: "NOPE") { name } }').json()
    assert "errors" not in unknown and unknown["data"] == {"company": None}


def test_get_queries_and_graphiql(client: TestClient) -> None:
    response = client.get("/graphql", params={"query": '{ company(ticker: "AAPL") { name } }'})
    assert response.json()["data"] == {"company": {"name": "Apple Inc."}}
    page = client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "CompanyOverview" in page.text and "graphiql" in page.text
    assert client.put("/graphql").status_code == 405


def test_graphiql_assets_can_be_self_hosted(settings: Settings) -> None:
    hosted = settings.replace(graphiql_assets_url="https://assets.internal/graphiql/")
    with TestClient(create_app(hosted)) as client:
        page = client.get("/graphql", headers={"accept": "text/html"}).text
    hosted_file = r'"https://assets\.internal/graphiql/graphiql@[\d.]+/graphiql\.min\.'
    assert re.search(hosted_file + 'js"', page) and re.search(hosted_file + 'css"', page)
    assert "cdn.jsdelivr.net" not in page


@pytest.fixture(scope="module")
def keys(settings: Settings) -> dict[str, str]:
    async def make() -> dict[str, str]:
        engine = create_engine(settings.database_url.get_secret_value())  # type: ignore[union-attr]
        try:
            _, good = await create_key(engine, "pro", ["filings:write"])
            revoked_id, revoked = await create_key(engine, "free", [])
            await revoke_key(engine, revoked_id)
            _, expired = await create_key(
                engine, "free", [], expires_at=datetime.now(UTC) - timedelta(days=1)
            )
            return {"good": good, "revoked": revoked, "expired": expired}
        finally:
            await engine.dispose()

    return asyncio.run(make())


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 200),
        ({"authorization": "Bearer {good}"}, 200),
        ({"Authorization": "bearer {good}"}, 200),
        ({"x-api-key": "{good}"}, 200),
        ({"authorization": "Bearer {revoked}"}, 401),
        ({"authorization": "Bearer {expired}"}, 401),
        ({"authorization": "Bearer cg_unknown"}, 401),
        ({"authorization": "Basic dXNlcjpwYXNz"}, 401),
        ({"x-api-key": "cg_unknown"}, 401),
    ],
)
def test_api_keys(
    client: TestClient, keys: dict[str, str], headers: dict[str, str], status: int
) -> None:
    filled = {name: value.format(**keys) for name, value in headers.items()}
    response = post(client, "{ __typename }", **filled)
    assert response.status_code == status
    if status == 401:
        assert codes(response.json()) == ["UNAUTHENTICATED"]
        assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.fixture(scope="module")
def production(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.replace(env="production"))) as client:
        yield client


def test_production_hides_schema_details(production: TestClient) -> None:
    headers = {"content-type": "application/json"}
    body = production.post(
        "/graphql", json={"query": "{ __schema { types { name } } }"}, headers=headers
    ).json()
    assert set(codes(body)) == {"GRAPHQL_VALIDATION_FAILED"}
    assert "introspection" in body["errors"][0]["message"]
    body = production.post("/graphql", json={"query": "{ companies { nodes { tickr } } }"}).json()
    assert "Did you mean" not in body["errors"][0]["message"]


def test_production_csrf_prevention(production: TestClient) -> None:
    query = {"query": "{ __typename }"}
    assert production.get("/graphql", params=query).status_code == 400
    preflighted = production.get(
        "/graphql", params=query, headers={"apollo-require-preflight": "1"}
    )
    assert preflighted.json()["data"] == {"__typename": "Query"}
    assert production.post("/graphql", json=query).status_code == 200


def test_batches_only_when_enabled(settings: Settings) -> None:
    batch = [{"query": "{ __typename }"}, {"query": "{ companies(first: 0) { totalCount } }"}]
    with TestClient(create_app(settings.replace(allow_batching=True))) as client:
        body = client.post("/graphql", json=batch).json()
    assert body[0]["data"] == {"__typename": "Query"} and "errors" not in body[0]
    assert codes(body[1]) == ["BAD_USER_INPUT"]
