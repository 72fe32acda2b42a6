"""The sentence-model embedder, end to end: out of the default suite (it needs PyTorch).

pip install -e ".[dev,semantic]" && pytest -m semantic
"""

import asyncio
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from db.embeddings import HashingEmbedder, SentenceEmbedder, Vector, reindex
from db.engine import create_engine
from graph.app import create_app
from graph.settings import Settings

pytestmark = pytest.mark.semantic


@pytest.fixture(scope="module")
def model() -> SentenceEmbedder:
    return SentenceEmbedder()  # offline: the package carries the weights


def cosine(a: Vector | None, b: Vector | None) -> float:
    assert a is not None and b is not None
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_it_places_texts_by_meaning(model: SentenceEmbedder) -> None:
    texts = ["Revenue fell sharply", "Sales declined steeply", "A data breach exposed customers"]
    fell, declined, breach = model.embed(texts)
    assert model.dimensions == 384
    assert cosine(fell, declined) > cosine(fell, breach) + 0.2
    lexical = HashingEmbedder().embed(texts)
    assert abs(cosine(lexical[0], lexical[1])) < 0.2  # no words in common: hashing sees nothing


@pytest.fixture(scope="module")
def semantic(settings: Settings, model: SentenceEmbedder) -> Iterator[TestClient]:
    async def reindexed() -> None:
        engine = create_engine(settings.database_url.get_secret_value())  # type: ignore[union-attr]
        try:
            await reindex(engine, model)
        finally:
            await engine.dispose()

    asyncio.run(reindexed())
    with TestClient(create_app(settings.replace(embedder="minilm"))) as client:
        yield client


@pytest.mark.parametrize(
    ("query", "topic"),
    [
        ("hackers stole customer records", "cybersecurity incidents"),
        ("currency swings hurt overseas sales", "foreign exchange headwinds"),
        ("returning cash to shareholders with stock buybacks", "share repurchases"),
    ],
)
def test_vector_search_finds_filings_by_meaning(
    semantic: TestClient, query: str, topic: str
) -> None:
    """No word of the query is in the topic: only meaning finds it."""
    search = "{ searchFilings(query: $q, mode: VECTOR, first: 10) { filing { summary } } }"
    body = {"query": f"query($q: String!) {search}", "variables": {"q": query}}
    hits = semantic.post("/graphql", json=body).json()["data"]["searchFilings"]
    assert len(hits) == 10
    assert sum(topic in hit["filing"]["summary"] for hit in hits) >= 8


def test_a_server_with_the_other_embedder_refuses_to_start(
    semantic: TestClient, settings: Settings
) -> None:
    """The vectors are the sentence model's now (the fixture reindexed them)."""
    with pytest.raises(Exception, match="reindex"), TestClient(create_app(settings)):
        pass
