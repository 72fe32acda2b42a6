"""Relay connections: keyset cursors forward and backward, totalCount, ordering."""

from typing import Any

import pytest

from tests.conftest import Query

pytestmark = pytest.mark.executors  # the HTTP answers are the same with both

COMPANIES = """query($first: Int, $after: String, $last: Int, $before: String) {
  companies(first: $first, after: $after, last: $last, before: $before) {
    totalCount
    edges { cursor node { ticker } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""
FILINGS = """query($first: Int, $after: String, $last: Int, $before: String) {
  company(ticker: "AAPL") {
    filings(first: $first, after: $after, last: $last, before: $before) {
      totalCount
      nodes { accessionNumber filedAt }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}"""


def walk(
    gql: Query, query: str, path: list[str], forward: bool, size: int
) -> tuple[list[Any], int]:
    seen: list[Any] = []
    cursor = None
    while True:
        variables = (
            {"first": size, "after": cursor} if forward else {"last": size, "before": cursor}
        )
        connection = gql(query, variables)["data"]
        for key in path:
            connection = connection[key]
        items = connection.get("nodes") or [edge["node"] for edge in connection["edges"]]
        seen = seen + items if forward else items + seen
        info = connection["pageInfo"]
        more = info["hasNextPage"] if forward else info["hasPreviousPage"]
        if not more:
            return seen, connection["totalCount"]
        cursor = info["endCursor"] if forward else info["startCursor"]


@pytest.mark.parametrize("forward", [True, False])
def test_walking_companies_yields_each_once_in_ticker_order(gql: Query, forward: bool) -> None:
    items, total = walk(gql, COMPANIES, ["companies"], forward, size=7)
    tickers = [item["ticker"] for item in items]
    assert len(tickers) == total == 60
    assert tickers == sorted(set(tickers))


@pytest.mark.parametrize("forward", [True, False])
def test_walking_filings_yields_each_once_newest_first(gql: Query, forward: bool) -> None:
    items, total = walk(gql, FILINGS, ["company", "filings"], forward, size=4)
    keys = [(item["filedAt"], item["accessionNumber"]) for item in items]
    assert len(keys) == total > 10
    assert keys == sorted(set(keys), reverse=True)


def test_page_info_and_edge_cursors_agree(gql: Query) -> None:
    connection = gql(COMPANIES, {"first": 3})["data"]["companies"]
    info = connection["pageInfo"]
    assert info["hasNextPage"] and not info["hasPreviousPage"]
    assert info["startCursor"] == connection["edges"][0]["cursor"]
    assert info["endCursor"] == connection["edges"][-1]["cursor"]
    following = gql(COMPANIES, {"first": 3, "after": info["endCursor"]})["data"]["companies"]
    assert following["pageInfo"]["hasPreviousPage"]
    back = gql(COMPANIES, {"last": 3, "before": following["pageInfo"]["startCursor"]})
    assert back["data"]["companies"]["edges"] == connection["edges"]


def test_default_page_sizes(gql: Query) -> None:
    result = gql("{ companies { nodes { ticker filings { nodes { formType } } } } }")
    companies = result["data"]["companies"]["nodes"]
    assert len(companies) == 20
    assert all(len(company["filings"]["nodes"]) == 10 for company in companies)


def test_filters_search_sector_and_form_types(gql: Query) -> None:
    by_prefix = gql('{ companies(search: "am") { nodes { ticker name } } }')["data"]
    assert {"AMZN", "AMD", "AMAT", "AMGN"} <= {c["ticker"] for c in by_prefix["companies"]["nodes"]}
    by_name = gql('{ companies(search: "MICRO") { nodes { ticker } } }')["data"]
    assert {"MSFT", "AMD", "MU"} <= {c["ticker"] for c in by_name["companies"]["nodes"]}
    wildcard = gql('{ companies(search: "%") { totalCount } }')["data"]
    assert wildcard["companies"]["totalCount"] == 0  # LIKE wildcards are matched literally
    banks = gql('{ companies(first: 100, sector: "Financials") { nodes { sector } } }')["data"]
    assert {c["sector"] for c in banks["companies"]["nodes"]} == {"Financials"}
    annual = gql(
        '{ filings(first: 30, formTypes: ["10-K"], tickers: ["aapl"]) '
        "{ nodes { formType company { ticker } } } }"
    )
    nodes = annual["data"]["filings"]["nodes"]
    assert nodes and {(n["formType"], n["company"]["ticker"]) for n in nodes} == {("10-K", "AAPL")}


def test_filed_after_is_inclusive_and_filed_before_exclusive(gql: Query) -> None:
    newest = gql("{ filings(first: 1) { nodes { filedAt } } }")["data"]["filings"]["nodes"][0][
        "filedAt"
    ]
    query = """query($a: DateTime, $b: DateTime) {
        filings(filedAfter: $a, filedBefore: $b) { totalCount } }"""
    assert gql(query, {"a": newest})["data"]["filings"]["totalCount"] == 1
    total = gql("{ filings { totalCount } }")["data"]["filings"]["totalCount"]
    assert gql(query, {"b": newest})["data"]["filings"]["totalCount"] == total - 1


def test_metrics_and_prices_ranges_are_inclusive(gql: Query) -> None:
    query = """{ company(ticker: "MSFT") {
        metrics(names: ["revenue"], from: "2025-06-30", to: "2026-06-30") {
            periodStart periodEnd value }
        prices(from: "2026-09-28", to: "2026-09-30") { date close }
    } }"""
    company = gql(query)["data"]["company"]
    ends = {metric["periodEnd"] for metric in company["metrics"]}
    assert "2025-06-30" in ends and "2026-06-30" in ends
    assert all("2025-06-30" <= end <= "2026-06-30" for end in ends)
    assert [bar["date"] for bar in company["prices"]] == ["2026-09-28", "2026-09-29", "2026-09-30"]
