"""Persisted documents: APQ on POST and GET, `documentId`, hash mismatches, and trusted
documents from the manifest `corpgraph persisted build` writes (ops/operations)."""

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from redis import Redis
from starlette.testclient import TestClient

from graph.app import create_app
from graph.pipeline.persisted import KEY_PREFIX, build_manifest, sha256
from graph.pipeline.pipeline import Pipeline
from graph.settings import Settings
from schema.schema import build_schema
from tests.conftest import REPO
from tests.filings import ALERT
from tests.node import Subscriber
from tests.servers import corpgraph_environment, corpgraph_processes, threaded

QUERY = '{ company(ticker: "AAPL") { name } }'
HASH = sha256(QUERY)
APPLE = {"company": {"name": "Apple Inc."}}
MANIFEST = REPO / "ops/operations/persisted-query-manifest.json"


def apq(hash_: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": hash_}}


def codes(response: Any) -> list[str]:
    return [error["extensions"]["code"] for error in response.json()["errors"]]


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The documents the pipeline parses and validates (the others came from its cache)."""
    seen: list[str] = []
    original = Pipeline._parse_and_validate

    def counting(self: Pipeline, query: str) -> Any:
        seen.append(query)
        return original(self, query)

    monkeypatch.setattr(Pipeline, "_parse_and_validate", counting)
    return seen


def test_apq_on_post_then_get(client: TestClient, redis_url: str, parses: list[str]) -> None:
    unknown = client.post("/graphql", json={"extensions": apq(HASH)})
    assert unknown.status_code == 200
    assert unknown.json()["errors"][0]["message"] == "PersistedQueryNotFound"
    assert codes(unknown) == ["PERSISTED_QUERY_NOT_FOUND"]
    registered = client.post("/graphql", json={"query": QUERY, "extensions": apq(HASH)})
    assert registered.json()["data"] == APPLE
    assert Redis.from_url(redis_url).ttl(KEY_PREFIX + HASH) > 3600
    by_hash = client.post("/graphql", json={"extensions": apq(HASH)})
    assert by_hash.json()["data"] == APPLE
    params = {"extensions": json.dumps(apq(HASH)), "variables": "{}"}
    over_get = client.get("/graphql", params=params, headers={"accept": "text/html"})
    assert over_get.json()["data"] == APPLE  # a hash-only GET is no GraphiQL page request
    assert parses.count(QUERY) == 1  # parsed and validated once, whatever the dialect


def test_document_id(client: TestClient) -> None:
    client.post("/graphql", json={"query": QUERY, "extensions": apq(HASH)})
    found = client.post("/graphql", json={"documentId": f"sha256:{HASH}"})
    assert found.json()["data"] == APPLE
    assert codes(client.post("/graphql", json={"documentId": "sha256:" + "0" * 64})) == [
        "PERSISTED_QUERY_NOT_FOUND"
    ]
    for bad in ("md5:abc", f"sha256:{HASH[:-1]}", 7):
        refused = client.post("/graphql", json={"documentId": bad})
        assert (refused.status_code, codes(refused)) == (400, ["BAD_REQUEST"])


def test_a_document_that_does_not_validate_is_not_kept(client: TestClient, redis_url: str) -> None:
    invalid = "{ company { nope } }"
    sent = client.post("/graphql", json={"query": invalid, "extensions": apq(sha256(invalid))})
    assert set(codes(sent)) == {"GRAPHQL_VALIDATION_FAILED"}
    assert not Redis.from_url(redis_url).exists(KEY_PREFIX + sha256(invalid))


def test_a_hash_that_does_not_match_is_refused_and_not_kept(
    client: TestClient, redis_url: str
) -> None:
    wrong = sha256("{ __typename }")
    refused = client.post("/graphql", json={"query": QUERY, "extensions": apq(wrong)})
    assert (refused.status_code, codes(refused)) == (400, ["PERSISTED_QUERY_HASH_MISMATCH"])
    assert not Redis.from_url(redis_url).exists(KEY_PREFIX + wrong)
    assert codes(client.post("/graphql", json={"extensions": apq(wrong)})) == [
        "PERSISTED_QUERY_NOT_FOUND"
    ]


@pytest.mark.parametrize(
    "extensions",
    [
        {"persistedQuery": {"version": 2, "sha256Hash": HASH}},
        {"persistedQuery": {"version": 1, "sha256Hash": "nope"}},
        {"persistedQuery": "yes"},
    ],
)
def test_malformed_persisted_query_extensions(
    client: TestClient, extensions: dict[str, Any]
) -> None:
    refused = client.post("/graphql", json={"extensions": extensions})
    assert (refused.status_code, codes(refused)) == (400, ["BAD_REQUEST"])


def test_a_persisted_mutation_over_get_is_405(client: TestClient) -> None:
    mutation = (
        'mutation { ingestFiling(input: {ticker: "AAPL", accessionNumber: "0000320193-26-000001",'
        ' formType: "8-K", filedAt: "2026-01-02T00:00:00Z"}) { id } }'
    )
    params = {"query": mutation, "extensions": json.dumps(apq(sha256(mutation)))}
    refused = client.get("/graphql", params=params, headers={"apollo-require-preflight": "1"})
    assert (refused.status_code, refused.headers["allow"]) == (405, "POST")
    hashed = client.get(
        "/graphql",
        params={"extensions": json.dumps(apq(sha256(mutation)))},
        headers={"apollo-require-preflight": "1"},
    )
    assert codes(hashed) == ["PERSISTED_QUERY_NOT_FOUND"]  # refused above: nothing was kept


def test_large_documents_run_but_are_not_kept(settings: Settings, redis_url: str) -> None:
    big = "{ " + " ".join(f"a{n}: __typename" for n in range(10)) + " }"
    with TestClient(create_app(settings.replace(apq_max_bytes=100))) as client:
        ran = client.post("/graphql", json={"query": big, "extensions": apq(sha256(big))})
        assert "errors" not in ran.json()
    assert not Redis.from_url(redis_url).exists(KEY_PREFIX + sha256(big))


def test_the_committed_manifest_is_built_from_ops_operations() -> None:
    built = build_manifest((REPO / "ops/operations").glob("*.graphql"), build_schema()._schema)
    assert orjson.loads(MANIFEST.read_bytes()) == built, "run `corpgraph persisted build`"
    kinds = {operation["name"]: operation["type"] for operation in built["operations"]}
    assert kinds == {"CompanyPage": "query", "SectorDashboard": "query",
                     "MetricsChart": "query", "FilingAlerts": "subscription"}  # fmt: skip


SECRET = "gateway-secret-for-tests"


@pytest.fixture
def trusted(settings: Settings) -> Iterator[TestClient]:
    trusted_settings = settings.replace(
        persisted_mode="trusted", persisted_manifests=[MANIFEST], gateway_secret=SECRET
    )
    with TestClient(create_app(trusted_settings)) as client:
        yield client


def manifest_operation(name: str) -> dict[str, str]:
    operations = orjson.loads(MANIFEST.read_bytes())["operations"]
    found: dict[str, str] = next(op for op in operations if op["name"] == name)
    return found


def test_trusted_mode_runs_only_the_manifest(trusted: TestClient) -> None:
    page = manifest_operation("CompanyPage")
    variables = {"ticker": "AAPL", "filings": 2}
    ran = trusted.post("/graphql", json={"extensions": apq(page["id"]), "variables": variables})
    assert ran.json()["data"]["company"]["ticker"] == "AAPL"
    by_id = trusted.post("/graphql", json={"documentId": f"sha256:{page['id']}",
                                           "variables": variables})  # fmt: skip
    assert by_id.json()["data"] == ran.json()["data"]
    with_body = {"query": page["body"], "extensions": apq(page["id"]), "variables": variables}
    assert trusted.post("/graphql", json=with_body).json()["data"] == ran.json()["data"]

    ad_hoc = trusted.post("/graphql", json={"query": QUERY})
    assert (ad_hoc.status_code, codes(ad_hoc)) == (400, ["PERSISTED_QUERY_ID_REQUIRED"])
    unknown = trusted.post("/graphql", json={"extensions": apq(HASH)})
    assert (unknown.status_code, codes(unknown)) == (400, ["PERSISTED_QUERY_NOT_IN_LIST"])
    registering = trusted.post("/graphql", json={"query": QUERY, "extensions": apq(HASH)})
    assert (registering.status_code, codes(registering)) == (400, ["PERSISTED_QUERY_NOT_IN_LIST"])


def test_trusted_mode_serves_the_gateway(trusted: TestClient) -> None:
    headers = {"x-corpgraph-gateway-secret": SECRET}
    planned = trusted.post("/graphql", json={"query": QUERY}, headers=headers)
    assert planned.json()["data"] == APPLE


def test_a_manifest_with_a_wrong_id_stops_the_server(settings: Settings, tmp_path: Path) -> None:
    forged = tmp_path / "persisted-documents.json"
    forged.write_text(json.dumps({"0" * 64: QUERY}))
    with pytest.raises(ValueError, match="not the SHA-256"):
        create_app(settings.replace(persisted_manifests=[forged]))


@pytest.fixture(scope="module")
def served(settings: Settings) -> Iterator[str]:
    with threaded(create_app(settings), "/health/ready") as base:
        yield f"{base}/graphql"


@pytest.mark.e2e
@pytest.mark.parametrize("mode", ["post", "get"])
def test_apollo_clients_persisted_queries_link(client_tools: Path, served: str, mode: str) -> None:
    """The npm Apollo Client with createPersistedQueryLink: hash only, not found, retried with
    the query; the second time, hash only is enough."""
    query = 'query Apple { company(ticker: "AAPL") { name } }'
    query = query.replace("AAPL", "AAPL" if mode == "post" else "MSFT")  # a hash of its own
    done = subprocess.run(
        ["node", str(client_tools / "apollo.mjs"), served, query, "{}", mode],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    lines = [orjson.loads(line) for line in done.stdout.splitlines()]
    hashed = "GET" if mode == "get" else "POST"
    name = "Apple Inc." if mode == "post" else "Microsoft Corporation"
    assert lines == [
        {"method": hashed, "hashOnly": True, "status": 200, "code": "PERSISTED_QUERY_NOT_FOUND"},
        {"method": "POST", "hashOnly": False, "status": 200, "code": None},
        {"data": {"company": {"__typename": "Company", "name": name}}},
        {"method": hashed, "hashOnly": True, "status": 200, "code": None},
        {"data": {"company": {"__typename": "Company", "name": name}}},
    ], done.stderr


@pytest.mark.e2e
def test_trusted_mode_over_websocket(
    client_tools: Path, database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """The manifest's subscription runs over WebSocket (the npm graphql-ws client), sent in
    full or by its id, and alerts; an ad-hoc one gets PERSISTED_QUERY_ID_REQUIRED."""
    alerts = manifest_operation("FilingAlerts")
    settings = {"persisted_mode": "trusted", "persisted_manifests": str(MANIFEST)}
    with corpgraph_processes(1, database_url, redis_url, **settings) as (server,):
        url = f"ws://{server}/graphql"
        ad_hoc = Subscriber(client_tools, url, {}, 1, query=ALERT)
        ibm = {"tickers": ["IBM"]}
        trusted = Subscriber(client_tools, url, ibm, 1, query=alerts["body"])
        by_id = Subscriber(client_tools, url, ibm, 1, query="", extensions=apq(alerts["id"]))
        try:
            assert ad_hoc.next() == {"connected": True}
            refusal = ad_hoc.next()["error"]
            assert refusal[0]["extensions"]["code"] == "PERSISTED_QUERY_ID_REQUIRED"
            trusted.connected()
            by_id.connected()
            line = {"ticker": "IBM", "accessionNumber": "0000051143-26-000777",
                    "formType": "8-K", "filedAt": "2026-11-02T13:00:00Z"}  # fmt: skip
            (tmp_path / "one.jsonl").write_bytes(orjson.dumps(line))
            subprocess.run(
                [sys.executable, "-m", "graph", "ingest", str(tmp_path / "one.jsonl")],
                env=corpgraph_environment(database_url, redis_url, str(tmp_path)),
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            for subscriber in (trusted, by_id):
                message = subscriber.next()
                assert "data" in message, message
                assert message["data"]["filingAdded"]["accessionNumber"] == "0000051143-26-000777"
        finally:
            for subscriber in (ad_hoc, trusted, by_id):
                subscriber.close()
