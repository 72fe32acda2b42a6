"""Hostile documents (issue 24, item 4): each is refused before validation with the limit it
exceeds, and every document that fails is charged to its client's budget."""

import math
import re
from collections.abc import Iterator
from typing import Any

import pytest
from graphql import ASTValidationRule, DocumentNode
from starlette.testclient import TestClient

from graph.app import create_app
from graph.pipeline.pipeline import Pipeline
from graph.settings import Settings, Tier
from schema.schema import build_schema
from tests.conftest import REPO, new_api_key

COMPANY = 'company(ticker: "AAPL")'


def spreads(count: int) -> str:
    definitions = "".join(f"fragment F{i} on Company {{ name }} " for i in range(count))
    return f"{definitions}{{ {COMPANY} {{ {' '.join(f'...F{i}' for i in range(count))} }} }}"


def fragment_bomb(levels: int) -> str:
    """F0 spreads F1 at two places, F1 spreads F2 at two places, ...: 2**levels copies."""
    chain = "".join(
        f"fragment F{i} on Filing {{ company {{ filings {{ nodes {{ ...F{i + 1} }} }} }} "
        f"metrics {{ filing {{ ...F{i + 1} }} }} }} "
        for i in range(levels)
    )
    leaf = f"fragment F{levels} on Filing {{ title }}"
    return f'{{ filing(accessionNumber: "x") {{ ...F0 }} }} {chain}{leaf}'


HOSTILE = {
    "fieldOccurrences": "{ " + "__typename " * 2400 + "}",
    "fieldOccurrences ": f"{{ {COMPANY} {{ {'nope ' * 2400}}} }}",  # invalid fields as well
    "fieldMerges": "{ "
    + " ".join(
        f"c{i}: {COMPANY} {{ {'filings { nodes { title formType } } ' * 9}}}" for i in range(25)
    )
    + " }",
    "fragmentSpreads": spreads(400),
    "fragmentSpreads ": "{ " + "...F " * 1000 + "}",  # of an unknown fragment
    "directives": f"{{ {COMPANY} {{ name {'@skip(if: false) ' * 60}}} }}",
    "aliases": f"{{ {COMPANY} {{ {' '.join(f'a{i}: name' for i in range(1000))} }} }}",
    "selections": fragment_bomb(30),
    "characters": "#" + "x" * 200_000 + "\n{ __typename }",
    "tokens": "{ " + "__typename @skip(if: false) " * 1000 + "}",
}


@pytest.fixture(scope="module")
def pipeline(settings: Settings) -> Pipeline:
    return Pipeline(build_schema()._schema, settings)


@pytest.mark.parametrize("limit", list(HOSTILE))
def test_a_hostile_document_is_refused_with_its_limit(pipeline: Pipeline, limit: str) -> None:
    (error,) = pipeline.prepare(HOSTILE[limit]).errors
    assert error["extensions"]["code"] == "QUERY_LIMIT_EXCEEDED", error
    assert error["extensions"]["limit"] == limit.strip()


def real_documents() -> Iterator[tuple[str, str]]:
    """The operations clients send: ops/operations, the benchmark's, the README's examples."""
    for path in sorted([*REPO.glob("ops/operations/*.graphql"), *REPO.glob("ops/bench/*.graphql")]):
        yield str(path.relative_to(REPO)), path.read_text()
    readme = (REPO / "README.md").read_text()
    for number, block in enumerate(re.findall(r"```graphql\n(.*?)```", readme, re.S)):
        yield f"README.md, example {number + 1}", block


@pytest.mark.parametrize(("name", "document"), list(real_documents()))
def test_real_documents_are_far_from_every_limit(
    pipeline: Pipeline, name: str, document: str
) -> None:
    assert pipeline.prepare(document).errors == [], name


def test_real_documents_include_the_operations() -> None:
    names = [name for name, _ in real_documents()]
    assert "ops/operations/CompanyPage.graphql" in names and len(names) > 6


@pytest.fixture(scope="module")
def tight(settings: Settings) -> Iterator[TestClient]:
    """A free tier of 200 points that hardly refills, batching on."""
    tiers = {"free": Tier(ceiling=150, capacity=200, restore_rate=0.001)}
    with TestClient(create_app(settings.replace(tiers=tiers, allow_batching=True))) as client:
        yield client


def post(client: TestClient, body: Any, key: str) -> tuple[int, Any]:
    response = client.post("/graphql", json=body, headers={"Authorization": f"Bearer {key}"})
    return response.status_code, response.json()


def available(payload: dict[str, Any]) -> int:
    throttle: int = payload["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
    return throttle


@pytest.mark.parametrize(
    "document",
    [HOSTILE["fieldOccurrences"], "{ company(ticker: ", "{ nope }", HOSTILE["fragmentSpreads"]],
    ids=["limit", "syntax", "validation", "spreads"],
)
def test_a_failing_document_is_charged_by_its_size(
    tight: TestClient, database_url: str, document: str
) -> None:
    key = new_api_key(database_url, "free")
    points = math.ceil(len(document) / 1000)
    _, first = post(tight, {"query": document}, key)
    assert first["errors"][0]["extensions"]["code"] != "RATE_LIMITED"
    assert first["extensions"]["cost"]["requestedQueryCost"] == points
    assert available(first) == 200 - points
    _, again = post(tight, {"query": document}, key)  # never cached: charged again
    assert available(again) == 200 - 2 * points


def test_a_spent_budget_stops_failing_documents_before_they_are_parsed(
    tight: TestClient, database_url: str
) -> None:
    key = new_api_key(database_url, "free")
    document = "{ nope " + "#" * 49_000 + "\n}"  # 50 points each
    codes = [post(tight, {"query": document}, key)[1]["errors"][0]["extensions"]["code"]
             for _ in range(5)]  # fmt: skip
    assert codes == ["GRAPHQL_VALIDATION_FAILED"] * 4 + ["RATE_LIMITED"]
    status, refused = post(tight, {"query": document}, key)
    assert status == 429 and refused["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


def test_a_valid_document_is_not_charged_for_its_preparation(
    tight: TestClient, database_url: str
) -> None:
    key = new_api_key(database_url, "free")
    document = '{ company(ticker: "AAPL") { name } } # ' + "x" * 5000  # new to the cache
    status, payload = post(tight, {"query": document}, key)
    assert status == 200 and payload["data"]["company"]["name"] == "Apple Inc."
    assert payload["extensions"]["cost"]["requestedQueryCost"] == 4 + 1  # a fetch, an object
    assert available(payload) == 200 - (4 + 1)


def test_a_batch_over_the_limit_is_refused_whole(tight: TestClient, database_url: str) -> None:
    key = new_api_key(database_url, "free")
    operation = {"query": "{ __typename }"}
    status, answers = post(tight, [operation] * 10, key)
    assert status == 200 and [a["data"] for a in answers] == [{"__typename": "Query"}] * 10
    _, refused = post(tight, [operation] * 5000, key)
    (error,) = refused["errors"]
    assert error["extensions"] == {
        "code": "QUERY_LIMIT_EXCEEDED", "limit": "batchOperations", "maximum": 10, "actual": 5000
    }  # fmt: skip


def test_every_operation_of_a_batch_is_charged(tight: TestClient, database_url: str) -> None:
    key = new_api_key(database_url, "free")
    _, answers = post(tight, [{"query": "{ nope }"}] * 10, key)
    assert [available(answer) for answer in answers] == list(range(199, 189, -1))


def test_the_limits_are_settings(settings: Settings) -> None:
    roomy = settings.replace(max_field_occurrences=3000, max_selections=10_000)
    pipeline = Pipeline(build_schema()._schema, roomy)
    errors = pipeline.prepare(HOSTILE["fieldOccurrences"]).errors
    assert [e["extensions"].get("limit") for e in errors] != ["fieldOccurrences"]


def test_a_hostile_subscription_is_refused_before_strawberry_validates_it(
    client: TestClient,
) -> None:
    hostile = "subscription { filingAdded { " + "title " * 2400 + "} }"
    with client.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {}})
        assert ws.receive_json() == {"type": "connection_ack"}
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": hostile}})
        message = ws.receive_json()
    assert (message["id"], message["type"]) == ("1", "error"), message
    (error,) = message["payload"]
    assert error["extensions"]["code"] == "QUERY_LIMIT_EXCEEDED"
    assert error["extensions"]["limit"] == "fieldOccurrences"


UNKNOWN = " ".join(f"x{i}" for i in range(30))  # 30 validation errors, were it validated
SHAPES = {
    "depth": f"{{ {COMPANY} {{ {UNKNOWN} "
    + "filings { nodes { company { " * 6
    + "name"
    + " } } }" * 6
    + " } }",
    "rootFields": "{ " + " ".join(f"r{i}: nope" for i in range(21)) + " }",
}


def test_a_document_too_deep_or_wide_gets_one_error_and_no_validation(settings: Settings) -> None:
    """Depth and root fields are checked with the other limits, before validation: the refusal
    is the one error (not followed by 20 of validation's), and validation never runs."""
    validated: list[DocumentNode] = []

    class Seen(ASTValidationRule):
        def enter_document(self, node: DocumentNode, *_: Any) -> None:
            validated.append(node)

    pipeline = Pipeline(build_schema()._schema, settings)
    pipeline.rules.append(Seen)
    for limit, document in SHAPES.items():
        (error,) = pipeline.prepare(document).errors
        assert error["extensions"]["code"] == "QUERY_LIMIT_EXCEEDED", error
        assert error["extensions"]["limit"] == limit, error
    assert validated == []
    assert pipeline.prepare(f"{{ {COMPANY} {{ {UNKNOWN} }} }}").errors  # the rule does run
    assert len(validated) == 1


def test_validation_stops_after_twenty_errors(pipeline: Pipeline) -> None:
    unknown = " ".join(f"x{i}: 1" for i in range(1600))
    errors = pipeline.prepare(f"{{ {COMPANY.removesuffix(')')} {unknown}) {{ name }} }}").errors
    assert len(errors) == 21, len(errors)  # 20, and "Too many validation errors"
    assert all(error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED" for error in errors)
