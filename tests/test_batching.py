"""DataLoaders: each level of a nested query is one SQL statement, whatever the page size."""

from typing import Any

import pytest
from redis import Redis

from graph.services import services_of
from graph.settings import Settings
from loaders import companies
from tests.conftest import Query, StatementLog

pytestmark = pytest.mark.executors  # the HTTP answers are the same with both

NESTED = """
query($sector: String!, $filings: Int!) {
  companies(first: 20, sector: $sector) {
    nodes { ticker filings(first: $filings) { nodes { accessionNumber metrics { name value } } } }
  }
}
"""


def metric_count(data: dict[str, Any]) -> int:
    return sum(
        len(filing["metrics"])
        for company in data["companies"]["nodes"]
        for filing in company["filings"]["nodes"]
    )


@pytest.mark.parametrize("page", [5, 50])
def test_nested_query_runs_one_statement_per_level(
    gql: Query, sql: StatementLog, page: int
) -> None:
    result = gql(NESTED, {"sector": "Information Technology", "filings": page})
    assert "errors" not in result
    assert len(result["data"]["companies"]["nodes"]) >= 5
    assert metric_count(result["data"]) > 50
    assert len(sql) == 3, sql.statements  # companies, filings, metrics


def test_total_count_adds_one_statement(gql: Query, sql: StatementLog) -> None:
    query = "{ companies(first: 10) { totalCount nodes { filings(first: 3) { totalCount } } } }"
    result = gql(query)
    assert result["data"]["companies"]["totalCount"] == 60
    assert len(sql) == 4, sql.statements  # companies, count, filings, filing counts


def test_entities_with_50_companies_is_one_statement(gql: Query, sql: StatementLog) -> None:
    tickers = [
        c["ticker"]
        for c in gql("{ companies(first: 50) { nodes { ticker } } }")["data"]["companies"]["nodes"]
    ]
    sql.clear()
    representations = [{"__typename": "Company", "ticker": t} for t in tickers]
    query = (
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Company { ticker name } } }"
    )
    result = gql(query, {"r": representations})
    assert [entity["ticker"] for entity in result["data"]["_entities"]] == tickers
    assert len(sql) == 1, sql.statements


@pytest.mark.parametrize("count", [1, 10, 100])
def test_entities_by_cik_is_one_statement_for_any_count(
    gql: Query, sql: StatementLog, count: int
) -> None:
    ciks = [
        c["cik"]
        for c in gql("{ companies(first: 60) { nodes { cik } } }")["data"]["companies"]["nodes"]
    ]
    representations = [{"__typename": "Company", "cik": ciks[i % len(ciks)]} for i in range(count)]
    sql.clear()
    query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Company { cik } } }"
    entities = gql(query, {"r": representations})["data"]["_entities"]
    assert [e["cik"] for e in entities] == [r["cik"] for r in representations]
    assert len(sql) == 1, sql.statements


def test_entities_mix_is_one_statement_per_loader(
    gql: Query, sql: StatementLog, settings: Settings
) -> None:
    filings = gql("{ filings(first: 5) { nodes { accessionNumber } } }")["data"]["filings"]["nodes"]
    assert settings.redis_url is not None
    Redis.from_url(settings.redis_url).flushdb()  # a cold entity cache
    sql.clear()
    representations = [
        {"__typename": "Company", "ticker": "AAPL"},
        {"__typename": "Company", "ticker": "MSFT"},
        {"__typename": "Company", "cik": "0000320193"},
        {"__typename": "Company", "cik": "0001045810"},
        *({"__typename": "Filing", "accessionNumber": f["accessionNumber"]} for f in filings),
    ]
    query = """query($r: [_Any!]!) { _entities(representations: $r) {
        ... on Company { ticker } ... on Filing { accessionNumber } } }"""
    result = gql(query, {"r": representations})
    entities = result["data"]["_entities"]
    assert [e.get("ticker") for e in entities[:4]] == ["AAPL", "MSFT", "AAPL", "NVDA"]
    assert [e["accessionNumber"] for e in entities[4:]] == [f["accessionNumber"] for f in filings]
    assert len(sql) == 3, sql.statements  # by ticker, by CIK, by accession number

    sql.clear()
    assert gql(query, {"r": representations})["data"]["_entities"] == entities
    assert len(sql) == 1, sql.statements  # warm: tickers and accession numbers from Redis
    assert "cik" in sql.statements[0]


def test_entities_by_global_id_batch_per_type(
    gql: Query, sql: StatementLog, settings: Settings
) -> None:
    """The `id` key (for node-router subgraphs) goes through the same loaders."""
    companies = gql("{ companies(first: 10) { nodes { id ticker } } }")["data"]["companies"]
    filings = gql("{ filings(first: 10) { nodes { id accessionNumber } } }")["data"]["filings"]
    nodes = companies["nodes"] + filings["nodes"]
    representations = [
        {"__typename": "Company" if "ticker" in node else "Filing", "id": node["id"]}
        for node in nodes
    ]
    assert settings.redis_url is not None
    Redis.from_url(settings.redis_url).flushdb()  # a cold entity cache
    sql.clear()
    query = """query($r: [_Any!]!) { _entities(representations: $r) {
        ... on Node { id } ... on Company { ticker } ... on Filing { accessionNumber } } }"""
    assert gql(query, {"r": representations})["data"]["_entities"] == nodes
    assert len(sql) == 2, sql.statements  # companies by CIK, filings by accession number


def test_invalidation_makes_the_next_read_go_to_postgres(
    client: Any, gql: Query, sql: StatementLog
) -> None:
    """The write path (a later issue) calls EntityCache.invalidate after its commit."""
    query = '{ company(ticker: "AAPL") { name } }'
    gql(query)  # cached now
    sql.clear()
    assert gql(query)["data"]["company"]["name"] == "Apple Inc."
    assert len(sql) == 0, sql.statements
    cache = services_of(client.app).entity_cache
    assert cache is not None
    client.portal.call(cache.invalidate, companies.CACHE_KIND, ["AAPL"])
    assert gql(query)["data"]["company"]["name"] == "Apple Inc."
    assert len(sql) == 1, sql.statements
