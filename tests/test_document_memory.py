"""Document cache memory (issue 24, item 5): distinct heavy documents, valid and invalid, do
not grow a real worker (a `corpgraph serve` process) past a bound: only valid documents are
cached, and the cache is bounded by their estimated bytes."""

import shutil
import tempfile
import time
from collections.abc import Iterator

import httpx2 as httpx
import orjson
import psutil
import pytest

from graph.bounded import BoundedByBytes
from graph.pipeline.pipeline import Pipeline
from graph.settings import Settings
from schema.schema import build_schema
from tests.conftest import ROOMY_TIERS
from tests.servers import corpgraph_environment, free_port, start_corpgraph, stop

DOCUMENTS = 120  # each ~60 KB and ~5,000 tokens: ~2.5 MB parsed
SECONDS = 180
MB = 1024 * 1024


def heavy(number: int, valid: bool) -> str:
    """~1,000 tiny operations with long names: as many tokens as the limit lets through."""
    name = f"Q{number:05d}_{'x' * 30}"
    operations = [f"query {name}_{i} {{ __typename }}" for i in range(999)]
    operations.append(f"query {name}_last {{ {'__typename' if valid else 'nope'} }}")
    return " ".join(operations)


@pytest.fixture(scope="module")
def worker(database_url: str, redis_url: str) -> Iterator[tuple[str, psutil.Process]]:
    """One `corpgraph serve` process (a single worker serves in the process itself)."""
    data_dir = tempfile.mkdtemp(prefix="corpgraph-memory-")
    tiers = orjson.dumps({name: dict(tier) for name, tier in ROOMY_TIERS.items()}).decode()
    environment = corpgraph_environment(database_url, redis_url, data_dir, tiers=tiers)
    port = free_port()
    process = start_corpgraph(port, environment)
    try:
        yield f"http://127.0.0.1:{port}", psutil.Process(process.pid)
    finally:
        stop(process)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_distinct_heavy_documents_keep_a_worker_under_its_memory_bound(
    worker: tuple[str, psutil.Process],
) -> None:
    base, process = worker
    deadline = time.monotonic() + SECONDS
    with httpx.Client(base_url=base, timeout=30) as client:
        for number in range(4):  # warm up: imports, pools, first allocations
            client.post("/graphql", json={"query": heavy(-number - 1, valid=True)})
        before = process.memory_info().rss
        sent = 0
        while sent < DOCUMENTS and time.monotonic() < deadline:
            document = heavy(sent, valid=sent % 2 == 0)
            answer = client.post("/graphql", json={"query": document}).json()
            assert answer["errors"][0]["extensions"]["code"] in {
                "BAD_REQUEST",  # valid: name the operation to run
                "GRAPHQL_VALIDATION_FAILED",
            }, answer
            sent += 1
        after = process.memory_info().rss
    assert sent >= DOCUMENTS // 2, f"only {sent} documents in {SECONDS} s"
    growth = (after - before) / MB
    print(f"{sent} documents: RSS {before / MB:.0f} MB -> {after / MB:.0f} MB")
    # 64 MB of cache (estimated generously) plus allocator slack; each cached document costs
    # ~2.5 MB, so a cache that kept them all would grow by ~300 MB
    assert growth < 150, f"{sent} documents grew the worker by {growth:.0f} MB"
    assert after / MB < 512 - 100, f"the worker holds {after / MB:.0f} MB"


def test_only_valid_documents_are_cached_within_the_bytes(settings: Settings) -> None:
    pipeline = Pipeline(build_schema()._schema, settings.replace(document_cache_bytes=10_000_000))
    for number in range(8):
        assert pipeline.prepare(heavy(number, valid=False)).errors
    assert len(pipeline._prepared) == 0  # invalid: parsed, answered, dropped
    for number in range(8):
        assert not pipeline.prepare(heavy(number, valid=True)).errors
    assert 0 < len(pipeline._prepared) < 8
    assert pipeline._prepared.bytes <= 10_000_000


def test_bounded_by_bytes_drops_the_least_recently_used() -> None:
    cache: BoundedByBytes[str, int] = BoundedByBytes(100)
    cache.put("a", 1, 40)
    cache.put("b", 2, 40)
    assert cache.get("a") == 1  # now the most recent
    cache.put("c", 3, 40)
    assert ("a" in cache, "b" in cache, "c" in cache) == (True, False, True)
    cache.put("huge", 4, 101)
    assert "huge" not in cache and cache.bytes == 80
    cache.put("a", 5, 10)  # replaced, not counted twice
    assert cache.bytes == 50 and cache.get("a") == 5
