"""APQ storage (issue 24, item 6): what a client can make the state Redis keep is bounded
(normalized documents, a size cap, a per-client quota, the server's maxmemory), and a Redis
that refuses writes (OOM) leaves every request answered."""

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis
from redis.exceptions import OutOfMemoryError
from starlette.testclient import TestClient

from graph.app import create_app
from graph.pipeline.persisted import KEY_PREFIX, QUOTA_PREFIX, sha256
from graph.settings import Settings
from tests.conftest import REPO, new_api_key
from tests.servers import free_port, redis_server

COMMENTED = "# " + "x" * 99_000 + "\n{ __typename }"
ATTACK = 300  # documents of ~99 KB each: ~30 MB sent
APQ_QUOTA = 20_000


def apq(query: str | None, hash_: str) -> dict[str, Any]:
    body: dict[str, Any] = {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": hash_}}}
    if query is not None:
        body["query"] = query
    return body


def stored_bytes(redis: Redis) -> int:
    keys = list(redis.scan_iter(match=f"{KEY_PREFIX}*", count=1000))
    return sum(int(redis.strlen(key)) for key in keys)


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings.replace(apq_client_bytes=APQ_QUOTA))) as test_client:
        yield test_client


def test_the_normalized_document_is_stored(client: TestClient, redis_url: str) -> None:
    hash_ = sha256(COMMENTED)
    assert client.post("/graphql", json=apq(COMMENTED, hash_)).json()["data"] == {
        "__typename": "Query"
    }
    assert Redis.from_url(redis_url).get(KEY_PREFIX + hash_) == b"{__typename}"
    by_hash = client.post("/graphql", json=apq(None, hash_)).json()
    assert by_hash["data"] == {"__typename": "Query"}


def test_commented_documents_fill_no_more_than_a_clients_quota(
    client: TestClient, redis_url: str, database_url: str
) -> None:
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    before = int(redis.info("memory")["used_memory"])
    key = new_api_key(database_url, "free")
    headers = {"Authorization": f"Bearer {key}"}
    deadline = time.monotonic() + 120
    sent = 0
    while sent < ATTACK and time.monotonic() < deadline:
        document = f"# {sent} {'x' * 99_000}\n{{ a{sent}: __typename }}"
        answer = client.post("/graphql", json=apq(document, sha256(document)), headers=headers)
        assert answer.json()["data"] == {f"a{sent}": "Query"}  # every one runs
        sent += 1
    assert sent >= ATTACK // 2, f"only {sent} documents in 120 s"
    stored = stored_bytes(redis)
    assert 0 < stored <= APQ_QUOTA, stored
    (counter,) = redis.keys(f"{QUOTA_PREFIX}*")
    assert int(redis.get(counter) or 0) <= APQ_QUOTA
    grown = int(redis.info("memory")["used_memory"]) - before
    assert grown < 1_000_000, f"{sent} documents grew the state Redis by {grown} bytes"
    # another client has its own quota
    other = "{ other: __typename }"
    client.post("/graphql", json=apq(other, sha256(other)))
    assert redis.exists(KEY_PREFIX + sha256(other))


def test_a_document_over_the_cap_once_normalized_runs_but_is_not_kept(
    settings: Settings, redis_url: str
) -> None:
    big = "{ " + " ".join(f"a{n}: __typename" for n in range(10)) + " }"
    with TestClient(create_app(settings.replace(apq_max_bytes=100))) as small:
        assert "errors" not in small.post("/graphql", json=apq(big, sha256(big))).json()
    assert not Redis.from_url(redis_url).exists(KEY_PREFIX + sha256(big))


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[str]:
    """A real redis-server, noeviction, holding more than its maxmemory: it refuses writes."""
    port = free_port()
    server = redis_server(port, tmp_path)
    redis = Redis(port=port)
    try:
        redis.config_set("maxmemory-policy", "noeviction")
        for number in range(20):
            redis.set(f"junk:{number}", b"x" * 100_000)
        used = int(redis.info("memory")["used_memory"])
        redis.config_set("maxmemory", str(used // 2))
        with pytest.raises(OutOfMemoryError):  # "OOM command not allowed when used memory > ..."
            redis.set("one-more", b"x")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(10)


def test_a_full_redis_refuses_writes_and_every_request_is_still_answered(
    settings: Settings, full_redis: str, database_url: str
) -> None:
    full = settings.replace(redis_url=full_redis, apq_client_bytes=APQ_QUOTA)
    key = new_api_key(database_url, "free")
    headers = {"Authorization": f"Bearer {key}"}
    query = '{ company(ticker: "AAPL") { name } }'
    with TestClient(create_app(full)) as full_client:
        for _ in range(3):  # rate buckets cannot be written either
            plain = full_client.post("/graphql", json={"query": query}, headers=headers)
            assert plain.status_code == 200, plain.text
            assert plain.json()["data"] == {"company": {"name": "Apple Inc."}}
        document = "{ full: __typename }"
        registered = full_client.post("/graphql", json=apq(document, sha256(document)))
        assert registered.status_code == 200 and registered.json()["data"] == {"full": "Query"}
        assert not Redis.from_url(full_redis).exists(KEY_PREFIX + sha256(document))
        ready = full_client.get("/health/ready")
        assert ready.status_code == 200, ready.text
        metrics = full_client.get("/metrics").text
        assert 'corpgraph_persisted_not_stored_total{reason="redis"}' in metrics
        assert 'corpgraph_redis_memory_bytes{kind="max",role="state"}' in metrics


def test_the_state_redis_is_bounded_and_never_evicts_on_kubernetes() -> None:
    base = REPO / "ops/k8s/base"
    assert (
        "redis-state.yaml" in yaml.safe_load((base / "kustomization.yaml").read_text())["resources"]
    )
    config = yaml.safe_load((base / "redis-state.yaml").read_text())["data"]["redis.conf"]
    assert "maxmemory 256mb" in config.splitlines()
    assert "maxmemory-policy noeviction" in config.splitlines()


def test_a_client_over_its_quota_still_runs_its_documents_unstored(
    client: TestClient, redis_url: str, database_url: str
) -> None:
    redis = Redis.from_url(redis_url)
    redis.flushdb()
    headers = {"Authorization": f"Bearer {new_api_key(database_url, 'free')}"}
    sent = []
    for number in range(60):  # ~1 KB each once normalized: 60 KB against a 20 KB quota
        document = f"query Q{number}{'x' * 1000} {{ __typename }}"
        answer = client.post("/graphql", json=apq(document, sha256(document)), headers=headers)
        assert answer.json()["data"] == {"__typename": "Query"}
        sent.append(sha256(document))
    assert 0 < stored_bytes(redis) <= APQ_QUOTA
    found = [client.post("/graphql", json=apq(None, hash_)).json() for hash_ in sent]
    codes = [answer["errors"][0]["extensions"]["code"] for answer in found if "errors" in answer]
    assert len(codes) >= 40 and set(codes) == {"PERSISTED_QUERY_NOT_FOUND"}, codes
