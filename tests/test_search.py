"""Filing search and nearest neighbours: HNSW recall against exact search on the demo data
set, filters inside the SQL, full-text search of a filing right after its ingestion, one
statement per batch, the embedders, reindexing, and the inputs that make no sense."""

import asyncio
import math
import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import TextClause, text
from starlette.testclient import TestClient

from db.embeddings import (
    STOPWORDS,
    EmbedderMismatch,
    HashingEmbedder,
    check_embeddings,
    literal,
    mark_embeddings,
    reindex,
)
from db.engine import create_engine
from db.issuers import SECTOR_INDUSTRIES
from db.reader import create_reader
from db.seed import TOPICS
from graph.app import create_app
from graph.settings import Settings
from loaders.filings import FilingFilter
from loaders.search import (
    PREFER_INDEX,
    SIMILAR_COMPANIES,
    SIMILAR_FILINGS,
    SearchRequest,
    search_filings,
)
from tests.conftest import BOTH_PATHS, Query, StatementLog, seeded_database

STORAGE_PATHS = BOTH_PATHS  # tests/conftest.py: plain PostgreSQL, and TimescaleDB

SEARCH = """query($query: String!, $first: Int, $mode: SearchMode, $tickers: [String!],
                  $formTypes: [String!], $filedAfter: DateTime) {
  searchFilings(query: $query, first: $first, mode: $mode, tickers: $tickers,
                formTypes: $formTypes, filedAfter: $filedAfter) {
    score filing { accessionNumber formType filedAt title summary company { ticker } } } }"""
# pgvector computes distances in single precision: closer than this, two distances are a tie
TIE = 1e-6
EXACT = """SELECT embedding <=> CAST($1 AS vector) AS distance FROM filings f
           WHERE embedding IS NOT NULL {filters} ORDER BY distance LIMIT $2"""


def pg(url: str) -> str:
    return url.replace("+asyncpg", "")


@pytest.fixture(scope="module")
def demo_url(cluster: Any) -> str:
    """The default demo data set (about 20,000 filings), as `corpgraph serve` loads it."""
    url: str = cluster.get_uri("corpgraph_demo")
    asyncio.run(seeded_database(url, "default"))
    return url


@pytest.fixture(scope="module")
def demo(settings: Settings, demo_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(settings.replace(database_url=demo_url))) as client:
        yield client


def queries(count: int) -> list[str]:
    """What analysts would type: topics, industries, and a few topic words."""
    rng = random.Random(7)
    industries = [industry for group in SECTOR_INDUSTRIES.values() for industry in group]
    phrases = [*TOPICS, *industries]
    words = [word for word in " ".join(TOPICS).split() if word not in STOPWORDS]
    return [
        rng.choice(phrases) if index % 2 else " ".join(rng.sample(words, 3))
        for index in range(count)
    ]


def exact_distances(url: str, vectors: list[str | None], k: int, filters: str = "") -> list[Any]:
    """The true k nearest distances of each vector, by a sequential scan."""

    async def run() -> list[list[float]]:
        connection = await asyncpg.connect(pg(url))
        try:
            await connection.execute("SET enable_indexscan = off")
            sql = EXACT.format(filters=filters)
            return [[row[0] for row in await connection.fetch(sql, v, k)] for v in vectors]
        finally:
            await connection.close()

    return asyncio.run(run())


def test_hnsw_recall_at_10_against_exact_search(demo_url: str) -> None:
    """A hit counts when its distance is no greater than the exact 10th (ties are not misses)."""
    asked = queries(50)
    embedder = HashingEmbedder()

    async def approximate() -> tuple[list[list[float]], str]:
        db = await create_reader(pg(demo_url))
        try:
            request = SearchRequest("VECTOR", 10, FilingFilter())
            found = await search_filings(db, embedder, request, asked)
            vector = literal(embedder.embed([asked[0]])[0])
            plan = await db.pool.fetch(
                "EXPLAIN SELECT id FROM filings ORDER BY embedding <=> CAST($1 AS vector) LIMIT 10",
                vector,
            )
            return [[1 - hit.score for hit in hits] for hits in found], str(plan)
        finally:
            await db.pool.close()

    distances, plan = asyncio.run(approximate())
    assert "ix_filings_embedding" in plan  # the index answers, not a scan
    vectors = [literal(vector) for vector in embedder.embed(asked)]
    exact = exact_distances(demo_url, vectors, 10)
    hits = sum(
        sum(distance <= truth[-1] + TIE for distance in found)
        for found, truth in zip(distances, exact, strict=True)
    )
    recall = hits / (10 * len(asked))
    print(f"recall@10 over {len(asked)} queries: {recall:.3f}")
    assert recall >= 0.95


@pytest.mark.parametrize(
    ("variables", "filters", "holds"),
    [
        ({"tickers": ["AAPL"]}, "AND company_id = (SELECT id FROM companies WHERE ticker = 'AAPL')",
         lambda f: f["company"]["ticker"] == "AAPL"),
        ({"formTypes": ["8-K"]}, "AND form_type = '8-K'", lambda f: f["formType"] == "8-K"),
        ({"formTypes": ["10-K"], "filedAfter": "2025-01-01T00:00:00Z"},
         "AND form_type = '10-K' AND filed_at >= '2025-01-01'",
         lambda f: f["formType"] == "10-K" and f["filedAt"] >= "2025-01-01"),
    ],
)  # fmt: skip
def test_filters_apply_inside_the_search(
    demo: TestClient, demo_url: str, variables: dict[str, Any], filters: str, holds: Any
) -> None:
    """However selective the filter, `first` hits come back, the nearest that pass it."""
    query = "goodwill impairment in a reporting segment"
    asked = {"query": query, "first": 20, "mode": "VECTOR", **variables}
    body = {"query": SEARCH, "variables": asked}
    hits = demo.post("/graphql", json=body).json()["data"]["searchFilings"]
    assert len(hits) == 20
    assert all(holds(hit["filing"]) for hit in hits)
    [exact] = exact_distances(demo_url, [literal(HashingEmbedder().embed([query])[0])], 20, filters)
    assert sum(1 - hit["score"] <= exact[-1] + TIE for hit in hits) >= 19


def test_an_ingested_filing_is_found_by_its_words_at_once(
    gql: Query, writer: str, sql: StatementLog
) -> None:
    phrase = "tokamak fusion reactor commissioning"
    ingested = gql(
        "mutation($input: IngestFilingInput!) { ingestFiling(input: $input) { accessionNumber } }",
        {"input": {"ticker": "MSFT", "accessionNumber": "0000789019-26-777777", "formType": "8-K",
                   "filedAt": "2026-10-01T12:00:00Z", "title": "Current report",
                   "summary": f"Microsoft announces {phrase} at its new campus."}},
        authorization=f"Bearer {writer}",
    )  # fmt: skip
    assert "errors" not in ingested, ingested
    for mode in ("TEXT", "HYBRID", "VECTOR"):
        found = gql(SEARCH, {"query": phrase, "mode": mode, "first": 3})["data"]["searchFilings"]
        assert found[0]["filing"]["accessionNumber"] == "0000789019-26-777777", mode
        assert phrase in found[0]["filing"]["summary"]
        assert [hit["score"] for hit in found] == sorted((h["score"] for h in found), reverse=True)
    sql.clear()
    gql(SEARCH, {"query": "fusion", "mode": "TEXT", "first": 3})
    assert len(sql) == 2  # the search with its filings; their companies


def test_text_search_takes_web_search_syntax(gql: Query) -> None:
    def found(query: str) -> list[str]:
        hits = gql(SEARCH, {"query": query, "mode": "TEXT", "first": 100})["data"]
        return [hit["filing"]["summary"].lower() for hit in hits["searchFilings"]]

    assert all("litigation" in summary for summary in found("litigation"))
    both = found('"share repurchases" -litigation')
    assert both and all("share repurchases" in s and "litigation" not in s for s in both)
    assert found("the of and") == []  # nothing to go by: no hits, no error


def test_searches_and_neighbours_are_batched(gql: Query, sql: StatementLog) -> None:
    aliases = " ".join(
        f'q{index}: searchFilings(query: "{topic}", first: 3) {{ score filing {{ title }} }}'
        for index, topic in enumerate(TOPICS[:8])
    )
    sql.clear()
    result = gql(f"{{ {aliases} }}")
    assert "errors" not in result and all(len(hits) == 3 for hits in result["data"].values())
    assert len(sql) == 1, sql.statements
    sql.clear()
    result = gql("""{ companies(first: 20) { nodes { ticker similarCompanies(first: 3) { ticker }
                    filings(first: 5) { nodes { accessionNumber
                      similarFilings { score filing { accessionNumber } } } } } } }""")
    companies = result["data"]["companies"]["nodes"]
    assert len(sql) == 4, sql.statements  # companies, their filings, and each kind of neighbour
    for company in companies:
        neighbours = [c["ticker"] for c in company["similarCompanies"]]
        assert len(neighbours) == 3 and company["ticker"] not in neighbours
        for filing in company["filings"]["nodes"]:
            similar = filing["similarFilings"]
            assert len(similar) == 5
            assert filing["accessionNumber"] not in [
                s["filing"]["accessionNumber"] for s in similar
            ]
            assert [s["score"] for s in similar] == sorted(
                (s["score"] for s in similar), reverse=True
            )


def test_similar_filings_are_the_nearest(gql: Query, database_url: str) -> None:
    """On the small data set the index finds the exact nearest neighbours."""
    accession = "0000320193-24-000039"
    source = gql(f'{{ filing(accessionNumber: "{accession}") {{ title }} }}')["data"]["filing"]
    if source is None:  # take any AAPL filing instead
        nodes = gql(
            '{ company(ticker: "AAPL") { filings(first: 1) { nodes { accessionNumber } } } }'
        )
        accession = nodes["data"]["company"]["filings"]["nodes"][0]["accessionNumber"]
    hits = gql(
        f'{{ filing(accessionNumber: "{accession}") {{ similarFilings(first: 5) {{ score }} }} }}'
    )["data"]["filing"]["similarFilings"]

    async def exact() -> list[float]:
        connection = await asyncpg.connect(pg(database_url))
        try:
            rows = await connection.fetch(
                """SELECT 1 - (f.embedding <=> s.embedding) FROM filings f, filings s
                   WHERE s.accession_number = $1 AND f.id <> s.id
                   ORDER BY f.embedding <=> s.embedding LIMIT 5""",
                accession,
            )
            return [row[0] for row in rows]
        finally:
            await connection.close()

    assert [round(hit["score"], 9) for hit in hits] == [round(s, 9) for s in asyncio.run(exact())]


@pytest.mark.parametrize(
    ("statement", "table"), [(SIMILAR_FILINGS, "filings"), (SIMILAR_COMPANIES, "companies")]
)
def test_neighbours_of_each_key_come_from_the_index(
    database_url: str, statement: TextClause, table: str
) -> None:
    """Each key's neighbours are an HNSW index scan, as the loaders plan them: a sequential
    scan and sort of the whole table per key would cost PostgreSQL time growing with it."""

    async def plan() -> tuple[str, int]:
        db = await create_reader(pg(database_url))
        try:
            sql, names = db.compiled(statement)
            async with db.pool.acquire() as connection, connection.transaction():
                await connection.execute(f"ANALYZE {table}")
                keys = await connection.fetchval(f"SELECT array_agg(id) FROM {table}")
                await connection.execute(PREFER_INDEX)
                params = {"keys": keys[:100], "first": 5}
                arguments = [params[name] for name in names]
                rows = await connection.fetch(f"EXPLAIN (ANALYZE) {sql}", *arguments)
            return "\n".join(row[0] for row in rows), len(params["keys"])
        finally:
            await db.pool.close()

    explained, keys = asyncio.run(plan())
    assert f"Index Scan using ix_{table}_embedding on {table}" in explained, explained
    assert f"loops={keys})" in explained.split(f"ix_{table}_embedding", 1)[1].split("\n")[0]
    assert f"Seq Scan on {table}" not in explained, explained


@pytest.mark.parametrize(
    ("query", "argument", "message"),
    [
        ('searchFilings(query: "")', "query", "needs something"),
        ('searchFilings(query: "   ")', "query", "needs something"),
        (f'searchFilings(query: "{"x" * 1001}")', "query", "at most 1000"),
        ('searchFilings(query: "x", first: 0)', "first", "between 1 and 100"),
        ('searchFilings(query: "x", first: 101)', "first", "between 1 and 100"),
        ('searchFilings(query: "x", tickers: [' + ", ".join(['"A"'] * 101) + "])", "tickers",
         "at most 100"),
        ('company(ticker: "AAPL") { similarCompanies(first: 500) { ticker } }', "first",
         "between 1 and 100"),
    ],
)  # fmt: skip
def test_bad_search_input(gql: Query, query: str, argument: str, message: str) -> None:
    selection = query if "{" in query else query + " { score }"
    result = gql(f"{{ {selection} }}")
    [error] = result["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["argument"] == argument
    assert message in error["message"]


def test_hashing_embedder() -> None:
    embedder = HashingEmbedder()
    a, b, c, nothing = embedder.embed(
        [
            "Goodwill impairment charges",
            "an impairment of goodwill",
            "Cybersecurity incident",
            "the",
        ]
    )
    assert a is not None and b is not None and c is not None and nothing is None
    assert math.isclose(sum(x * x for x in a), 1.0)
    assert embedder.embed(["Goodwill impairment charges"]) == [a]  # deterministic

    def cosine(x: list[float], y: list[float]) -> float:
        return sum(p * q for p, q in zip(x, y, strict=True))

    assert cosine(a, b) > 0.5 > abs(cosine(a, c))


class WideEmbedder(HashingEmbedder):
    name = "wide"
    dimensions = 768


def test_an_embedder_that_does_not_fit_refuses_to_start(database_url: str) -> None:
    async def run() -> None:
        engine = create_engine(database_url)
        try:
            with pytest.raises(EmbedderMismatch, match=r"768-dimensional.*holds 384"):
                await check_embeddings(engine, WideEmbedder())
            await check_embeddings(engine, HashingEmbedder())  # what seeded it
            async with engine.begin() as conn:
                await mark_embeddings(conn, WideEmbedder())
            with pytest.raises(EmbedderMismatch, match=r"made by the wide embedder.*reindex"):
                await check_embeddings(engine, HashingEmbedder())
            async with engine.begin() as conn:
                await mark_embeddings(conn, HashingEmbedder())
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_reindex_makes_what_seeding_made(database_url: str) -> None:
    tables = ("filings", "companies")

    async def run() -> tuple[list[Any], list[Any], int, list[tuple[int, int]]]:
        engine = create_engine(database_url)

        async def embeddings() -> list[Any]:
            async with engine.connect() as conn:
                return [
                    (
                        await conn.execute(text(f"SELECT id, embedding::text FROM {t} ORDER BY id"))
                    ).all()
                    for t in tables
                ]

        try:
            before = await embeddings()
            async with engine.begin() as conn:
                for table in tables:
                    await conn.execute(text(f"UPDATE {table} SET embedding = NULL"))
            seen: list[tuple[int, int]] = []
            count = await reindex(engine, HashingEmbedder(), 100, lambda *done: seen.append(done))
            return before, await embeddings(), count, seen
        finally:
            await engine.dispose()

    before, after, count, progress = asyncio.run(run())
    assert after == before
    assert all(embedding is not None for rows in after for _, embedding in rows)
    total = len(before[0])
    assert count == total
    assert progress[-1] == (total, total) and len(progress) == math.ceil(total / 100)


def test_reindex_command_names_the_embedder(database_url: str, tmp_path: Path) -> None:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CORPGRAPH_")},
        "CORPGRAPH_DATABASE_URL": database_url,
        "CORPGRAPH_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "graph", "reindex"],
        env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"Re-embedded \d+ filings with the hashing embedder\.\n", done.stdout)
    assert "Embedding filings" in done.stderr  # the progress bar
    chosen = {**environment, "CORPGRAPH_EMBEDDER": "word2vec"}
    refused = subprocess.run(
        [sys.executable, "-m", "graph", "reindex"],
        env=chosen, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode != 0 and "CORPGRAPH_EMBEDDER='word2vec'" in refused.stderr


@pytest.mark.e2e
def test_reindex_command_on_the_default_data_set(demo_url: str, tmp_path: Path) -> None:
    """The README's path to semantic search: every batch within reindex's own statement
    timeout, whatever the API's (CORPGRAPH_STATEMENT_TIMEOUT, here 1 s). Last in this module:
    it leaves the HNSW index with a dead entry per filing."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CORPGRAPH_")},
        "CORPGRAPH_DATABASE_URL": demo_url,
        "CORPGRAPH_DATA_DIR": str(tmp_path / "data"),
        "CORPGRAPH_STATEMENT_TIMEOUT": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "graph", "reindex"],
        env=environment, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == "Re-embedded 20928 filings with the hashing embedder.\n"
