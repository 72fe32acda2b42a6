"""An executor that completes plain scalar fields in generated straight-line code.

Most of a large response is scalar leaves read straight off an object (`name`, `value`,
`filedAt`). graphql-core spends ~8 µs on each: a `Path`, a `GraphQLResolveInfo`, Strawberry's
resolver wrapper, awaitable checks and `complete_value` dispatch. Here the fields of a
selection whose resolver is Strawberry's default attribute read and whose type is a scalar
or enum are completed by a function generated once per selection (as `dataclasses` generates
`__init__`); a list of objects selecting only such fields is completed in one loop.

Anything else, and every case that could produce an error or a conversion (a null in a
non-null field, a value of another Python type than the scalar's own, NaN, an exception), goes
through the standard executor, so errors, paths and null propagation are unchanged. Items of a
type with an `is_type_of` check (Strawberry adds one to types that implement an interface,
such as `Node`) are checked in the loop; one that fails takes the standard path, which raises
the same error as ever.
tests/test_fast_path.py holds the conformance guard against the standard executor.
"""

from collections.abc import Callable
from functools import lru_cache
from math import inf
from typing import Any, NamedTuple, cast

from graphql import (
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    Undefined,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import Executor
from graphql.pyutils import Path

# Built-in scalars whose values of one exact Python type (and range) serialize to themselves.
TRUSTED = {
    "String": ("str", ""),
    "ID": ("str", ""),
    "Boolean": ("bool", ""),
    "Int": ("int", " and -2147483648 <= {v} <= 2147483647"),
    "Float": ("float", " and -inf < {v} < inf"),  # NaN and infinities take the slow path
}

Completer = Callable[[Any], dict[str, Any] | None]


class Leaf(NamedTuple):
    attribute: str
    scalar: str  # the named type's name, or "__typename"
    serialize: Callable[[Any], Any]
    non_null: bool


def inline_leaf(parent_type: GraphQLObjectType, field_name: str) -> Leaf | None:
    """How to complete a field inline, or None when it needs the standard path."""
    if field_name == "__typename":
        return Leaf("", "__typename", str, True)
    field = parent_type.fields.get(field_name)
    if field is None or not getattr(field.resolve, "_is_default", False):
        return None  # a resolver of our own (or none at all): standard path
    definition = field.extensions.get("strawberry-definition")
    named = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    if definition is None or not is_leaf_type(named):
        return None
    assert isinstance(named, GraphQLLeafType)
    non_null = isinstance(field.type, GraphQLNonNull)
    return Leaf(definition.python_name, named.name, named.serialize, non_null)


def _leaf_lines(index: int, leaf: Leaf, type_name: str) -> list[str]:
    value = f"v{index}"
    if leaf.scalar == "__typename":
        return [f"{value} = {type_name!r}"]
    read = f"source.{leaf.attribute}"
    if not leaf.attribute.isidentifier():
        read = f"getattr(source, {leaf.attribute!r})"
    lines = [f"{value} = {read}", f"if {value} is None:"]
    lines.append("    return None" if leaf.non_null else "    pass")  # non-null violation
    if leaf.scalar in TRUSTED:
        kind, check = TRUSTED[leaf.scalar]
        trusted = f"type({value}) is {kind}{check.format(v=value)}"
        lines += [f"elif not ({trusted}):", "    return None"]
    else:
        lines += [
            "else:",
            f"    {value} = s{index}({value})",
            f"    if {value} is None or {value} is Undefined:",
            "        return None",
        ]
    return lines


def compile_completer(type_name: str, leaves: list[tuple[str, Leaf]]) -> Completer:
    """Generate `complete(source) -> dict | None` for one selection; None: standard path."""
    namespace: dict[str, Any] = {"inf": inf, "Undefined": Undefined}
    body = []
    for index, (_, leaf) in enumerate(leaves):
        namespace[f"s{index}"] = leaf.serialize
        body += _leaf_lines(index, leaf, type_name)
    record = ", ".join(f"{name!r}: v{index}" for index, (name, _) in enumerate(leaves))
    source = "\n".join(
        [
            "def complete(source):",
            "    try:",
            *(f"        {line}" for line in body),
            "    except Exception:",
            "        return None",
            f"    return {{{record}}}",
        ]
    )
    # our own code, built from schema and document names only (repr-quoted)
    exec(source, namespace)
    completer: Completer = namespace["complete"]
    return completer


class Plan(NamedTuple):
    complete: Completer | None  # the inline leaves, if any
    leaf_count: int
    rest: GroupedFieldSet  # fields for the standard path


class FastExecutor(Executor[Any]):
    """graphql-core's executor with inline completion of default-resolved scalar leaves."""

    leaves_total = 0  # leaves completed inline, process-wide (tests and metrics read it)
    lists_total = 0  # lists of objects completed in one loop, process-wide

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        plan = self._plan(parent_type, grouped_field_set)
        results = plan.complete(source_value) if plan.complete else None
        if results is None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        FastExecutor.leaves_total += plan.leaf_count
        if not plan.rest:
            return results
        others = super().execute_fields(
            parent_type, source_value, path, plan.rest, position_context
        )
        if self.is_awaitable(others):
            return self._merge_later(grouped_field_set, results, others)
        return _in_order(grouped_field_set, results, cast("dict[str, Any]", others))

    def build_response(self, data: dict[str, Any] | None) -> Any:
        """The last step of an execution. graphql-core keeps bound methods of the executor on
        the executor (`async_helpers`); that reference cycle would keep the execution's whole
        state (plans, collected fields, the request context) for the cycle collector, which
        then runs every few requests. Resolve infos keep their own reference to the helpers."""
        response = super().build_response(data)
        self.__dict__.pop("async_helpers", None)
        return response

    def complete_list_value(
        self,
        return_type: GraphQLList[Any],
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        records = self._leaf_records(return_type.of_type, field_details_list, info, result)
        if records is not None:
            return records
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _leaf_records(
        self,
        item_type: Any,
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo[Any],
        items: Any,
    ) -> list[dict[str, Any]] | None:
        """A list of objects whose selections are all inline leaves, completed in one loop;
        None (the standard path) for anything else, including a null item or one that is
        not of the list's type."""
        named = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if not isinstance(named, GraphQLObjectType) or not isinstance(items, list):
            return None
        grouped_field_set, defer_usages, _ = self.collect_subfields(named, field_details_list)
        plan = self._plan(named, grouped_field_set)
        if defer_usages or plan.rest or plan.complete is None:
            return None
        is_type_of = named.is_type_of
        if is_type_of is not None and not all(is_type_of(item, info) is True for item in items):
            return None
        complete = plan.complete
        records = [complete(item) if item is not None else None for item in items]
        if None in records:
            return None
        FastExecutor.leaves_total += len(records) * plan.leaf_count
        FastExecutor.lists_total += 1
        return records  # type: ignore[return-value]

    async def _merge_later(
        self, grouped_field_set: GroupedFieldSet, results: dict[str, Any], others: Any
    ) -> dict[str, Any]:
        return _in_order(grouped_field_set, results, await others)

    def _plan(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> Plan:
        """The inline leaves of a selection, and the rest. Middleware sees every field."""
        # One plan per (type, selection): list items share their grouped field set. The
        # cache holds the field set too, so that its id cannot be reused during execution.
        cache: dict[tuple[str, int], tuple[GroupedFieldSet, Plan]]
        cache = self.__dict__.setdefault("_leaf_plans", {})
        key = (parent_type.name, id(grouped_field_set))
        entry = cache.get(key)
        if entry is None:
            entry = cache[key] = (
                grouped_field_set,
                self._make_plan(parent_type, grouped_field_set),
            )
        return entry[1]

    def _make_plan(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> Plan:
        if self.middleware_manager:  # middleware must see every field
            return Plan(None, 0, grouped_field_set)
        selection = tuple(
            (name, details[0].node.name.value) for name, details in grouped_field_set.items()
        )
        complete, inline_names = compiled_selection(parent_type, selection)
        rest = {k: v for k, v in grouped_field_set.items() if k not in inline_names}
        return Plan(complete, len(inline_names), rest)


@lru_cache(maxsize=4096)
def compiled_selection(
    parent_type: GraphQLObjectType, selection: tuple[tuple[str, str], ...]
) -> tuple[Completer | None, frozenset[str]]:
    """The generated completer of a selection's inline leaves (shared by all requests), and
    the response names it covers."""
    leaves = [
        (response_name, leaf)
        for response_name, field_name in selection
        if (leaf := inline_leaf(parent_type, field_name)) is not None
    ]
    complete = compile_completer(parent_type.name, leaves) if leaves else None
    return complete, frozenset(name for name, _ in leaves)


def _in_order(
    grouped_field_set: GroupedFieldSet, inline: dict[str, Any], others: dict[str, Any]
) -> dict[str, Any]:
    """Responses keep the order of the selection set."""
    merged = {**inline, **others}
    return {name: merged[name] for name in grouped_field_set if name in merged}
