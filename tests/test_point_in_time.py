"""Point-in-time facts: what was known at an instant, and every revision of a value, against
a Python recomputation over the stored facts, on both storage paths."""

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any

import asyncpg
import orjson
import pytest
from starlette.testclient import TestClient

from graph.pipeline.persisted import sha256
from tests.conftest import BOTH_PATHS, Query, StatementLog, new_api_key
from tests.test_response_cache import get, hit, persisted
from tests.test_series import SERIES, assert_same, expected_series, fetch, got_series

STORAGE_PATHS = BOTH_PATHS  # tests/conftest.py: plain PostgreSQL, and TimescaleDB

Period = tuple[str, str, date, date | None]  # ticker, metric, period end, period start
FACTS = """SELECT c.ticker, m.name, m.period_end, m.period_start, m.value, m.reported_at,
                  m.filing_id, m.fiscal_period, f.accession_number
           FROM financial_metrics m JOIN companies c ON c.id = m.company_id
           JOIN filings f ON f.id = m.filing_id WHERE c.ticker = ANY($1)"""
METRICS = """query($ticker: String!, $asOf: DateTime) { company(ticker: $ticker) {
  metrics(asOf: $asOf) { name periodStart periodEnd value reportedAt isRevised
    filing { accessionNumber }
    firstReported { value reportedAt }
    revisions { value reportedAt filing { accessionNumber } } } } }"""


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def day(text: str | None) -> date | None:
    return None if text is None else date.fromisoformat(text)


@pytest.fixture(scope="module")
def restated_tickers(database_url: str) -> list[str]:
    """Tickers with a period whose value some later filing changed (the seed's restatements);
    not those that tests below file for."""
    rows = fetch(
        database_url,
        """SELECT DISTINCT c.ticker FROM financial_metrics m JOIN companies c ON c.id = m.company_id
           WHERE c.ticker NOT IN ('MSFT', 'JPM')
           GROUP BY c.ticker, m.name, m.period_end, m.period_start
           HAVING count(DISTINCT m.value) > 1 ORDER BY 1""",
    )
    tickers = [row[0] for row in rows]
    assert len(tickers) >= 3, "the seed restates some periods"
    return tickers[:4]


@pytest.fixture(scope="module")
def facts(database_url: str, restated_tickers: list[str]) -> dict[Period, list[asyncpg.Record]]:
    """Every stored fact of the tickers, by period, oldest revision first."""
    by_period: dict[Period, list[asyncpg.Record]] = defaultdict(list)
    rows = fetch(database_url, FACTS, [*restated_tickers, "AAPL"])
    for row in sorted(rows, key=lambda r: (r["reported_at"], r["filing_id"])):
        by_period[row["ticker"], row["name"], row["period_end"], row["period_start"]].append(row)
    return by_period


def known_at(
    facts: dict[Period, list[asyncpg.Record]], ticker: str, as_of: datetime
) -> dict[Period, asyncpg.Record]:
    """Each period's latest revision reported at or before `as_of`."""
    known = {}
    for period, revisions in facts.items():
        seen = [row for row in revisions if row["reported_at"] <= as_of]
        if period[0] == ticker and seen:
            known[period] = seen[-1]
    return known


def answered(gql: Query, ticker: str, as_of: datetime | None) -> list[dict[str, Any]]:
    variables = {"ticker": ticker, "asOf": as_of.isoformat() if as_of else None}
    body = gql(METRICS, variables)
    assert "errors" not in body, body["errors"]
    metrics: list[dict[str, Any]] = body["data"]["company"]["metrics"]
    return metrics


def period_of(ticker: str, metric: dict[str, Any]) -> Period:
    end = day(metric["periodEnd"])
    assert end is not None
    return ticker, metric["name"], end, day(metric["periodStart"])


def test_metrics_as_of_never_look_ahead_and_equal_a_recomputation(
    gql: Query, facts: dict[Period, list[asyncpg.Record]], restated_tickers: list[str]
) -> None:
    rng = random.Random(26)
    reported = sorted({row["reported_at"] for rows in facts.values() for row in rows})
    for ticker in restated_tickers:
        instants = [reported[0] - timedelta(days=1), *rng.sample(reported, 3)]
        instants += [reported[-1] - timedelta(days=rng.randrange(30, 900)) for _ in range(2)]
        for as_of in instants:
            got = answered(gql, ticker, as_of)
            expected = known_at(facts, ticker, as_of)
            assert {period_of(ticker, m): m["value"] for m in got} == {
                period: row["value"] for period, row in expected.items()
            }
            for metric in got:
                assert instant(metric["reportedAt"]) <= as_of  # no look-ahead
                revisions = metric["revisions"]
                assert all(instant(r["reportedAt"]) <= as_of for r in revisions)
                row = expected[period_of(ticker, metric)]
                assert metric["filing"]["accessionNumber"] == row["accession_number"]


def test_revisions_are_complete_and_ordered(
    gql: Query, facts: dict[Period, list[asyncpg.Record]], restated_tickers: list[str]
) -> None:
    revised = 0
    for ticker in restated_tickers:
        for metric in answered(gql, ticker, None):
            stored = facts[period_of(ticker, metric)]
            revisions = metric["revisions"]
            assert [(r["value"], r["filing"]["accessionNumber"]) for r in revisions] == [
                (row["value"], row["accession_number"]) for row in stored
            ]
            assert metric["firstReported"]["value"] == stored[0]["value"]
            assert metric["isRevised"] == (metric["value"] != stored[0]["value"])
            revised += metric["isRevised"]
    assert revised > 0


def test_without_as_of_every_reported_value_is_listed(
    gql: Query, facts: dict[Period, list[asyncpg.Record]], restated_tickers: list[str]
) -> None:
    """As before point-in-time reads: each report of a period, first report first."""
    ticker = restated_tickers[0]
    got = [(period_of(ticker, m), m["value"]) for m in answered(gql, ticker, None)]
    expected = [
        (period, row["value"]) for period, rows in facts.items() if period[0] == ticker
        for row in rows
    ]  # fmt: skip
    assert sorted(got, key=repr) == sorted(expected, key=repr)


def test_latest_as_of_now_is_each_periods_last_revision(
    gql: Query, facts: dict[Period, list[asyncpg.Record]], restated_tickers: list[str]
) -> None:
    now = datetime.now(UTC)
    for ticker in restated_tickers:
        got = {period_of(ticker, m): m["value"] for m in answered(gql, ticker, now)}
        latest = {p: rows[-1]["value"] for p, rows in facts.items() if p[0] == ticker}
        assert got == latest


BATCH = """query($first: Int!, $asOf: DateTime!) { companies(first: $first) { nodes {
  ticker metrics(asOf: $asOf) { value isRevised revisions { value } firstReported { value } }
} } }"""


@pytest.mark.parametrize("first", [5, 50])
def test_as_of_metrics_and_revisions_are_one_statement_each(
    gql: Query, sql: StatementLog, first: int
) -> None:
    body = gql(BATCH, {"first": first, "asOf": "2025-06-30T00:00:00Z"})
    assert "errors" not in body, body["errors"]
    assert len(body["data"]["companies"]["nodes"]) == first
    assert len(sql) == 3, sql.statements  # companies, metrics as of, revisions


@pytest.fixture(scope="module")
def writer_key(database_url: str) -> str:
    return new_api_key(database_url, "pro", ("filings:write",))


def ingest(client: TestClient, key: str, filing: dict[str, Any]) -> dict[str, Any]:
    mutation = """mutation($input: IngestFilingInput!) { ingestFiling(input: $input) {
        accessionNumber amends { accessionNumber } } }"""
    response = client.post(
        "/graphql",
        json={"query": mutation, "variables": {"input": filing}},
        headers={"authorization": f"Bearer {key}"},
    )
    body: dict[str, Any] = response.json()
    return body


def test_an_amendment_ingested_later_changes_latest_not_an_earlier_as_of(
    client: TestClient, gql: Query, writer_key: str, database_url: str
) -> None:
    (annual,) = fetch(
        database_url,
        """SELECT f.accession_number, f.filed_at, f.period_end, f.fiscal_year, m.value,
                  m.period_start
           FROM filings f JOIN companies c ON c.id = f.company_id
           JOIN financial_metrics m ON m.filing_id = f.id AND m.name = 'revenue'
                AND m.period_end = f.period_end
           WHERE c.ticker = 'MSFT' AND f.form_type = '10-K' ORDER BY f.filed_at DESC LIMIT 1""",
    )
    filed_at = annual["filed_at"] + timedelta(days=20)
    restated = round(annual["value"] * 1.02)
    amendment = {
        "ticker": "MSFT", "accessionNumber": "0000789019-26-926001", "formType": "10-K/A",
        "filedAt": filed_at.isoformat(), "periodEnd": annual["period_end"].isoformat(),
        "fiscalYear": annual["fiscal_year"], "fiscalPeriod": "FY",
        "amends": annual["accession_number"],
        "metrics": [{"name": "revenue", "value": restated, "unit": "USD",
                     "periodEnd": annual["period_end"].isoformat(),
                     "periodStart": annual["period_start"].isoformat()}],
    }  # fmt: skip
    before = answered(gql, "MSFT", filed_at - timedelta(seconds=1))
    then = (filed_at - timedelta(seconds=1)).isoformat()
    series_then = series_of(gql, ["MSFT"], "revenue", "ANNUAL", asOf=then)
    series_now = series_of(gql, ["MSFT"], "revenue", "ANNUAL")
    filed = ingest(client, writer_key, amendment)
    assert filed["data"]["ingestFiling"]["amends"] == {"accessionNumber": annual[0]}
    now = datetime.now(UTC)

    def revenue(metrics: list[dict[str, Any]]) -> dict[str, Any]:
        (found,) = (
            m for m in metrics
            if m["name"] == "revenue" and m["periodEnd"] == annual["period_end"].isoformat()
            and m["periodStart"] == annual["period_start"].isoformat()
        )  # fmt: skip
        return found

    earlier = answered(gql, "MSFT", filed_at - timedelta(seconds=1))
    assert earlier == before
    assert revenue(earlier)["value"] == annual["value"]
    latest = revenue(answered(gql, "MSFT", now))
    assert latest["value"] == restated and latest["isRevised"]
    assert latest["firstReported"]["value"] == annual["value"]
    assert [r["value"] for r in latest["revisions"]][-2:] == [annual["value"], restated]
    assert series_of(gql, ["MSFT"], "revenue", "ANNUAL", asOf=then) == series_then
    bucket = annual["period_end"].replace(day=1)
    changed = series_of(gql, ["MSFT"], "revenue", "ANNUAL")["MSFT"]
    assert [p for p in changed if p[0] != bucket] == [
        p for p in series_now["MSFT"] if p[0] != bucket
    ]
    assert (bucket, restated, 1) in changed


def test_an_amendment_names_a_filing_of_its_own_company(
    client: TestClient, writer_key: str
) -> None:
    amendment = {"ticker": "MSFT", "accessionNumber": "0000789019-26-926002",
                 "formType": "10-K/A", "filedAt": "2026-10-01T12:00:00Z",
                 "amends": "0000000000-26-000001"}  # fmt: skip
    body = ingest(client, writer_key, amendment)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "amends" in body["errors"][0]["message"]


FILINGS = """query($at: DateTime!) {
  filings(first: 100, asOf: $at, tickers: ["AAPL", "MSFT"]) { totalCount nodes { filedAt } }
  company(ticker: "MSFT") { filings(first: 100, asOf: $at) { totalCount nodes { filedAt } } } }"""


def test_filings_filed_after_as_of_do_not_exist_then(gql: Query, database_url: str) -> None:
    """At and before an instant a filing was filed at: it exists from that instant on."""
    filed = fetch(
        database_url,
        """SELECT c.ticker, f.filed_at FROM filings f JOIN companies c ON c.id = f.company_id
           WHERE c.ticker IN ('AAPL', 'MSFT') ORDER BY f.filed_at""",
    )
    for row in (filed[3], filed[len(filed) // 2]):
        for as_of in (row["filed_at"], row["filed_at"] - timedelta(microseconds=1)):
            body = gql(FILINGS, {"at": as_of.isoformat()})
            assert "errors" not in body, body["errors"]
            known = [r for r in filed if r["filed_at"] <= as_of]
            root, own = body["data"]["filings"], body["data"]["company"]["filings"]
            assert root["totalCount"] == len(known) == len(root["nodes"])
            assert own["totalCount"] == sum(r["ticker"] == "MSFT" for r in known)
            assert all(instant(n["filedAt"]) <= as_of for n in root["nodes"] + own["nodes"])


# caching: answers as of instants long past are settled


def persisted_get(client: TestClient, query: str, **variables: Any) -> Any:
    if not variables:
        return get(client, query)
    persisted(client, query, **variables)  # registered
    extensions = f'{{"persistedQuery":{{"version":1,"sha256Hash":"{sha256(query)}"}}}}'
    params = {"extensions": extensions, "variables": orjson.dumps(variables).decode()}
    return client.get("/graphql", params=params)


SETTLED = """query Settled($at: DateTime!) { company(ticker: "JPM") {
  metrics(names: ["revenue"], asOf: $at) { value revisions { value } } } }"""
WITH_PRICES = """query WithPrices($at: DateTime!) { company(ticker: "JPM") {
  metrics(names: ["revenue"], asOf: $at) { value } prices(from: "2026-09-01") { close } } }"""
WITH_LINKS = """query WithLinks($at: DateTime!) { company(ticker: "JPM") {
  metrics(names: ["revenue"], asOf: $at) { value filing { documentUrl } } } }"""


ROOT_FILINGS = """query RootFilings($at: DateTime!) { filings(first: 3, asOf: $at) {
  totalCount nodes { accessionNumber company { ticker } } } }"""


def test_an_answer_as_of_long_ago_is_kept_longer(client: TestClient) -> None:
    long_ago = "2025-01-01T00:00:00Z"
    for query in (SETTLED, ROOT_FILINGS):
        for _ in range(2):  # computed, then from the response cache
            answer = persisted_get(client, query, at=long_ago)
            assert answer.headers["cache-control"] == "public, max-age=86400", answer.json()
    recent = datetime.now(UTC).isoformat()
    assert persisted_get(client, SETTLED, at=recent).headers["cache-control"] == (
        "public, max-age=60"
    )
    for query in (WITH_PRICES, WITH_LINKS):  # read of now, too
        answer = persisted_get(client, query, at=long_ago)
        assert answer.headers["cache-control"] == "public, max-age=60", answer.json()


def test_a_backdated_filing_drops_a_settled_answer(
    client: TestClient, writer_key: str, database_url: str
) -> None:
    """A correction filed (by its filedAt) before asOf but ingested now changes the answer as
    of then: the response cache drops every answer read from its company, settled or not."""
    query = """query Backdated($at: DateTime!) { company(ticker: "JPM") {
      metrics(names: ["legal_reserve"], asOf: $at) { value } } }"""
    at = "2025-06-30T00:00:00Z"
    assert persisted(client, query, at=at)["data"]["company"]["metrics"] == []
    assert hit(persisted(client, query, at=at)) is True
    correction = {"ticker": "JPM", "accessionNumber": "0000019617-25-926003", "formType": "8-K",
                  "filedAt": "2025-03-03T12:00:00Z",
                  "metrics": [{"name": "legal_reserve", "value": 2e9, "unit": "USD",
                               "periodEnd": "2024-12-31"}]}  # fmt: skip
    assert "errors" not in ingest(client, writer_key, correction)
    after = persisted(client, query, at=at)
    assert hit(after) is False
    assert after["data"]["company"]["metrics"] == [{"value": 2e9}]


def test_the_seeded_amendments_name_their_annual_reports(gql: Query) -> None:
    query = """{ filings(first: 100, formTypes: ["10-K/A"]) { nodes {
      fiscalYear company { ticker } amends { formType fiscalYear company { ticker } } } } }"""
    nodes = gql(query)["data"]["filings"]["nodes"]
    assert nodes, "the seed amends some annual reports"
    for node in nodes:
        amended = node["amends"]
        assert amended["formType"] == "10-K"
        assert (amended["fiscalYear"], amended["company"]) == (node["fiscalYear"], node["company"])


# metricSeries: LATEST, AS_OF and FIRST_REPORTED

POINT_IN_TIME_SERIES = SERIES.replace(
    "$to: Date)", "$to: Date, $values: SeriesValues, $asOf: DateTime)"
).replace("to: $to)", "to: $to, values: $values, asOf: $asOf)")


def latest_by(as_of: datetime, revisions: list[asyncpg.Record]) -> asyncpg.Record | None:
    seen = [row for row in revisions if row["reported_at"] <= as_of]
    return seen[-1] if seen else None


def series_rows(
    facts: dict[Period, list[asyncpg.Record]], metric: str, pick: Any
) -> list[asyncpg.Record]:
    """One row per period of `metric`: `pick` chooses among its revisions (or None)."""
    rows = [pick(revisions) for period, revisions in facts.items() if period[1] == metric]
    return [row for row in rows if row is not None]


def series_of(gql: Query, tickers: list[str], metric: str, basis: str, **more: Any) -> Any:
    variables = {"tickers": tickers, "metric": metric, "interval": "MONTH", "basis": basis,
                 **more}  # fmt: skip
    return got_series(gql(POINT_IN_TIME_SERIES, variables))


@pytest.mark.parametrize("basis", ["QUARTERLY", "ANNUAL"])
def test_series_as_of_and_first_reported_equal_a_recomputation(
    gql: Query, facts: dict[Period, list[asyncpg.Record]], restated_tickers: list[str],
    basis: str,
) -> None:  # fmt: skip
    rng = random.Random(basis)
    tickers = [*restated_tickers, "AAPL"]
    reported = sorted({row["reported_at"] for rows in facts.values() for row in rows})
    for metric in ("revenue", "net_income", "total_liabilities"):
        for as_of in [*rng.sample(reported, 3), reported[0] - timedelta(days=1)]:
            got = series_of(gql, tickers, metric, basis, asOf=as_of.isoformat())
            known = series_rows(facts, metric, partial(latest_by, as_of))
            expected = expected_series(known, "MONTH", "LAST", basis)
            for ticker in tickers:
                assert_same(got[ticker], expected.get(ticker, []))
        first = series_of(gql, tickers, metric, basis, values="FIRST_REPORTED")
        expected = expected_series(
            series_rows(facts, metric, lambda r: r[0]), "MONTH", "LAST", basis
        )
        latest = series_of(gql, tickers, metric, basis)
        expected_latest = expected_series(
            series_rows(facts, metric, lambda r: r[-1]), "MONTH", "LAST", basis
        )
        for ticker in tickers:
            assert_same(first[ticker], expected[ticker])
            assert_same(latest[ticker], expected_latest[ticker])


def test_an_as_of_series_differs_from_the_latest_exactly_in_the_restated_periods(
    gql: Query, facts: dict[Period, list[asyncpg.Record]]
) -> None:
    """The bar: as of an instant between a period's first report and its restatement, the
    series differs from today's in the restated periods only, and shows nothing filed later."""
    restated = sorted(
        (rows[-1]["reported_at"], period) for period, rows in facts.items()
        if period[1] == "revenue" and len({row["value"] for row in rows}) > 1
        and period[3] is not None and (period[2] - period[3]).days > 300
    )  # fmt: skip
    assert restated, "the seed restates some annual revenue"
    changed_at, (ticker, metric, end, _) = restated[0]
    as_of = changed_at - timedelta(seconds=1)
    then = dict((p, v) for p, v, _ in series_of(gql, [ticker], metric, "ANNUAL",
                                                asOf=as_of.isoformat())[ticker])  # fmt: skip
    now = dict((p, v) for p, v, _ in series_of(gql, [ticker], metric, "ANNUAL")[ticker])
    differing = {p for p in then if then[p] != now[p]}
    expected = set()
    for period, rows in facts.items():
        if period[0] != ticker or period[1] != metric or period[3] is None:
            continue
        if (period[2] - period[3]).days < 300:
            continue
        seen = [row for row in rows if row["reported_at"] <= as_of]
        if seen and seen[-1]["value"] != rows[-1]["value"]:
            expected.add(period[2].replace(day=1))
    assert end.replace(day=1) in differing
    assert differing == expected
    known_ends = {
        p[2].replace(day=1) for p, rows in facts.items()
        if p[0] == ticker and p[1] == metric and rows[0]["reported_at"] <= as_of
    }  # fmt: skip
    assert set(then) <= known_ends  # nothing first filed after asOf


@pytest.mark.parametrize(
    ("values", "as_of", "argument"),
    [("AS_OF", None, "asOf"), ("LATEST", "2025-01-01T00:00:00Z", "values")],
)
def test_series_values_that_make_no_sense(
    gql: Query, values: str, as_of: str | None, argument: str
) -> None:
    variables = {"tickers": ["AAPL"], "metric": "revenue", "interval": "MONTH",
                 "values": values, "asOf": as_of}  # fmt: skip
    (error,) = gql(POINT_IN_TIME_SERIES, variables)["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": argument}


def test_fifty_tickers_as_of_take_one_statement(gql: Query, sql: StatementLog) -> None:
    companies = gql("{ companies(first: 50) { nodes { ticker } } }")["data"]["companies"]
    tickers = [company["ticker"] for company in companies["nodes"]]
    sql.clear()
    variables = {"tickers": tickers, "metric": "revenue", "interval": "MONTH",
                 "asOf": "2025-06-30T00:00:00Z"}  # fmt: skip
    answer = gql(POINT_IN_TIME_SERIES, variables)
    assert [s["ticker"] for s in answer["data"]["metricSeries"]] == tickers
    assert len(sql) == 1, sql.statements
