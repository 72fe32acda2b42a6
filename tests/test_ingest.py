"""`ingestFiling`: the write path, its checks and its idempotency."""

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from starlette.testclient import TestClient

from db.engine import create_engine
from db.ingest import from_json, problems_of
from resolvers.subscriptions import position_of
from tests.conftest import BOTH_PATHS, Query, new_api_key

STORAGE_PATHS = BOTH_PATHS  # tests/conftest.py: plain PostgreSQL, and TimescaleDB

INGEST = """mutation($input: IngestFilingInput!) { ingestFiling(input: $input) {
    accessionNumber formType filedAt fiscalYear fiscalPeriod title ingestCursor
    company { ticker } metrics { name value unit periodStart periodEnd } } }"""


def filing(**overrides: Any) -> dict[str, Any]:
    return {
        "ticker": "aapl",
        "accessionNumber": "0000320193-26-900001",
        "formType": "10-Q",
        "filedAt": "2026-10-30T21:05:00Z",
        "periodEnd": "2026-09-27",
        "fiscalYear": 2026,
        "fiscalPeriod": "Q4",
        "title": "Quarterly report",
        "metrics": [
            {"name": "revenue", "value": 94.93e9, "unit": "USD",
             "periodStart": "2026-06-29", "periodEnd": "2026-09-27"},
            {"name": "total_assets", "value": 364.98e9, "unit": "USD", "periodEnd": "2026-09-27"},
        ],
        **overrides,
    }  # fmt: skip


@pytest.fixture(scope="module")
def writer_key(database_url: str) -> str:
    return new_api_key(database_url, "pro", ("filings:write",))


Ingest = Callable[..., dict[str, Any]]


@pytest.fixture
def ingest(client: TestClient, writer_key: str) -> Ingest:
    def run(input: dict[str, Any], key: str | None = writer_key) -> dict[str, Any]:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        body = {"query": INGEST, "variables": {"input": input}}
        result: dict[str, Any] = client.post("/graphql", json=body, headers=headers).json()
        return result

    return run


def counts(database_url: str) -> tuple[int, int]:
    async def count() -> tuple[int, int]:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                filings = await conn.scalar(text("SELECT count(*) FROM filings"))
                metrics = await conn.scalar(text("SELECT count(*) FROM financial_metrics"))
                return int(filings or 0), int(metrics or 0)
        finally:
            await engine.dispose()

    return asyncio.run(count())


def test_ingest_then_read(ingest: Ingest, gql: Any, database_url: str) -> None:
    before = counts(database_url)
    body = ingest(filing())
    assert "errors" not in body, body
    stored = body["data"]["ingestFiling"]
    assert stored["company"] == {"ticker": "AAPL"}
    assert stored["filedAt"] == "2026-10-30T21:05:00Z"
    assert stored["metrics"] == [
        {"name": "revenue", "value": 94.93e9, "unit": "USD",
         "periodStart": "2026-06-29", "periodEnd": "2026-09-27"},
        {"name": "total_assets", "value": 364.98e9, "unit": "USD",
         "periodStart": None, "periodEnd": "2026-09-27"},
    ]  # fmt: skip
    assert counts(database_url) == (before[0] + 1, before[1] + 2)
    read = gql('{ filing(accessionNumber: "0000320193-26-900001") { title ingestCursor } }')
    assert read["data"]["filing"] == {
        "title": "Quarterly report",
        "ingestCursor": stored["ingestCursor"],
    }
    newest = gql('{ filings(first: 1, tickers: ["AAPL"]) { nodes { accessionNumber } } }')
    assert newest["data"]["filings"]["nodes"] == [{"accessionNumber": "0000320193-26-900001"}]
    # the mutation, 3 fetches (the filing, its company, its metrics), 2 objects, 12 metrics
    assert body["extensions"]["cost"]["requestedQueryCost"] == 10 + 3 * 4 + 1 + 1 + 12


def test_the_same_filing_again_changes_nothing(ingest: Ingest, database_url: str) -> None:
    first = ingest(filing(accessionNumber="0000320193-26-900002"))["data"]["ingestFiling"]
    before = counts(database_url)
    reordered = filing(accessionNumber="0000320193-26-900002")
    reordered["metrics"] = list(reversed(reordered["metrics"]))
    again = ingest(reordered)
    assert "errors" not in again, again
    assert again["data"]["ingestFiling"] == first
    assert counts(database_url) == before


def test_two_values_of_one_metric_in_the_other_order_are_the_same_filing(
    ingest: Ingest, database_url: str
) -> None:
    """Fingerprints sorted metrics by name alone: reordered, they were a CONFLICT."""
    later = {**REVENUE, "periodStart": "2026-06-29"}
    earlier = {**later, "periodStart": "2026-03-30", "periodEnd": "2026-06-28", "value": 2.0}
    first = ingest(filing(accessionNumber="0000320193-26-900004", metrics=[later, earlier]))
    assert "errors" not in first, first
    before = counts(database_url)
    again = ingest(filing(accessionNumber="0000320193-26-900004", metrics=[earlier, later]))
    assert again["data"] == first["data"]
    assert counts(database_url) == before


def test_other_content_under_the_same_number_conflicts(ingest: Ingest, database_url: str) -> None:
    ingest(filing(accessionNumber="0000320193-26-900003"))
    before = counts(database_url)
    body = ingest(filing(accessionNumber="0000320193-26-900003", title="Amended"))
    assert body["data"] is None
    assert [e["extensions"]["code"] for e in body["errors"]] == ["CONFLICT"]
    assert counts(database_url) == before


def test_ingestion_order_is_the_cursor_order(ingest: Ingest) -> None:
    cursors = [
        ingest(filing(accessionNumber=f"0000320193-26-90001{i}"))["data"]["ingestFiling"][
            "ingestCursor"
        ]
        for i in range(3)
    ]
    sequences = [position_of(cursor) for cursor in cursors]
    assert sequences == sorted(sequences) and len(set(sequences)) == 3


REVENUE = {"name": "revenue", "value": 1.0, "unit": "USD", "periodEnd": "2026-09-27"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"accessionNumber": "320193-26-1"}, "accessionNumber"),
        ({"ticker": "NOPE"}, "ticker"),
        ({"formType": "ten k"}, "formType"),
        ({"filedAt": "2099-01-01T00:00:00Z"}, "filedAt"),
        ({"periodEnd": "2026-12-31"}, "periodEnd"),
        ({"fiscalPeriod": "Q7"}, "fiscalPeriod"),
        ({"title": "x" * 1001}, "title"),
        ({"metrics": [REVENUE, REVENUE]}, "metrics[1].name"),
        ({"metrics": [{**REVENUE, "name": "Revenue!"}]}, "metrics[0].name"),
        ({"metrics": [{**REVENUE, "periodStart": "2027-01-01"}]}, "metrics[0].periodStart"),
        ({"metrics": [{**REVENUE, "unit": ""}]}, "metrics[0].unit"),
        # implausible values
        ({"metrics": [{**REVENUE, "value": 1.797e308}]}, "metrics[0].value"),
        ({"metrics": [{**REVENUE, "value": -2e15}]}, "metrics[0].value"),
        ({"metrics": [{**REVENUE, "periodEnd": "0001-01-01"}]}, "metrics[0].periodEnd"),
        ({"filedAt": "0001-01-01T00:00:00Z"}, "filedAt"),
        ({"fiscalYear": -5}, "fiscalYear"),
        ({"fiscalYear": 2099}, "fiscalYear"),
        ({"periodEnd": "0001-01-01"}, "periodEnd"),
        # a period past the filing: "9999-12-31" broke every series of the company
        ({"metrics": [{**REVENUE, "periodEnd": "9999-12-31"}]}, "metrics[0].periodEnd"),
        ({"metrics": [{**REVENUE, "fiscalPeriod": "QQQQQ"}]}, "metrics[0].fiscalPeriod"),
        # a final newline, or another script's digits: stored, or an internal error
        ({"accessionNumber": "0000320193-26-900099\n"}, "accessionNumber"),
        ({"accessionNumber": "\u0660" * 10 + "-26-900099"}, "accessionNumber"),
        ({"formType": "8-K\n"}, "formType"),
        ({"metrics": [{**REVENUE, "name": "revenue\n"}]}, "metrics[0].name"),
        ({"documentText": "hi", "documentContentType": "text/plain\n"}, "documentContentType"),
    ],
)
def test_bad_input_is_refused_by_field(
    ingest: Ingest, database_url: str, overrides: dict[str, Any], field: str
) -> None:
    before = counts(database_url)
    body = ingest(filing(**{"accessionNumber": "0000320193-26-900099", **overrides}))
    assert body["data"] is None
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert field in error["extensions"]["fields"], error
    assert field in error["message"]
    assert counts(database_url) == before


NUL_CASES = [
    ({"ticker": "AA\x00PL"}, "ticker"),
    ({"title": "Quarterly\x00report"}, "title"),
    ({"summary": "\x00"}, "summary"),
    ({"metrics": [{**REVENUE, "unit": "US\x00D"}]}, "metrics[0].unit"),
]


def test_an_unknown_ticker_is_not_echoed_whole(ingest: Ingest) -> None:
    body = ingest(filing(**{"ticker": "X" * 100_000}))
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert len(error["message"]) < 200, len(error["message"])


@pytest.mark.parametrize(("overrides", "field"), NUL_CASES)
def test_nul_characters_are_refused_by_field(
    ingest: Ingest, database_url: str, overrides: dict[str, Any], field: str
) -> None:
    """PostgreSQL's text holds no NUL: refused before anything runs over GraphQL (naming the
    variable), and by field when the same input comes from a file (`corpgraph ingest`)."""
    before = counts(database_url)
    input = filing(**{"accessionNumber": "0000320193-26-900096", **overrides})
    body = ingest(input)
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "variable": "input"}, body
    assert counts(database_url) == before
    assert field in problems_of(from_json(input), max_document_bytes=0)


@pytest.mark.parametrize("value", ["1e999", "-1e999", "NaN", "Infinity"])
def test_non_finite_values_never_reach_the_database(
    client: TestClient, writer_key: str, database_url: str, value: str
) -> None:
    """JSON has no NaN or Infinity; a literal too large for a double is refused as well."""
    before = counts(database_url)
    input = filing(accessionNumber="0000320193-26-900098", metrics=[{**REVENUE, "value": 7}])
    body = json.dumps({"query": INGEST, "variables": {"input": input}})
    body = body.replace('"value": 7', f'"value": {value}')
    headers = {"content-type": "application/json", "authorization": f"Bearer {writer_key}"}
    response = client.post("/graphql", content=body, headers=headers)
    result = response.json()
    assert [e["extensions"]["code"] for e in result["errors"]] in (
        ["BAD_REQUEST"],
        ["BAD_USER_INPUT"],
    )
    assert counts(database_url) == before


def test_writing_needs_a_key_with_the_scope(ingest: Ingest, database_url: str) -> None:
    anonymous = ingest(filing(accessionNumber="0000320193-26-900097"), key=None)
    assert [e["extensions"]["code"] for e in anonymous["errors"]] == ["UNAUTHENTICATED"]
    reader = new_api_key(database_url, "pro")
    unscoped = ingest(filing(accessionNumber="0000320193-26-900097"), key=reader)
    assert [e["extensions"]["code"] for e in unscoped["errors"]] == ["FORBIDDEN"]
    assert unscoped["data"] is None


def test_json_lines_load_the_good_and_report_the_bad(tmp_path: Path, database_url: str) -> None:
    missing_date = filing(accessionNumber="0000320193-26-900204")
    del missing_date["filedAt"]
    lines = [
        json.dumps(filing(accessionNumber="0000320193-26-900201")),
        "not json",
        json.dumps(filing(accessionNumber="26-1")),
        "",
        json.dumps(filing(accessionNumber="0000320193-26-900202", ticker="NOPE")),
        json.dumps(missing_date),
        json.dumps(filing(accessionNumber="0000320193-26-900201")),  # the same again
        json.dumps(filing(accessionNumber="0000320193-26-900203", metrics=[])),
    ]
    (tmp_path / "filings.jsonl").write_text("\n".join(lines) + "\n")
    before = counts(database_url)
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CORPGRAPH_")},
        "CORPGRAPH_DATABASE_URL": database_url,
        "CORPGRAPH_DATA_DIR": str(tmp_path / "data"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "graph", "ingest", str(tmp_path / "filings.jsonl")],
        env=environment, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    report = done.stdout.splitlines()
    assert report[0] == "2 accepted, 1 unchanged, 4 rejected"
    path = tmp_path / "filings.jsonl"
    assert report[1].startswith(f"  {path}:2: not JSON")
    assert report[2].startswith(f"  {path}:3: accessionNumber:")
    assert report[3].startswith(f"  {path}:5: ticker:")
    assert report[4] == f"  {path}:6: filedAt: is required"
    assert counts(database_url) == (before[0] + 2, before[1] + 2)


SERIES = """query($metric: String!, $aggregate: Aggregate) {
  metricSeries(tickers: ["MSFT"], metric: $metric, interval: YEAR, basis: ANNUAL,
               aggregate: $aggregate, from: "2026-10-15", to: "2026-10-15") {
    unit points { periodStart value count } } }"""


def annual_report(accession: str, **metric: Any) -> dict[str, Any]:
    """A 10-K of MSFT for a period no demo filing has, with one balance."""
    balance = {"name": "total_assets", "value": 512e9, "unit": "USD", "periodEnd": "2026-10-15"}
    return filing(ticker="MSFT", accessionNumber=accession, formType="10-K",
                  filedAt="2026-11-20T21:05:00Z", periodEnd="2026-10-15", fiscalYear=2026,
                  fiscalPeriod="FY", metrics=[{**balance, **metric}])  # fmt: skip


def test_an_ingested_annual_report_counts_in_annual_series(ingest: Ingest, gql: Query) -> None:
    """Its metrics take its fiscal year and period: the balance is a fiscal-year-end one."""
    assert "errors" not in ingest(annual_report("0000789019-26-900301"))
    answer = gql(SERIES, {"metric": "total_assets"})
    (series,) = answer["data"]["metricSeries"]
    assert series["points"] == [{"periodStart": "2026-01-01", "value": 512e9, "count": 1}]
    metrics = gql("""{ company(ticker: "MSFT") { metrics(names: ["total_assets"],
        from: "2026-10-15", to: "2026-10-15") { fiscalYear fiscalPeriod } } }""")
    assert metrics["data"]["company"]["metrics"] == [{"fiscalYear": 2026, "fiscalPeriod": "FY"}]


def test_a_restatement_comes_after_the_first_report_every_time(ingest: Ingest, gql: Query) -> None:
    """Two filings report the same value for the same period: both are listed, in the order
    they were filed, whatever plan PostgreSQL chooses."""
    restated = {"name": "goodwill", "value": 70e9, "unit": "USD", "periodEnd": "2026-10-15"}
    for accession, value in (("0000789019-26-900302", 69e9), ("0000789019-26-900303", 70e9)):
        body = ingest(annual_report(accession, **{**restated, "value": value}))
        assert "errors" not in body, body
    query = """{ company(ticker: "MSFT") { metrics(names: ["goodwill"]) {
        value filing { accessionNumber } } } }"""
    expected = [
        {"value": 69e9, "filing": {"accessionNumber": "0000789019-26-900302"}},
        {"value": 70e9, "filing": {"accessionNumber": "0000789019-26-900303"}},
    ]
    for _ in range(5):
        assert gql(query)["data"]["company"]["metrics"] == expected


def test_a_new_metric_has_its_kind_from_its_first_report(ingest: Ingest, gql: Query) -> None:
    """A balance no one reported before: known at once, never summed (metric_kinds)."""
    backlog = {"name": "order_backlog", "value": 3e9, "unit": "USD"}
    assert "errors" not in ingest(annual_report("0000789019-26-900304", **backlog))
    last = gql(SERIES, {"metric": "order_backlog"})["data"]["metricSeries"]
    assert last == [{"unit": "USD", "points": [
        {"periodStart": "2026-01-01", "value": 3e9, "count": 1}]}]  # fmt: skip
    summed = gql(SERIES, {"metric": "order_backlog", "aggregate": "SUM"})
    assert [e["extensions"]["code"] for e in summed["errors"]] == ["BAD_USER_INPUT"]


def test_a_fact_of_the_wrong_shape_is_refused(
    ingest: Ingest, gql: Query, database_url: str
) -> None:
    """A revenue without periodStart (or a balance with one) is refused by field: one client's
    input never turns revenue into a balance for every company (SUM still works for AAPL)."""
    before = counts(database_url)
    flow = {"name": "revenue", "value": 1e9, "unit": "USD", "periodEnd": "2026-10-15"}
    balance = {"periodStart": "2026-07-01"}  # total_assets over a period
    for number, metric in (("900305", flow), ("900306", balance)):
        body = ingest(annual_report(f"0000789019-26-{number}", **metric))
        (error,) = body["errors"]
        assert error["extensions"]["code"] == "BAD_USER_INPUT", body
        assert "metrics[0].periodStart" in error["extensions"]["fields"], body
    assert counts(database_url) == before
    summed = gql(
        '{ metricSeries(tickers: ["AAPL"], metric: "revenue", interval: YEAR, aggregate: SUM) '
        "{ points { value } } }"
    )
    assert "errors" not in summed and summed["data"]["metricSeries"][0]["points"], summed
