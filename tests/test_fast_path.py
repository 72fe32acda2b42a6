"""The fast path's conformance guard: every document gives the same response through
graph.execution.fast_path.FastExecutor as through graphql-core's standard executor. The module runs
with both `executor` settings (the app's), marked `executors`."""

import asyncio
import copy
import gc
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from inspect import isawaitable
from typing import Any

import orjson
import pytest
import strawberry
import yaml
from graphql import ExecutionResult, GraphQLSchema, execute, parse
from graphql.execution.executor import Executor
from graphql.execution.values import get_argument_values
from prometheus_client import REGISTRY

from graph.execution import compiled
from graph.execution.compiled import EXECUTORS, REASONS, CompiledExecutor
from graph.execution.fast_path import FastExecutor
from graph.pipeline import response_cache
from graph.pipeline.persisted import sha256
from graph.pipeline.pipeline import Pipeline
from graph.services import services_of
from graph.settings import Settings
from loaders.request import Loaders
from resolvers.context import Budget, Context
from schema.schema import build_schema
from tests.conftest import REPO

pytestmark = pytest.mark.executors

# ---- documents against the real schema and the small demo data set ----


def real_documents() -> list[tuple[str, dict[str, Any] | None]]:
    bench = [(REPO / f"ops/bench/{name}.graphql").read_text() for name in ("light", "heavy")]
    documents = [(bench[0], None), (bench[1].replace("Information Technology", "Financials"), None)]
    entries = yaml.safe_load((REPO / "tests/conformance.yaml").read_text())
    documents += [(entry["query"], entry.get("variables")) for entry in entries]
    manifest = orjson.loads((REPO / "ops/operations/persisted-query-manifest.json").read_bytes())
    return documents + [
        (operation["body"], OPERATION_VARIABLES[operation["name"]])
        for operation in manifest["operations"]
        if operation["type"] == "query"
    ]


# the frontend's persisted operations (ops/operations), with variables to run them
OPERATION_VARIABLES: dict[str, dict[str, Any]] = {
    "CompanyPage": {"ticker": "AAPL", "filings": 3},
    "SectorDashboard": {"sector": "Financials", "first": 5},
    "MetricsChart": {"ticker": "MSFT", "names": ["revenue", "eps_diluted"], "from": "2025-01-01"},
}


REAL_DOCUMENTS = real_documents()


# ---- a test-only schema that produces every error shape the fast path must leave alone ----


@strawberry.enum
class Color(Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Item(Named):
    count: int
    ratio: float
    label: str | None
    color: Color
    flag: bool


@strawberry.type
class Box:
    items: list[Item]
    maybe_items: list[Item | None] | None
    grid: list[list[int]]

    @strawberry.field
    def total(self) -> int:
        return len(self.items)

    @strawberry.field
    def tags(self) -> list[str | None]:
        return ["a", None, "b"]


@strawberry.type
class Place:
    @strawberry.field
    def where(self, info: strawberry.Info) -> str:
        """The response path and field nodes a resolver is given."""
        fields = ",".join(getattr(field, "name", "?") for field in info.selected_fields)
        return f"{'.'.join(map(str, info.path.as_list()))} {info.path.typename} {fields}"


@dataclass
class Lookalike:
    """Every attribute of an Item, but not one: `Item.is_type_of` says no."""

    name: str = "fake"
    count: int = 1


def item(**overrides: Any) -> Item:
    values: dict[str, Any] = {
        "name": "a",
        "count": 1,
        "ratio": 0.5,
        "label": None,
        "color": Color.RED,
        "flag": True,
        **overrides,
    }
    return Item(**values)


@strawberry.type
class ProbeQuery:
    @strawberry.field
    def good(self) -> Box:
        return Box(
            items=[item(), item(name="b", label="x", color=Color.BLUE)],
            maybe_items=[item(), None],
            grid=[[1, 2], [3]],
        )

    @strawberry.field
    def null_name(self) -> Box | None:
        return Box(items=[item(), item(name=None)], maybe_items=None, grid=[])

    @strawberry.field
    def nan_ratio(self) -> Box | None:
        return Box(items=[item(ratio=math.nan)], maybe_items=[item(ratio=math.inf)], grid=[])

    @strawberry.field
    def wrong_types(self) -> Box | None:
        return Box(
            items=[item(count="7"), item(count=2**40)],
            maybe_items=[item(flag="yes")],
            grid=[[1, None]],  # type: ignore[list-item]
        )

    @strawberry.field
    def null_item(self) -> Box | None:
        return Box(items=[item(), None], maybe_items=[], grid=[])  # type: ignore[list-item]

    @strawberry.field
    async def later(self) -> list[Item]:
        await asyncio.sleep(0)
        return [item(name="late"), item(name="later", ratio=2.0)]

    @strawberry.field
    def impostors(self) -> list[Item] | None:
        return [item(), Lookalike()]  # type: ignore[list-item]

    @strawberry.field
    def named(self) -> list[Named]:
        return [item(name="i")]

    @strawberry.field
    async def boom(self) -> int:
        raise ValueError("boom")

    @strawberry.field
    def must(self) -> Item:
        return None  # type: ignore[return-value]

    @strawberry.field
    def echo(self, text: str, times: int = 1) -> str:
        return text * times

    @strawberry.field
    async def places(self) -> list[Place]:
        return [Place(), Place()]

    @strawberry.field
    def not_a_list(self) -> list[int]:
        return 7  # type: ignore[return-value]


TEST_SCHEMA = strawberry.Schema(query=ProbeQuery)._schema
ITEM = "name count ratio label color flag __typename"
TEST_DOCUMENTS = [
    f"{{ good {{ total items {{ {ITEM} }} maybeItems {{ {ITEM} }} grid }} }}",
    f"{{ nullName {{ items {{ {ITEM} }} }} good {{ total }} }}",
    "{ nullName { total items { count } } }",
    "{ nanRatio { items { ratio } maybeItems { ratio name } } }",
    "{ wrongTypes { items { count } maybeItems { flag } grid } }",
    f"{{ nullItem {{ items {{ {ITEM} }} }} }}",
    f"{{ later {{ {ITEM} }} good {{ items {{ name }} }} }}",
    "{ named { name __typename ... on Item { count color } } }",
    "{ good { a: items { n: name c: count } b: items { name } } }",
    "{ good { items { ... on Item { name } ...F } } } fragment F on Item { ratio flag }",
    "{ good { items { name @skip(if: true) count @include(if: false) ratio } } }",
    "{ good { maybeItems { name } } later { name label } }",
    "{ nullName { items { name } } nanRatio { items { ratio } } wrongTypes { grid } }",
    "{ good { items { label } grid } named { __typename } }",
    "{ later { name } nullItem { total } wrongTypes { items { name } } }",
    "{ good { items { __typename ... on Named { name } } } }",
    "{ impostors { name count } good { items { name } } }",
    "{ later { name } boom good { total } }",
    "{ good { total } must { name } }",
    "{ later { name } must { name } boom }",
    '{ echo(text: "ab", times: 2) e: echo(text: "c") good { tags total } }',
    "{ places { where w: where } p: places { where } }",
    "{ places { ...W ...W } } fragment W on Place { where }",
    "{ notAList good { total } }",
    "{ named { name } places { where } }",
]


def run(
    schema: GraphQLSchema,
    document: str,
    variables: Any,
    executor: type[Executor[Any]],
    context: Any = None,
) -> ExecutionResult:
    async def go() -> ExecutionResult:
        result = execute(schema, parse(document), None, context, variables, executor_class=executor)
        return await result if isawaitable(result) else result

    return asyncio.run(go())


def same(a: ExecutionResult, b: ExecutionResult) -> None:
    """The same response bytes (keys in the same order; lists the compiled run embeds as
    PostgreSQL's JSON texts too) and the same errors."""
    assert orjson.dumps(a.data) == orjson.dumps(b.data)
    assert [e.formatted for e in a.errors or []] == [e.formatted for e in b.errors or []]


def compiled_runs() -> tuple[float, float]:
    """Queries answered from a plan, and compiled runs abandoned (any reason), so far."""
    answered = REGISTRY.get_sample_value("corpgraph_compiled_answered_total") or 0.0
    abandoned = sum(
        REGISTRY.get_sample_value("corpgraph_compiled_abandoned_total", {"reason": reason}) or 0.0
        for reason in REASONS
    )
    return answered, abandoned


FAST_EXECUTORS = [FastExecutor, CompiledExecutor]


@pytest.mark.parametrize("fast", FAST_EXECUTORS)
@pytest.mark.parametrize("document", TEST_DOCUMENTS)
def test_error_shapes_match_the_standard_executor(document: str, fast: type[Executor[Any]]) -> None:
    same(run(TEST_SCHEMA, document, None, fast), run(TEST_SCHEMA, document, None, Executor))


def test_a_compiled_run_with_an_error_is_abandoned_for_the_standard_path() -> None:
    compiled, abandoned = compiled_runs()
    result = run(TEST_SCHEMA, "{ later { name } boom }", None, CompiledExecutor)
    assert [error.message for error in result.errors or []] == ["boom"]
    assert compiled_runs() == (compiled, abandoned + 1)
    run(TEST_SCHEMA, "{ places { where } good { tags } }", None, CompiledExecutor)
    assert compiled_runs() == (compiled + 1, abandoned + 1)


@pytest.fixture(scope="module")
def real_schemas() -> tuple[GraphQLSchema, GraphQLSchema]:
    """As served (direct resolver calls), and with Strawberry's resolver wrapper everywhere."""
    return build_schema()._schema, build_schema(direct=False)._schema


@pytest.mark.parametrize("fast", FAST_EXECUTORS)
@pytest.mark.parametrize(("document", "variables"), REAL_DOCUMENTS)
def test_real_documents_match_the_standard_executor(
    client: Any,
    real_schemas: tuple[GraphQLSchema, GraphQLSchema],
    document: str,
    variables: dict[str, Any] | None,
    fast: type[Executor[Any]],
) -> None:
    served, reference = real_schemas
    answer = run_in_portal(client, served, document, variables, fast)
    standard = run_in_portal(client, reference, document, variables, Executor)
    same(answer, standard)


def test_most_real_documents_are_answered_from_a_plan(
    client: Any, real_schemas: tuple[GraphQLSchema, GraphQLSchema]
) -> None:
    """So that the guard above puts the compiled path itself to the test: a planned document
    is answered from its plan unless its answer has errors (then the standard path runs)."""
    answered = 0
    for document, variables in REAL_DOCUMENTS:
        compiled, abandoned = compiled_runs()
        result = run_in_portal(client, real_schemas[0], document, variables, CompiledExecutor)
        if compiled_runs()[0] > compiled:
            assert not result.errors, document
            answered += 1
        elif compiled_runs()[1] > abandoned:
            assert result.errors, document
    assert answered >= len(REAL_DOCUMENTS) // 2, (answered, len(REAL_DOCUMENTS))


BUDGET = Budget(
    limit=5000, cost=12, remaining=4988, full_at=datetime(2026, 1, 1, tzinfo=UTC).timestamp()
)


def run_in_portal(
    client: Any,
    schema: GraphQLSchema,
    document: str,
    variables: Any,
    executor: type[Executor[Any]],
) -> ExecutionResult:
    """Run on the app's event loop: its engine's connections belong to that loop."""

    async def go() -> ExecutionResult:
        context = Context(Loaders(services_of(client.app).reader, None), budget=BUDGET)
        # Strawberry's _entities pops `__typename` out of the representations it is given
        result = execute(
            schema,
            parse(document),
            None,
            context,
            copy.deepcopy(variables),
            executor_class=executor,
        )
        return await result if isawaitable(result) else result

    result: ExecutionResult = client.portal.call(go)
    return result


def forget_cached_answers(client: Any) -> None:
    cache = services_of(client.app).response_cache
    assert cache is not None
    redis = cache.redis

    async def forget() -> None:
        answers = [key async for key in redis.scan_iter(match=f"{response_cache.PREFIX}*")]
        if answers:
            await redis.delete(*answers)

    client.portal.call(forget)
    cache.forget_held()


def test_the_body_is_large_enough() -> None:
    assert len(REAL_DOCUMENTS) + len(TEST_DOCUMENTS) >= 50


@pytest.mark.parametrize("persisted", [False, True], ids=["sent", "persisted"])
@pytest.mark.parametrize("name", ["light", "heavy"])
def test_benchmark_documents_take_the_fast_path(
    client: Any, settings: Settings, name: str, persisted: bool
) -> None:
    document = (
        (REPO / f"ops/bench/{name}.graphql")
        .read_text()
        .replace("Information Technology", "Financials")
    )
    body: dict[str, Any] = {"query": document}
    if persisted:  # APQ: registered once, then sent by hash only
        apq = {"persistedQuery": {"version": 1, "sha256Hash": sha256(document)}}
        client.post("/graphql", json={"query": document, "extensions": apq})
        body = {"extensions": apq}
        forget_cached_answers(client)  # so that it runs again
    compiled, abandoned = compiled_runs()
    response = client.post("/graphql", json=body)
    assert "errors" not in response.json()
    if persisted:
        assert response.json()["extensions"]["responseCache"] == {"hit": False}
    planned = settings.executor == "compiled"  # standard: field by field, leaves inline
    assert compiled_runs() == (compiled + planned, abandoned)
    assert isinstance(services_of(client.app).pipeline, Pipeline)
    assert services_of(client.app).pipeline.executor_class is EXECUTORS[settings.executor]


def test_arguments_from_variables_are_read_once_per_run(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A field below a list is resolved once per item; its arguments, read from variables, are
    coerced once per compiled run (HEAVY's `filings` as typed clients send it)."""
    query = (
        'query($filings: Int!, $forms: [String!]) { companies(first: 5, sector: "Financials") '
        "{ nodes { ticker filings(first: $filings, formTypes: $forms) { nodes { formType } } } } }"
    )
    read: list[str] = []

    def counted(field: Any, node: Any, variables: Any = None) -> dict[str, Any]:
        read.append(node.name.value)
        return get_argument_values(field, node, variables)

    monkeypatch.setattr(compiled, "get_argument_values", counted)
    answered, abandoned = compiled_runs()
    variables = {"filings": 2, "forms": ["10-K"]}
    result = run_in_portal(client, build_schema()._schema, query, variables, CompiledExecutor)
    assert not result.errors and compiled_runs() == (answered + 1, abandoned)
    assert result.data is not None
    companies = result.data["companies"]["nodes"]
    forms = [f["formType"] for company in companies for f in company["filings"]["nodes"]]
    assert len(companies) == 5 and forms == ["10-K"] * 10
    assert read.count("filings") == 1


@pytest.mark.parametrize("name", ["light", "heavy"])
def test_without_a_plan_the_benchmark_documents_take_the_inline_leaves(
    client: Any, name: str
) -> None:
    """FastExecutor, which compiled runs fall back to, completes leaves and lists inline."""
    document = (
        (REPO / f"ops/bench/{name}.graphql")
        .read_text()
        .replace("Information Technology", "Financials")
    )
    schema = build_schema()._schema
    before, lists_before = FastExecutor.leaves_total, FastExecutor.lists_total
    result = run_in_portal(client, schema, document, None, FastExecutor)
    assert not result.errors
    leaves = FastExecutor.leaves_total - before
    assert leaves >= (15 if name == "light" else 1000), leaves
    # lists completed in one loop: LIGHT's filings (Filing implements Node, so each item's
    # type is checked) and HEAVY's metrics, one list per filing
    assert result.data is not None
    data = result.data
    companies = [data["company"]] if name == "light" else data["companies"]["nodes"]
    filings = sum(len(company["filings"]["nodes"]) for company in companies)
    assert FastExecutor.lists_total - lists_before == (1 if name == "light" else filings)


def test_a_request_leaves_nothing_for_the_cycle_collector(client: Any, settings: Settings) -> None:
    """Rows, contexts and executors die by reference counting when the response is built;
    cycles would keep a large response alive until a (long) collection."""
    document = (
        (REPO / "ops/bench/heavy.graphql")
        .read_text()
        .replace("Information Technology", "Financials")
    )
    client.post("/graphql", json={"query": document})  # warm: plans and documents cached
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        assert "errors" not in client.post("/graphql", json={"query": document}).json()
        gc.collect()
        ours = [
            type(o).__name__
            for o in gc.garbage
            if type(o).__module__.split(".")[0]
            in {"graph", "loaders", "resolvers", "schema", "graphql"}
        ]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert ours == []
