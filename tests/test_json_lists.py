"""Lists of leaf-only objects that PostgreSQL renders as JSON (loaders/json_lists.py) in
compiled runs: the same bytes as the standard executor's Python path, for strings, floats,
dates and instants at their edges, nulls, aliases, fragments and `__typename`; one statement
per level; the same actual cost; and the standard path, invisibly, for what Python alone
serializes right (or refuses)."""

import random
import struct
from typing import Any

import orjson
import pytest
from graphql import GraphQLSchema, OperationDefinitionNode, parse
from graphql.execution.executor import Executor
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from graph.execution.compiled import CompiledExecutor
from graph.services import services_of
from schema.schema import build_schema
from tests.conftest import BOTH_PATHS, REPO, StatementLog
from tests.test_fast_path import compiled_runs, run_in_portal, same
from tests.test_series import fetch

pytestmark = pytest.mark.executors
STORAGE_PATHS = BOTH_PATHS  # financial_metrics is a hypertable on TimescaleDB

EDGE_FLOATS = [
    *(100.0, -0.0, 0.0, 0.1, 1 / 3, 2.0**53, 5e-324, 1.7976931348623157e308, -2.5e-5),
    *(1e-4, 1e-5, 1.5e-5, 1e-6, 1.5e-7, 9.99e15, 1e15, 1.2345678901234567e15, 1e16, 1.5e16),
    *(123456789.125, 1e21, 1e22, -1e300, 391035000000.0, 6.11, 2.5e-308),
]
STRANGE_TEXTS = ['say "hi"', "back\\slash", "new\nline\ttab\r", "\x01\x1f\x7f", "é 😀 \u2028"]
ACCESSION = "json-lists-edge"
UNTRUSTED = "json-lists-nan"

METRIC_FIELDS = "name value unit periodStart periodEnd fiscalYear fiscalPeriod reportedAt"
DOCUMENTS = [
    f'{{ filing(accessionNumber: "{ACCESSION}") {{ metrics {{ {METRIC_FIELDS} }} }} }}',
    f'{{ filing(accessionNumber: "{ACCESSION}") {{ metrics {{ t: __typename v: value '
    "n: name name periodEnd end: periodEnd } } }",
    f'{{ filing(accessionNumber: "{ACCESSION}") {{ metrics {{ ...M '
    "... on Metric { unit } } } } fragment M on Metric { value name unit }",
    f'{{ filing(accessionNumber: "{ACCESSION}") {{ one: metrics(names: ["m3", "text1"]) {{ '
    "value name } all: metrics { fiscalYear } } }",
    '{ company(ticker: "AAPL") { filings(first: 3) { nodes { metrics { name value '
    "periodEnd } } } } }",
]
NOT_AS_JSON = [
    # directives: the operation has no plan
    f'{{ filing(accessionNumber: "{ACCESSION}") {{ metrics {{ name value @skip(if: true) '
    "unit @include(if: false) } } }",
    # a field with a resolver among the items' fields
    f'{{ filing(accessionNumber: "{ACCESSION}") {{ metrics {{ name filing {{ formType }} }} }} }}',
]


def json_lists() -> float:
    return REGISTRY.get_sample_value("corpgraph_compiled_json_lists_total") or 0.0


def random_doubles(count: int) -> list[float]:
    """Doubles of every magnitude, drawn from their bits (no NaN or infinity)."""
    chooser = random.Random(25)
    found: list[float] = []
    while len(found) < count:
        (value,) = struct.unpack("<d", chooser.getrandbits(64).to_bytes(8, "little"))
        if value == value and abs(value) != float("inf"):
            found.append(value)
    return found


@pytest.fixture(scope="module")
def filings(database_url: str) -> None:
    """Two filings of AAPL's: one with edge values (every few rows some nulls), one with NaN."""
    rows: list[tuple[Any, ...]] = []
    floats = EDGE_FLOATS + random_doubles(1500)
    for i, value in enumerate(floats):
        rows.append((ACCESSION, f"m{i}", value, "USD", i % 3 == 0, i, None))
    for i, text in enumerate(STRANGE_TEXTS):
        rows.append((ACCESSION, f"text{i}", float(i), text[:16], False, i, text))
    rows.append((UNTRUSTED, "m0", float("nan"), "USD", False, 0, None))
    fetch(
        database_url,
        """INSERT INTO filings (company_id, accession_number, form_type, filed_at)
           SELECT id, a, '10-K', '2024-02-01T21:30:00Z'
           FROM companies, unnest($1::text[]) AS a WHERE ticker = 'AAPL'""",
        [ACCESSION, UNTRUSTED],
    )
    fetch(
        database_url,
        """INSERT INTO financial_metrics (company_id, filing_id, name, value, unit, period_start,
             period_end, fiscal_year, fiscal_period, reported_at)
           SELECT f.company_id, f.id, coalesce(r.label, r.name), r.value, r.unit,
             CASE WHEN r.nulls THEN NULL ELSE date '2023-07-01' END,
             date '2024-06-30' - r.i, CASE WHEN r.nulls THEN NULL ELSE 2024 END,
             CASE WHEN r.nulls THEN NULL ELSE 'FY' END,
             timestamptz '2024-02-01T21:30:00Z' + r.i * interval '1.5 second'
           FROM unnest($1::text[], $2::text[], $3::float8[], $4::text[], $5::bool[], $6::int[],
                       $7::text[]) AS r(accession, name, value, unit, nulls, i, label)
           JOIN filings f ON f.accession_number = r.accession""",
        *map(list, zip(*rows, strict=True)),
    )


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    return build_schema()._schema


@pytest.mark.parametrize("document", DOCUMENTS)
def test_leaf_lists_are_rendered_by_postgresql_as_python_renders_them(
    client: TestClient, schema: GraphQLSchema, filings: None, document: str
) -> None:
    standard = run_in_portal(client, schema, document, None, Executor)
    before, answered = json_lists(), compiled_runs()[0]
    compiled = run_in_portal(client, schema, document, None, CompiledExecutor)
    assert compiled_runs()[0] == answered + 1
    assert json_lists() > before  # the JSON path was taken
    assert not standard.errors
    same(compiled, standard)


@pytest.mark.parametrize("document", NOT_AS_JSON)
def test_other_selections_take_the_python_path(
    client: TestClient, schema: GraphQLSchema, filings: None, document: str
) -> None:
    standard = run_in_portal(client, schema, document, None, Executor)
    before = json_lists()
    same(run_in_portal(client, schema, document, None, CompiledExecutor), standard)
    assert json_lists() == before


def test_a_value_python_refuses_takes_the_standard_path(
    client: TestClient, schema: GraphQLSchema, filings: None, sql: StatementLog
) -> None:
    """NaN: the JSON statement says it does not trust the list; the standard executor then
    answers with graphql-core's error, reading the rows (one statement more)."""
    document = f'{{ filing(accessionNumber: "{UNTRUSTED}") {{ metrics {{ name value }} }} }}'
    standard = run_in_portal(client, schema, document, None, Executor)
    sql.clear()
    answered, abandoned = compiled_runs()
    compiled = run_in_portal(client, schema, document, None, CompiledExecutor)
    assert compiled_runs() == (answered, abandoned + 1)
    assert standard.errors
    same(compiled, standard)
    assert ["array_agg" in statement for statement in sql.statements] == [False, True, False]


def test_heavy_is_one_statement_per_level_with_the_same_cost(
    client: TestClient, sql: StatementLog
) -> None:
    heavy = (
        (REPO / "ops/bench/heavy.graphql")
        .read_text()
        .replace("Information Technology", "Financials")
    )
    before = json_lists()
    sql.clear()
    answer = client.post("/graphql", json={"query": heavy}).json()
    assert "errors" not in answer
    assert len(sql.statements) == 3  # companies, their filings, the filings' metrics
    filings = [f for c in answer["data"]["companies"]["nodes"] for f in c["filings"]["nodes"]]
    metrics = sum(len(filing["metrics"]) for filing in filings)
    assert metrics > 100
    planned = services_of(client.app).settings.executor == "compiled"
    assert json_lists() == before + planned * len(filings)
    assert sum("array_agg" in statement for statement in sql.statements) == planned
    pipeline = services_of(client.app).pipeline
    assert pipeline.cost_control is not None
    document = parse(heavy)
    (operation,) = document.definitions
    assert isinstance(operation, OperationDefinitionNode)
    costing = pipeline.cost_control.model.costing(document, operation, None)
    assert answer["extensions"]["cost"]["actualQueryCost"] == costing.actual(answer["data"])
    assert costing.actual(answer["data"]) >= metrics  # each metric object costs


def test_the_encoded_answer_is_valid_json(client: TestClient, filings: None) -> None:
    document = DOCUMENTS[0]
    response = client.post("/graphql", json={"query": document})
    metrics = orjson.loads(response.content)["data"]["filing"]["metrics"]
    assert len(metrics) == len(EDGE_FLOATS) + 1500 + len(STRANGE_TEXTS)
    texts = {metric["name"] for metric in metrics} & set(STRANGE_TEXTS)
    assert texts == set(STRANGE_TEXTS)
