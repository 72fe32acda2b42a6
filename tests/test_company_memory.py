"""The worker's memory of company rows (loaders/cache.py `CompanyMemory`): a company read
once is answered by id, ticker and CIK without SQL or Redis until its rows expire, and the
response cache still learns which companies an answer was read from."""

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from graph.app import create_app
from graph.services import services_of
from graph.settings import Settings
from loaders.cache import CompanyMemory
from loaders.request import Loaders
from tests.conftest import Query, StatementLog

ENTITIES = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Company { ticker } } }"


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    """Memory on, and no Redis entity cache: every read that is not remembered is SQL."""
    remembering = settings.model_copy(
        update={"company_memory_ttl": timedelta(minutes=1), "entity_cache": False}
    )
    with TestClient(create_app(remembering)) as test_client:
        yield test_client


def memory_hits() -> float:
    labels = {"cache": "company_memory", "result": "hit"}
    return REGISTRY.get_sample_value("corpgraph_cache_lookups_total", labels) or 0.0


def test_a_company_read_once_is_answered_from_memory_by_every_key(
    gql: Query, sql: StatementLog
) -> None:
    query = '{ company(ticker: "MSFT") { name cik } }'
    first = gql(query)
    assert len(sql) == 1, sql.statements
    sql.clear()
    hits = memory_hits()
    assert gql(query)["data"] == first["data"]
    assert len(sql) == 0, sql.statements
    cik = first["data"]["company"]["cik"]
    by_cik = gql(ENTITIES, {"r": [{"__typename": "Company", "cik": cik}]})
    assert by_cik["data"]["_entities"] == [{"ticker": "MSFT"}]
    assert len(sql) == 0, sql.statements
    by_id = gql('{ filings(tickers: ["MSFT"], first: 2) { nodes { company { ticker } } } }')
    assert [n["company"] for n in by_id["data"]["filings"]["nodes"]] == [{"ticker": "MSFT"}] * 2
    assert len(sql) == 1, sql.statements  # the filings; their company is remembered by id
    assert memory_hits() == hits + 3


def test_an_unknown_ticker_is_asked_again_every_time(gql: Query, sql: StatementLog) -> None:
    """Only rows are remembered, never their absence: a company loaded later is found."""
    for _ in range(2):
        assert gql('{ company(ticker: "NOPE") { name } }')["data"] == {"company": None}
    assert len(sql) == 2, sql.statements


def load_twice(client: TestClient, memory: CompanyMemory, pause: float) -> tuple[Any, set[str]]:
    """IBM read by one request, then by another that tracks the companies it reads."""
    reader = services_of(client.app).reader

    async def read() -> tuple[Any, set[str]]:
        await Loaders(reader, None, memory=memory).company_by_ticker.load("IBM")
        await asyncio.sleep(pause)
        second = Loaders(reader, None, memory=memory)
        noted = second.track_companies()
        return await second.company_by_ticker.load("IBM"), noted

    return client.portal.call(read)  # type: ignore[union-attr,no-any-return]


def test_answers_from_memory_are_noted_for_the_response_cache(
    client: TestClient, sql: StatementLog
) -> None:
    row, noted = load_twice(client, CompanyMemory(timedelta(minutes=1)), 0)
    assert row.ticker == "IBM"
    assert noted == {str(row.id)}  # so that IBM's next filing drops the answer
    assert len(sql) == 1, sql.statements


def test_remembered_rows_expire(client: TestClient, sql: StatementLog) -> None:
    row, _ = load_twice(client, CompanyMemory(timedelta(seconds=0.2)), 0.3)
    assert row.ticker == "IBM"
    assert len(sql) == 2, sql.statements
