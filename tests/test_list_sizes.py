"""List-size arguments are checked before an operation is costed: a cost is never negative and
never falls when a list grows. The cases are generated from the schema's own `@listSize`
fields, so a new paged field is covered without being listed here."""

import itertools
from collections.abc import Collection, Iterator
from typing import Any

import pytest
from graphql import (
    GraphQLArgument,
    GraphQLEnumType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_list_type,
    is_object_type,
    parse,
)
from starlette.testclient import TestClient

from graph.app import create_app
from graph.pipeline.argument_sizes import ARGUMENT_SIZES
from graph.pipeline.cost import ListSizeError
from graph.settings import Settings, Tier
from resolvers.pagination import MAX_PAGE_SIZE
from tests.conftest import StatementLog, new_api_key
from tests.test_cost import MODEL, remaining

SCHEMA = MODEL.schema
SCALAR_LITERALS = {
    "Int": "1",
    "Float": "1.0",
    "Boolean": "true",
    "Date": '"2024-01-01"',
    "DateTime": '"2024-01-01T00:00:00Z"',
}
IN_RANGE = (1, 2, 5, 10, 20, 50, 99, 100)
OUT_OF_RANGE: tuple[Any, ...] = (0, -1, -10_000_000, 101, 2**31 - 1)


def literal(type_: GraphQLInputType) -> str:
    """Some valid literal of an input type (for required arguments on the way)."""
    if isinstance(type_, GraphQLNonNull):
        return literal(type_.of_type)
    if isinstance(type_, GraphQLList):
        return f"[{literal(type_.of_type)}]"
    if isinstance(type_, GraphQLEnumType):
        return str(next(iter(type_.values)))
    if isinstance(type_, GraphQLInputObjectType):
        required = {
            n: f.type for n, f in type_.fields.items() if isinstance(f.type, GraphQLNonNull)
        }
        return "{" + ", ".join(f"{n}: {literal(t)}" for n, t in required.items()) + "}"
    assert isinstance(type_, GraphQLScalarType)
    return SCALAR_LITERALS.get(type_.name, '"AAPL"')


def required_arguments(
    arguments: dict[str, GraphQLArgument], skip: Collection[str] = ()
) -> list[str]:
    return [
        f"{name}: {literal(argument.type)}"
        for name, argument in arguments.items()
        if name not in skip and isinstance(argument.type, GraphQLNonNull)
    ]


def call(name: str, arguments: list[str]) -> str:
    return f"{name}({', '.join(arguments)})" if arguments else name


def routes() -> dict[str, str]:
    """For each object type reachable from Query, a selection that reaches it, with `{}`
    where its own selection goes: breadth first, so each route is one of the shortest."""
    query = SCHEMA.query_type
    assert query is not None
    found = {query.name: "{}"}
    frontier = [query]
    while frontier:
        reached: list[GraphQLObjectType] = []
        for parent in frontier:
            for name, field in parent.fields.items():
                target = get_named_type(field.type)
                if not is_object_type(target) or target.name in found or name.startswith("_"):
                    continue
                step = call(name, required_arguments(field.args))
                found[target.name] = found[parent.name].replace("{}", f"{{ {step} {{}} }}")
                assert isinstance(target, GraphQLObjectType)
                reached.append(target)
        frontier = reached
    return found


def sliced_fields() -> list[tuple[str, str, str]]:
    """(type, field, slicing argument) of every `@listSize` with slicing arguments."""
    return [
        (type_name, field_name, argument)
        for (type_name, field_name), config in sorted(MODEL.fields.items())
        for argument in config.slicing_arguments
    ]


def document_for(type_name: str, field_name: str, argument: str) -> str:
    """An operation that reaches the field, sizing it with `$n`, and a sibling of its own."""
    parent = SCHEMA.get_type(type_name)
    assert isinstance(parent, GraphQLObjectType)
    field: GraphQLField = parent.fields[field_name]
    arguments = [f"{argument}: $n", *required_arguments(field.args, skip=(argument,))]
    sized = MODEL.fields[(type_name, field_name)].sized_fields  # a connection's nodes
    below = f"{{ {sized[0]} {{ __typename }} }}" if sized else "{ __typename }"
    selection = f"sized: {call(field_name, arguments)} {below} __typename"
    route = routes()[type_name].replace("{}", f"{{ {selection} }}")
    return f"query($n: Int) {route}"


def requested(document: str, n: Any) -> int:
    parsed = parse(document)
    operation = get_operation_ast(parsed)
    assert operation is not None
    return MODEL.costing(parsed, operation, {"n": n}).requested


CASES = sliced_fields()


def test_every_sliced_field_is_covered() -> None:
    """The generator finds the schema's paged fields (it cannot pass by finding none)."""
    assert len(CASES) >= 9
    assert {(t, f) for t, f, _ in CASES} >= {("Query", "companies"), ("Company", "filings")}
    unreachable = {t for t, _, _ in CASES} - routes().keys()
    assert not unreachable


@pytest.mark.parametrize(("type_name", "field_name", "argument"), CASES)
def test_cost_is_monotone_and_never_negative(
    type_name: str, field_name: str, argument: str
) -> None:
    document = document_for(type_name, field_name, argument)
    costs = [requested(document, n) for n in IN_RANGE]
    assert all(cost >= 0 for cost in costs), (document, costs)
    assert costs == sorted(costs), (document, costs)
    assert costs[-1] > costs[0], (document, costs)  # the argument does size the list


@pytest.mark.parametrize(("type_name", "field_name", "argument"), CASES)
def test_out_of_range_sizes_are_refused(type_name: str, field_name: str, argument: str) -> None:
    document = document_for(type_name, field_name, argument)
    for n in OUT_OF_RANGE:
        with pytest.raises(ListSizeError) as refused:
            requested(document, n)
        assert refused.value.extensions == {"code": "BAD_USER_INPUT", "argument": argument}
        assert f"{type_name}.{field_name}" in refused.value.message


@pytest.mark.parametrize(
    "query",
    [
        # an alias beside a heavy field, a fragment, an inline fragment, a literal
        "{ heavy: companies(first: 100) { nodes { metrics { value } } } "
        'cheap: company(ticker: "AAPL") { similarCompanies(first: -10000000) { name } } }',
        "{ ...F } fragment F on Query { filings(last: -5) { nodes { title } } }",
        '{ company(ticker: "A") { ... on Company { filings(first: 0) { totalCount } } } }',
        '{ searchFilings(query: "x", first: -1) { score } }',
    ],
)
def test_hostile_sizes_anywhere_are_refused(query: str) -> None:
    parsed = parse(query)
    operation = get_operation_ast(parsed)
    assert operation is not None
    with pytest.raises(ListSizeError):
        _ = MODEL.costing(parsed, operation, None).requested


# Lists sized by a rule of graph/pipeline/cost.py rather than a directive: by the length of a list
# argument, and by the calendar buckets between `from` and `to`, for every choice of the enums
RULED = [tuple(coordinate.split(".")) for coordinate in sorted(ARGUMENT_SIZES)]
EARLIER = ("2026-09-29", "2026-06-01", "2025-01-01", "2020-01-01", "2010-01-01", "1900-01-01")
LATER = ("1900-01-01", "1970-01-01", "2000-06-30", "2020-01-01", "2026-09-30", "2100-01-01")


def ruled_field(type_name: str, field_name: str) -> GraphQLField:
    parent = SCHEMA.get_type(type_name)
    assert isinstance(parent, GraphQLObjectType)
    field: GraphQLField = parent.fields[field_name]
    return field


def items_selection(field: GraphQLField) -> str:
    """A selection of the field's items and of every list of objects below them."""
    item = get_named_type(field.type)
    if not isinstance(item, GraphQLObjectType):
        return ""
    lists = [
        name
        for name, below in item.fields.items()
        if is_list_type(get_nullable_type(below.type))
        and is_object_type(get_named_type(below.type))
    ]
    return "{ __typename " + " ".join(f"{name} {{ __typename }}" for name in lists) + " }"


def ruled_requested(type_name: str, field_name: str, given: dict[str, str]) -> int:
    field = ruled_field(type_name, field_name)
    arguments = [f"{n}: {v}" for n, v in given.items()]
    arguments += required_arguments(field.args, skip=given)
    selection = f"sized: {call(field_name, arguments)} {items_selection(field)} __typename"
    return requested(routes()[type_name].replace("{}", f"{{ {selection} }}"), None)


def enum_choices(field: GraphQLField) -> list[dict[str, str]]:
    """Every combination of the values of the field's enum arguments."""
    enums = {
        name: list(named.values)
        for name, argument in field.args.items()
        if isinstance(named := get_named_type(argument.type), GraphQLEnumType)
    }
    return [dict(zip(enums, values, strict=True)) for values in itertools.product(*enums.values())]


def growing(costs: list[int], why: Any) -> None:
    assert all(cost >= 0 for cost in costs), (why, costs)
    assert costs == sorted(costs), (why, costs)
    assert costs[-1] > costs[0], (why, costs)


def test_every_ruled_field_is_sized_by_its_arguments() -> None:
    assert {("Query", "metricSeries"), ("Company", "priceSeries")} <= set(RULED)
    assert not {t for t, _ in RULED} - routes().keys()


@pytest.mark.parametrize(("type_name", "field_name"), RULED)
def test_ruled_cost_grows_with_every_list_and_range(type_name: str, field_name: str) -> None:
    field = ruled_field(type_name, field_name)
    lists = [n for n, a in field.args.items() if is_list_type(get_nullable_type(a.type))]
    dated = {n for n, a in field.args.items() if get_named_type(a.type).name == "Date"}
    assert lists or dated == {"from", "to"}, "a ruled field is sized by a list or a range"
    for choice in enum_choices(field):
        for name in lists:
            sized = [choice | {name: "[" + ", ".join(['"A"'] * n) + "]"} for n in IN_RANGE]
            costs = [ruled_requested(type_name, field_name, given) for given in sized]
            growing(costs, (field_name, name, choice))
        if dated:
            widening = [{"from": f'"{day}"', "to": '"2026-09-30"'} for day in EARLIER]
            widening_forward = [{"from": '"1969-01-01"', "to": f'"{day}"'} for day in LATER]
            for ranges in (widening, widening_forward):
                costs = [ruled_requested(type_name, field_name, choice | r) for r in ranges]
                growing(costs, (field_name, choice, ranges))


SLOW = Tier(ceiling=1000, capacity=2000, restore_rate=0.001)  # no restoring to blur the sums
HOSTILE = (
    "{ all: companies(first: 100) { nodes { filings(first: 100) { nodes { title } } } } "
    'mine: company(ticker: "AAPL") { filings(first: -10000000) { nodes { title } } } }'
)


@pytest.fixture(scope="module")
def slow(settings: Settings) -> Iterator[TestClient]:
    tiers = {tier: SLOW for tier in ("anonymous", "free", "pro", "enterprise")}
    with TestClient(create_app(settings.replace(tiers=tiers))) as client:
        yield client


def test_a_negative_size_neither_runs_nor_adds_to_the_budget(
    slow: TestClient, database_url: str, sql: StatementLog
) -> None:
    key = new_api_key(database_url)
    before = remaining(slow, key)
    sql.clear()
    response = slow.post(
        "/graphql",
        json={"query": HOSTILE},
        headers={"authorization": f"Bearer {key}", "accept": "application/graphql-response+json"},
    )
    body = response.json()
    assert response.status_code == 400 and "data" not in body, body
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "first"}
    assert "Company.filings" in error["message"]
    assert len(sql) == 0, sql.statements
    assert remaining(slow, key) == before - 1  # only the probe itself was charged


def test_a_negative_size_is_refused_over_websocket(slow: TestClient) -> None:
    query = "subscription { filingAdded { company { filings(last: -3) { totalCount } } } }"
    with slow.websocket_connect("/graphql", subprotocols=["graphql-transport-ws"]) as ws:
        ws.send_json({"type": "connection_init", "payload": {}})
        assert ws.receive_json()["type"] == "connection_ack"
        ws.send_json({"id": "1", "type": "subscribe", "payload": {"query": query}})
        message = ws.receive_json()
        assert message["id"] == "1", message
        # (as an `error` message, or a `next` with errors, as cost refusals come today)
        payload = message["payload"]
        (error,) = payload["errors"] if isinstance(payload, dict) else payload
        assert error["extensions"]["code"] == "BAD_USER_INPUT", message


@pytest.mark.parametrize(("type_name", "field_name", "argument"), CASES)
def test_the_schema_states_the_bound_that_is_enforced(
    type_name: str, field_name: str, argument: str
) -> None:
    """Each slicing argument's description names the range the cost model and the resolvers
    hold it to (one constant, resolvers/pagination.MAX_PAGE_SIZE)."""
    parent = SCHEMA.get_type(type_name)
    assert isinstance(parent, GraphQLObjectType)
    description = parent.fields[field_name].args[argument].description or ""
    assert f"(1-{MAX_PAGE_SIZE}" in description, (type_name, field_name, argument, description)
    assert MODEL.max_list_size == MAX_PAGE_SIZE
