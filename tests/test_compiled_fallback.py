"""A compiled run given up for the standard executor (graph/execution/compiled.py): counted by
reason on /metrics, and answered from what the request's DataLoaders already read, with no
statement sent twice."""

import threading
from datetime import timedelta

import pytest
from graphql import GraphQLSchema
from graphql.execution.executor import Executor
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from graph.app import create_app
from graph.execution.compiled import EXECUTORS, CompiledExecutor
from graph.services import services_of
from graph.settings import Settings
from schema.schema import build_schema
from tests.conftest import StatementLog
from tests.test_fast_path import compiled_runs, run_in_portal, same

ABANDONED = "corpgraph_compiled_abandoned_total"
# the error is in a nullable object whose other fields read nothing: graphql-core cancels
# the siblings of a failed field, and theirs would leave the standard run's reads to timing
SIBLING_ERRORS = [
    "{ companies(first: 2) { totalCount nodes { ticker } } "
    'company(ticker: "MSFT") { name bad: filings(after: "junk") { totalCount } } }',
    "{ filings(first: 3) { totalCount nodes { accessionNumber company { ticker } } } "
    'company(ticker: "MSFT") { name bad: filings(before: "x") { totalCount } } }',
    "{ companies(first: 3) { totalCount nodes { ticker filings(first: 2) { totalCount "
    "nodes { accessionNumber metrics { name } } } } } "
    'company(ticker: "AAPL") { name bad: filings(first: 500) { totalCount } } }',
]


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_schema()._schema


@pytest.mark.parametrize("document", SIBLING_ERRORS)
def test_a_fallback_sends_no_statement_twice(
    client: TestClient, sql: StatementLog, schema: GraphQLSchema, document: str
) -> None:
    standard = run_in_portal(client, schema, document, None, Executor)
    expected = list(sql.statements)
    sql.clear()
    answered, abandoned = compiled_runs()
    compiled = run_in_portal(client, schema, document, None, CompiledExecutor)
    assert compiled_runs() == (answered, abandoned + 1)  # it was given up
    assert standard.errors
    same(compiled, standard)  # data, errors and their paths
    assert sorted(sql.statements) == sorted(expected)


def abandoned_on_metrics(client: TestClient, reason: str) -> float:
    text = client.get("/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == ABANDONED and sample.labels == {"reason": reason}:
                return float(sample.value)
    raise AssertionError(f"{ABANDONED} {{reason={reason!r}}} is not exposed")


@pytest.mark.executors
def test_abandoned_runs_are_counted_on_metrics_by_reason(
    client: TestClient, settings: Settings
) -> None:
    before = abandoned_on_metrics(client, "resolver_error")
    answer = client.post("/graphql", json={"query": SIBLING_ERRORS[0]}).json()
    assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert answer["data"] == {"companies": answer["data"]["companies"], "company": None}
    assert answer["data"]["companies"]["totalCount"] == 60
    planned = settings.executor == "compiled"  # standard: no plan to give up
    assert abandoned_on_metrics(client, "resolver_error") == before + planned
    assert abandoned_on_metrics(client, "null") >= 0  # every reason is exposed from the start
    client.post("/graphql", json={"query": "{ companies(first: 1) { nodes { ticker } } }"})
    assert abandoned_on_metrics(client, "resolver_error") == before + planned


# companies are locked (a test transaction holds the lock) and statements time out
FAILED_READ = '{ filings(first: 2) { nodes { accessionNumber } } company(ticker: "AAPL") { name } }'


def test_a_failed_read_is_not_sent_again(
    settings: Settings, companies_locked: threading.Event
) -> None:
    """DataLoader forgets a failed batch's keys; the fallback must not send it again."""
    answers, statements = {}, {}
    for executor in EXECUTORS:
        slow = settings.replace(
            executor=executor,
            redis_url=None,  # the entity cache would answer AAPL without the locked table
            statement_timeout=timedelta(milliseconds=300),
        )
        with TestClient(create_app(slow)) as client:
            sent: list[str] = []
            runs = compiled_runs()
            services_of(client.app).reader.observers.append(sent.append)
            answer = client.post("/graphql", json={"query": FAILED_READ}).json()
            assert compiled_runs()[1] == runs[1] + (executor == "compiled")  # given up
        answers[executor] = {"data": answer["data"], "errors": answer["errors"]}
        statements[executor] = sent
    assert answers["compiled"] == answers["standard"]
    assert answers["standard"]["data"]["company"] is None
    assert answers["standard"]["errors"][0]["extensions"]["code"] == "TIMEOUT"
    assert len(statements["standard"]) == 2, statements["standard"]  # filings, the company
    assert statements["compiled"] == statements["standard"]
