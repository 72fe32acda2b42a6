"""Queries run from a plan made once per operation, without graphql-core's per-field machinery.

graph/execution/fast_path.py completes default-resolved scalar leaves inline, but each field with a
resolver still takes graphql-core's path: a resolve info, a `Path`, argument coercion, a
coroutine to complete an awaited value, `complete_value`, `collect_subfields` and
`execute_fields`, some twenty calls before its children start. For a query whose selections
are all on object types (no abstract types, no directives), `plan_operation` walks the
document once; `CompiledRun` then runs it level by level: it calls the resolvers of a level,
awaits their awaitables together (so DataLoaders batch as they did), and completes the values
with the fast path's generated leaf completers. A list field that declares a `JsonList` and
whose items select only scalar columns is read as the objects' JSON texts, rendered by
PostgreSQL (loaders/json_lists.py), and embedded in the response as they are.

A compiled run only ever answers when the answer has no error. A resolver's exception, a null
in a non-null position, a value that is not the field's own type (a list that is not a list,
an object that fails `is_type_of`, a scalar the completers do not trust), and the run is
abandoned: the standard executor then runs the operation from the start, and the request's
DataLoaders answer from their cache what the abandoned run had loaded (every read goes through
them, root lists included: no statement runs twice; a list read as JSON is read again as
rows, by another statement). So errors, paths and null propagation stay graphql-core's own;
tests/test_fast_path.py guards it. `corpgraph_compiled_abandoned` counts the abandoned runs
by reason.
"""

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    Node,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    Undefined,
    ValueNode,
    VariableNode,
    is_abstract_type,
    is_leaf_type,
)
from graphql.execution.executor import Executor
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path
from prometheus_client import Counter

from graph.bounded import BoundedByBytes
from graph.execution.fast_path import Completer, FastExecutor, compiled_selection, inline_leaf
from loaders.json_lists import JSON_LIST, TYPENAME, JsonLeaf, JsonList, Selection, json_object

# a plan holds its operation's nodes, and they the whole text of its document: the plans kept
# are bounded by that text's size, as the document cache is (graph/pipeline/pipeline.py)
PLANS_KEPT_BYTES = 16_000_000

# why a compiled run is abandoned (the counter's `reason`)
RESOLVER_ERROR = "resolver_error"  # a resolver raised, or its awaitable did
NULL = "null"  # a null in a non-null field or list item
NOT_A_LIST = "not_a_list"  # a list field's value is not a list or tuple
WRONG_TYPE = "wrong_type"  # an object that fails its type's `is_type_of`
LEAF = "leaf"  # a scalar or enum value that does not serialize as is
UNEXPECTED = "unexpected"  # anything else the standard path should meet itself
REASONS = (RESOLVER_ERROR, NULL, NOT_A_LIST, WRONG_TYPE, LEAF, UNEXPECTED)

ANSWERED = Counter("corpgraph_compiled_answered", "Queries answered from their compiled plan")
JSON_LISTS = Counter(
    "corpgraph_compiled_json_lists",
    "Lists of objects in compiled answers whose JSON PostgreSQL rendered",
)
ABANDONED = Counter(
    "corpgraph_compiled_abandoned",
    "Compiled query runs given up for the standard executor, which answers them from the "
    "start, by reason: resolver_error, null, not_a_list, wrong_type, leaf, unexpected",
    ["reason"],
)
for reason in REASONS:  # exposed at 0 from the start, so that rates and alerts work
    ABANDONED.labels(reason)


class Unplannable(Exception):
    """The operation uses something a plan does not cover."""


class Abandon(Exception):
    """The run met something only the standard executor answers correctly."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ObjectPlan:
    type: GraphQLObjectType
    names: tuple[str, ...]  # response names, in the selection's order
    complete: Completer | None  # the inline leaves
    steps: tuple["FieldStep", ...]  # the fields with resolvers
    leaves: Selection | None  # every field, when all are inline leaves: as JSON columns


@dataclass(frozen=True, slots=True)
class FieldStep:
    name: str  # response name
    field: GraphQLField
    nodes: list[FieldNode]
    arguments: dict[str, Any] | None  # None: they use variables, coerced per request
    non_null: bool
    is_list: bool
    item_non_null: bool
    leaf: GraphQLLeafType | None  # a scalar or enum; else `child` plans the object
    child: ObjectPlan | None
    json: JsonList | None  # a list of `child.leaves` that PostgreSQL renders as JSON
    flat: bool  # a list whose objects select only inline leaves (`child.complete`)


def plan_operation(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
) -> ObjectPlan | None:
    """The operation's plan, or None when only the standard executor may run it."""
    if operation.operation != OperationType.QUERY or operation.directives:
        return None
    assert schema.query_type is not None
    try:
        return _plan_object(schema, schema.query_type, [operation.selection_set], fragments)
    except (Unplannable, GraphQLError):
        return None


def _plan_object(
    schema: GraphQLSchema,
    type_: GraphQLObjectType,
    selection_sets: Iterable[SelectionSetNode | None],
    fragments: dict[str, FragmentDefinitionNode],
) -> ObjectPlan:
    grouped = _collect(schema, type_, selection_sets, fragments)
    selection = tuple((name, nodes[0].name.value) for name, nodes in grouped.items())
    complete, inline = compiled_selection(type_, selection)
    steps = tuple(
        _plan_field(schema, type_, name, nodes, fragments)
        for name, nodes in grouped.items()
        if name not in inline
    )
    return ObjectPlan(type_, tuple(grouped), complete, steps, _json_leaves(type_, selection))


def _json_leaves(
    type_: GraphQLObjectType, selection: tuple[tuple[str, str], ...]
) -> Selection | None:
    leaves = []
    for name, field_name in selection:
        leaf = inline_leaf(type_, field_name)
        if leaf is None:
            return None
        if leaf.scalar == TYPENAME:
            leaves.append(JsonLeaf(name, TYPENAME, type_.name, True))
        else:
            leaves.append(JsonLeaf(name, leaf.attribute, leaf.scalar, leaf.non_null))
    return tuple(leaves)


def _json_list(field: GraphQLField, child: "ObjectPlan | None") -> JsonList | None:
    """How PostgreSQL renders the field's objects, when it can (loaders/json_lists.py)."""
    if child is None or not leaves_only(child) or child.type.is_type_of is not None:
        return None
    assert child.leaves is not None
    definition = field.extensions.get("strawberry-definition")
    json_list = definition.metadata.get(JSON_LIST) if definition is not None else None
    if not isinstance(json_list, JsonList) or json_object(json_list.table, child.leaves) is None:
        return None
    return json_list


def _collect(
    schema: GraphQLSchema,
    type_: GraphQLObjectType,
    selection_sets: Iterable[SelectionSetNode | None],
    fragments: dict[str, FragmentDefinitionNode],
) -> dict[str, list[FieldNode]]:
    """The fields selected on `type_`, by response name (graphql-core's `collect_fields`
    for documents without directives)."""
    grouped: dict[str, list[FieldNode]] = {}
    visited: set[str] = set()

    def applies(condition: Any) -> bool:
        if condition is None:
            return True
        conditional = schema.get_type(condition.name.value)
        if conditional is type_:
            return True
        return is_abstract_type(conditional) and schema.is_sub_type(conditional, type_)

    def visit(selection_set: SelectionSetNode | None) -> None:
        for selection in selection_set.selections if selection_set else ():
            if selection.directives:
                raise Unplannable
            if isinstance(selection, FieldNode):
                name = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(name, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if applies(selection.type_condition):
                    visit(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = fragments.get(name)
                if fragment is None or fragment.directives or fragment.variable_definitions:
                    raise Unplannable
                if name not in visited and applies(fragment.type_condition):
                    visited.add(name)
                    visit(fragment.selection_set)

    for selection_set in selection_sets:
        visit(selection_set)
    return grouped


def _plan_field(
    schema: GraphQLSchema,
    parent: GraphQLObjectType,
    name: str,
    nodes: list[FieldNode],
    fragments: dict[str, FragmentDefinitionNode],
) -> FieldStep:
    field = parent.fields.get(nodes[0].name.value)
    if field is None:  # introspection's meta fields
        raise Unplannable
    arguments = None
    if not any(uses_variables(argument.value) for argument in nodes[0].arguments or ()):
        arguments = get_argument_values(field, nodes[0])
    return_type: GraphQLOutputType = field.type
    non_null = isinstance(return_type, GraphQLNonNull)
    named = return_type.of_type if isinstance(return_type, GraphQLNonNull) else return_type
    is_list = isinstance(named, GraphQLList)
    item_non_null = False
    if isinstance(named, GraphQLList):
        item_non_null = isinstance(named.of_type, GraphQLNonNull)
        named = named.of_type.of_type if item_non_null else named.of_type
    if isinstance(named, GraphQLList):
        raise Unplannable  # lists of lists
    leaf = named if is_leaf_type(named) else None
    if leaf is None and not isinstance(named, GraphQLObjectType):
        raise Unplannable  # an interface or union
    child = None
    if isinstance(named, GraphQLObjectType):
        child = _plan_object(schema, named, [node.selection_set for node in nodes], fragments)
    json = _json_list(field, child) if is_list and item_non_null else None
    flat = is_list and child is not None and leaves_only(child)
    return FieldStep(
        name, field, nodes, arguments, non_null, is_list, item_non_null, leaf, child, json, flat
    )


def leaves_only(plan: ObjectPlan) -> bool:
    """The objects select only inline leaves: their completer alone makes their records."""
    return not plan.steps and bool(plan.leaves)


def value_leaves(value: ValueNode) -> Iterator[ValueNode]:
    """The values an argument's value is made of, through its lists and input objects."""
    if isinstance(value, ListValueNode):
        for item in value.values:
            yield from value_leaves(item)
    elif isinstance(value, ObjectValueNode):
        for field in value.fields:
            yield from value_leaves(field.value)
    else:
        yield value


def variable_names(value: ValueNode) -> Iterator[str]:
    """The variables an argument's value holds (none: it is the same on every request)."""
    return (leaf.name.value for leaf in value_leaves(value) if isinstance(leaf, VariableNode))


def uses_variables(value: ValueNode) -> bool:
    """Whether an argument's value holds a variable (else it is the same on every request)."""
    return next(variable_names(value), None) is not None


class PlanCache:
    """Plans by operation node: documents are parsed once and kept (graph/pipeline/pipeline.py), so
    an operation's node is the same object on every request that sends its text."""

    def __init__(self, max_bytes: int = PLANS_KEPT_BYTES) -> None:
        self._plans: BoundedByBytes[int, tuple[Node, ObjectPlan | None]] = BoundedByBytes(max_bytes)

    @property
    def bytes(self) -> int:
        return self._plans.bytes

    def plan(self, executor: Executor[Any]) -> ObjectPlan | None:
        operation = executor.operation
        entry = self._plans.get(id(operation))
        if entry is None or entry[0] is not operation:
            plan = plan_operation(executor.schema, operation, executor.fragment_definitions)
            entry = (operation, plan)
            self._plans.put(id(operation), entry, text_size(operation))
        return entry[1]


def text_size(operation: Node) -> int:
    """The size of the document text an operation's nodes keep alive."""
    return len(operation.loc.source.body) if operation.loc is not None else 1


Level = list[tuple[ObjectPlan, Any, dict[str, Any], Path | None]]


class CompiledRun:
    """One execution of a plan, with the executor's resolve infos and variables."""

    def __init__(self, executor: Executor[Any]) -> None:
        self.executor = executor
        self.json_lists = 0  # lists answered with PostgreSQL's JSON texts
        self._arguments: dict[int, dict[str, Any]] = {}  # by step, of those with variables

    async def run(self, plan: ObjectPlan) -> dict[str, Any]:
        level: Level = []
        data = self.record(plan, self.executor.root_value, None, level)
        while level:
            level = await self.step(level)
        return data

    async def step(self, level: Level) -> Level:
        """Calls the resolvers of one level; awaits what they return, together."""
        executor = self.executor
        following: Level = []
        pending: list[tuple[Any, FieldStep, dict[str, Any], Any]] = []
        failure: Abandon | None = None
        for plan, source, record, path in level:
            for step in plan.steps:
                info = executor.build_resolve_info(
                    step.field, step.nodes, plan.type, Path(path, step.name, plan.type.name)
                )
                resolve = step.field.resolve or executor.field_resolver
                try:
                    arguments = step.arguments
                    if arguments is None:
                        arguments = self.arguments_of(step)
                    if step.json is not None:
                        assert step.child is not None and step.child.leaves is not None
                        value = step.json.load(source, info, step.child.leaves, **arguments)
                    else:
                        value = resolve(source, info, **arguments)
                    if executor.is_awaitable(value):
                        pending.append((value, step, record, info))
                    else:
                        record[step.name] = self.complete(step, value, info, following)
                except Exception as error:  # Abandon too: first settle what was started
                    failure = error if isinstance(error, Abandon) else Abandon(RESOLVER_ERROR)
                    break
            if failure is not None:
                break
        values = await settle([awaitable for awaitable, *_ in pending])
        if failure is not None:
            raise failure
        if any(isinstance(value, BaseException) for value in values):
            raise Abandon(RESOLVER_ERROR)
        for value, (_, step, record, info) in zip(values, pending, strict=True):
            record[step.name] = self.complete(step, value, info, following)
        return following

    def arguments_of(self, step: FieldStep) -> dict[str, Any]:
        """The arguments of a field that reads variables, coerced once per run: below a list it
        is resolved once per item, with the same arguments."""
        found = self._arguments.get(id(step))
        if found is None:
            variables = self.executor.variable_values
            found = get_argument_values(step.field, step.nodes[0], variables)
            self._arguments[id(step)] = found
        return found

    def complete(self, step: FieldStep, value: Any, info: Any, following: Level) -> Any:
        if step.json is not None:
            if value is None:  # a value only Python serializes right, or refuses
                raise Abandon(LEAF)
            self.json_lists += 1
            return value  # the objects' texts, embedded as they are
        if value is None:
            if step.non_null:
                raise Abandon(NULL)
            return None
        if not step.is_list:
            return self.one(step, value, info.path, info, following)
        if type(value) is not list and type(value) is not tuple:
            raise Abandon(NOT_A_LIST)  # other iterables, and errors, take the standard path
        if step.flat:
            assert step.child is not None
            return flat_records(step.child, value, step.item_non_null, info)
        completed: list[Any] = []
        for index, item in enumerate(value):
            if item is None:
                if step.item_non_null:
                    raise Abandon(NULL)
                completed.append(None)
            else:
                completed.append(
                    self.one(step, item, Path(info.path, index, None), info, following)
                )
        return completed

    def one(self, step: FieldStep, value: Any, path: Path, info: Any, following: Level) -> Any:
        if step.leaf is not None:
            try:
                serialized = step.leaf.serialize(value)
            except Exception:
                raise Abandon(LEAF) from None
            if serialized is None or serialized is Undefined:
                raise Abandon(LEAF)
            return serialized
        assert step.child is not None
        is_type_of = step.child.type.is_type_of
        if is_type_of is not None and is_type_of(value, info) is not True:
            raise Abandon(WRONG_TYPE)
        return self.record(step.child, value, path, following)

    @staticmethod
    def record(
        plan: ObjectPlan, source: Any, path: Path | None, following: Level
    ) -> dict[str, Any]:
        """An object's response, in selection order: its leaves now, the rest next level."""
        record: dict[str, Any] = dict.fromkeys(plan.names)
        if plan.complete is not None:
            leaves = plan.complete(source)
            if leaves is None:  # a null or a value of another type among them
                raise Abandon(LEAF)
            record.update(leaves)
        if plan.steps:
            following.append((plan, source, record, path))
        return record


def flat_records(
    plan: ObjectPlan, items: list[Any] | tuple[Any, ...], item_non_null: bool, info: Any
) -> list[dict[str, Any] | None]:
    """The records of a list's objects that select only inline leaves: each one's leaves, in
    selection order as its completer returns them (no path, no record to fill: nothing
    follows them)."""
    complete, is_type_of = plan.complete, plan.type.is_type_of
    assert complete is not None
    records: list[dict[str, Any] | None] = []
    for item in items:
        if item is None:
            if item_non_null:
                raise Abandon(NULL)
            records.append(None)
            continue
        if is_type_of is not None and is_type_of(item, info) is not True:
            raise Abandon(WRONG_TYPE)
        leaves = complete(item)
        if leaves is None:  # a null or a value of another type among them
            raise Abandon(LEAF)
        records.append(leaves)
    return records


async def settle(awaitables: list[Any]) -> list[Any]:
    """Every awaitable's value or exception, once all are done (none left running)."""
    if not awaitables:
        return []
    if len(awaitables) == 1:
        try:
            return [await awaitables[0]]
        except Exception as error:
            return [error]
    return await asyncio.gather(*awaitables, return_exceptions=True)


PLANS = PlanCache()


class CompiledExecutor(FastExecutor):
    """Runs a query from its plan when it has one; otherwise, and whenever a compiled run is
    abandoned, as FastExecutor (graphql-core's executor with inline leaves) does."""

    def execute_operation(self, serially: bool | None = None) -> Any:
        if serially is not None or self.middleware_manager or self.abort_signal is not None:
            return super().execute_operation(serially)
        plan = PLANS.plan(self)
        if plan is None:
            return super().execute_operation()
        return self._run(plan)

    async def _run(self, plan: ObjectPlan) -> Any:
        run = CompiledRun(self)
        try:
            data = await run.run(plan)
        except Exception as error:  # Abandon, or anything the standard path should meet itself
            ABANDONED.labels(error.reason if isinstance(error, Abandon) else UNEXPECTED).inc()
            result = super().execute_operation()
            return await result if self.is_awaitable(result) else result
        ANSWERED.inc()
        if run.json_lists:
            JSON_LISTS.inc(run.json_lists)
        return self.build_response(data)


# the `executor` setting's choices
EXECUTORS: dict[str, type[Executor[Any]]] = {
    "compiled": CompiledExecutor,
    "standard": FastExecutor,
}
