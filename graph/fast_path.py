"""An executor that completes plain scalar fields in a tight loop.

Most of a large response is scalar leaves read straight off an object (`name`, `value`,
`filedAt`). graphql-core spends ~8 µs on each: a `Path`, a `GraphQLResolveInfo`, Strawberry's
resolver wrapper, awaitable checks and `complete_value` dispatch. Here a field whose resolver
is Strawberry's default attribute read and whose type is a scalar or enum is completed
inline: `serialize(getattr(source, attribute))`; a list of objects selecting only such fields
is completed in one loop. Anything else, and every case that would produce an error (a null
in a non-null field, a value the scalar refuses, an exception), goes through the standard
executor, so errors, paths and null propagation are unchanged. tests/test_fast_path.py holds
the conformance guard against the standard executor.
"""

from collections.abc import Callable
from math import inf
from typing import Any, NamedTuple

from graphql import (
    GraphQLBoolean,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLLeafType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLString,
    Undefined,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import Executor
from graphql.pyutils import Path

MAX_INT, MIN_INT = 2**31 - 1, -(2**31)


def _trusting(kind: type, check: Callable[[Any], bool], slow: Callable[[Any], Any]) -> Any:
    """Values of the exact Python type pass as they are; anything else takes `slow`."""

    def serialize(value: Any) -> Any:
        return value if type(value) is kind and check(value) else slow(value)

    return serialize


def _always(_value: Any) -> bool:
    return True


FAST_SERIALIZERS = {
    "String": _trusting(str, _always, GraphQLString.serialize),
    "ID": _trusting(str, _always, GraphQLID.serialize),
    "Boolean": _trusting(bool, _always, GraphQLBoolean.serialize),
    "Int": _trusting(int, lambda v: MIN_INT <= v <= MAX_INT, GraphQLInt.serialize),
    "Float": _trusting(float, lambda v: -inf < v < inf, GraphQLFloat.serialize),  # NaN fails
}


class Leaf(NamedTuple):
    attribute: str
    serialize: Callable[[Any], Any]
    non_null: bool


def inline_leaf(parent_type: GraphQLObjectType, field_name: str) -> Leaf | None:
    """How to complete a field inline, or None when it needs the standard path."""
    if field_name == "__typename":
        name = parent_type.name
        return Leaf("__class__", lambda _: name, True)
    field = parent_type.fields.get(field_name)
    if field is None or not getattr(field.resolve, "_is_default", False):
        return None  # a resolver of our own (or none at all): standard path
    definition = field.extensions.get("strawberry-definition")
    named = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
    if definition is None or not is_leaf_type(named):
        return None
    assert isinstance(named, GraphQLLeafType)
    serialize = FAST_SERIALIZERS.get(named.name, named.serialize)
    return Leaf(definition.python_name, serialize, isinstance(field.type, GraphQLNonNull))


def complete_inline(leaves: list[tuple[str, Leaf]], source: Any) -> dict[str, Any] | None:
    """The leaves of one object, or None if any of them needs the standard path."""
    record = {}
    try:
        for name, (attribute, serialize, non_null) in leaves:
            value = getattr(source, attribute)
            if value is None:
                if non_null:
                    return None  # a non-null violation: the standard path reports it
                record[name] = None
                continue
            value = serialize(value)
            if value is None or value is Undefined:
                return None
            record[name] = value
    except Exception:
        return None
    return record


class FastExecutor(Executor):
    """graphql-core's executor with inline completion of default-resolved scalar leaves."""

    leaves_total = 0  # leaves completed inline, process-wide (tests and metrics read it)

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        leaves, rest = self._plan(parent_type, grouped_field_set)
        results = complete_inline(leaves, source_value) if leaves else None
        if results is None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        FastExecutor.leaves_total += len(results)
        if not rest:
            return results
        others = super().execute_fields(parent_type, source_value, path, rest, position_context)
        if self.is_awaitable(others):
            return self._merge_later(grouped_field_set, results, others)
        return _in_order(grouped_field_set, results, others)

    def complete_list_value(
        self,
        return_type: GraphQLList[Any],
        field_details_list: FieldDetailsList,
        info: GraphQLResolveInfo,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> Any:
        records = self._leaf_records(return_type.of_type, field_details_list, result)
        if records is not None:
            return records
        return super().complete_list_value(
            return_type, field_details_list, info, path, result, position_context
        )

    def _leaf_records(
        self, item_type: Any, field_details_list: FieldDetailsList, items: Any
    ) -> list[dict[str, Any]] | None:
        """A list of objects whose selections are all inline leaves, completed in one loop;
        None (the standard path) for anything else, including a null item."""
        named = item_type.of_type if isinstance(item_type, GraphQLNonNull) else item_type
        if not isinstance(named, GraphQLObjectType) or named.is_type_of is not None:
            return None
        if not isinstance(items, list):
            return None
        grouped_field_set, defer_usages, _ = self.collect_subfields(named, field_details_list)
        leaves, rest = self._plan(named, grouped_field_set)
        if defer_usages or rest or not leaves:
            return None
        records = []
        for item in items:
            record = complete_inline(leaves, item)
            if record is None:
                return None
            records.append(record)
        FastExecutor.leaves_total += len(records) * len(leaves)
        return records

    async def _merge_later(
        self, grouped_field_set: GroupedFieldSet, results: dict[str, Any], others: Any
    ) -> dict[str, Any]:
        return _in_order(grouped_field_set, results, await others)

    def _plan(
        self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet
    ) -> tuple[list[tuple[str, Leaf]], GroupedFieldSet]:
        """The inline leaves of a selection, and the rest. Middleware sees every field."""
        # One plan per (type, selection): list items share their grouped field set. The
        # cache holds the field set too, so that its id cannot be reused during execution.
        cache: dict[tuple[str, int], tuple[Any, list[tuple[str, Leaf]], GroupedFieldSet]]
        cache = self.__dict__.setdefault("_leaf_plans", {})
        key = (parent_type.name, id(grouped_field_set))
        entry = cache.get(key)
        if entry is None:
            leaves, rest = [], {}
            for name, details in grouped_field_set.items():
                leaf = (
                    None
                    if self.middleware_manager
                    else inline_leaf(parent_type, details[0].node.name.value)
                )
                if leaf is None:
                    rest[name] = details
                else:
                    leaves.append((name, leaf))
            entry = cache[key] = (grouped_field_set, leaves, rest)
        return entry[1], entry[2]


def _in_order(
    grouped_field_set: GroupedFieldSet, inline: dict[str, Any], others: dict[str, Any]
) -> dict[str, Any]:
    """Responses keep the order of the selection set."""
    merged = {**inline, **others}
    return {name: merged[name] for name in grouped_field_set if name in merged}
