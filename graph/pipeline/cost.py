"""What an operation may cost before it runs (requested) and what it did cost (actual).

IBM's GraphQL Cost Directives, as Apollo's demand control applies them, with the weights read
from the schema's own `@cost` and `@listSize` (so the SDL, the supergraph and the enforcement
cannot drift apart):

- a field costs its `@cost(weight:)`, else 1 if it returns an object, interface or union and
  0 if it returns a scalar or an enum, plus the cost of its selections;
- a list field multiplies that by its size: for the `nodes` and `edges` of a connection (the
  `sizedFields` of the field that returned it), that field's slicing argument; else its own
  slicing argument (`first`, `last`); else its `assumedSize`; else the default list size.
  `_entities` is sized by its representations;
- a selection on an interface or union costs as much as its most expensive possible type;
- what the directives cannot say (a slicing argument must be an Int), `ARGUMENT_SIZES` says:
  `metricSeries` is as long as its `tickers`, each series has a point per calendar bucket
  between `from` and `to` that can hold a value, and price bars are counted between their dates
  (graph/pipeline/argument_sizes.py);
- `@skip`, `@include`, fragments, aliases and variables count as they execute;
- each root field of a mutation adds a base cost, introspection a flat cost, `__typename` 0;
- beyond the directives, each field that fetches (its resolver awaits a loader: one SQL
  statement for all its parents at once) adds `fetch_cost` once per place in the document,
  whatever the sizes of the lists above it: most of a small query's work is its statements,
  and a search that finds nothing has done its search.

A slicing argument outside 1..`max_list_size` (wherever it stands: nested, aliased, in a
fragment, from a variable) refuses the whole operation before it is costed (`ListSizeError`):
a negative `first` would otherwise make a document cost less than nothing.

The actual cost applies the same weights to the response: real list lengths, nulls cost 0,
and a fetch costs its `fetch_cost` if it ran at all (for a null or an empty list too).
"""

import copy
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from typing import Any

from graphql import (
    BREAK,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InterfaceTypeDefinitionNode,
    InterfaceTypeExtensionNode,
    ObjectTypeDefinitionNode,
    ObjectTypeExtensionNode,
    OperationDefinitionNode,
    OperationType,
    Undefined,
    Visitor,
    get_named_type,
    is_abstract_type,
    is_composite_type,
    parse,
    value_from_ast_untyped,
    visit,
)
from graphql.execution.collect_fields import (
    FieldDetailsList,
    FragmentDetails,
    GroupedFieldSet,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values

from graph.execution.compiled import variable_names
from graph.pipeline.argument_sizes import ARGUMENT_SIZES, Sized, utc_today
from resolvers.pagination import MAX_PAGE_SIZE

INTROSPECTION = frozenset({"__schema", "__type"})


@dataclass(frozen=True)
class FieldCost:
    """A field's `@cost` and `@listSize` arguments."""

    weight: int | None = None
    assumed_size: int | None = None
    slicing_arguments: tuple[str, ...] = ()
    sized_fields: tuple[str, ...] = ()


class ListSizeError(GraphQLError):
    """A list-size argument out of range: BAD_USER_INPUT, before the operation is costed."""

    def __init__(
        self, field: FieldNode, coordinate: str, argument: str, value: Any, maximum: int
    ) -> None:
        message = (
            f"`{argument}` of `{coordinate}` must be between 1 and {maximum}, received {value!r}."
        )
        extensions = {"code": "BAD_USER_INPUT", "argument": argument}
        super().__init__(message, field, extensions=extensions)


NO_DIRECTIVES = FieldCost()
FREE = (0, None, False)  # the plan of a weightless scalar: it costs nothing, whatever comes back
FIELD_CONTAINERS = (
    ObjectTypeDefinitionNode,
    ObjectTypeExtensionNode,
    InterfaceTypeDefinitionNode,
    InterfaceTypeExtensionNode,
)


def directives_in(sdl: str) -> dict[tuple[str, str], FieldCost]:
    """The `@cost` and `@listSize` of every field of an SDL, by (type name, field name)."""
    found: dict[tuple[str, str], FieldCost] = {}
    for definition in parse(sdl).definitions:
        if not isinstance(definition, FIELD_CONTAINERS):
            continue
        for field in definition.fields or ():
            arguments: dict[str, Any] = {}
            for directive in field.directives or ():
                if directive.name.value in ("cost", "listSize"):
                    for argument in directive.arguments or ():
                        arguments[argument.name.value] = value_from_ast_untyped(argument.value)
            if arguments:
                found[(definition.name.value, field.name.value)] = FieldCost(
                    weight=arguments.get("weight"),
                    assumed_size=arguments.get("assumedSize"),
                    slicing_arguments=tuple(arguments.get("slicingArguments") or ()),
                    sized_fields=tuple(arguments.get("sizedFields") or ()),
                )
    return found


def is_list(type_: GraphQLOutputType) -> bool:
    return isinstance(type_.of_type if isinstance(type_, GraphQLNonNull) else type_, GraphQLList)


def fetches(name: str, field: GraphQLField) -> bool:
    """Whether a field waits on a loader (Strawberry's resolver is a coroutine function);
    `_entities` resolves its representations through them."""
    definition = field.extensions.get("strawberry-definition")
    return name == "_entities" or bool(getattr(definition, "is_async", False))


@dataclass(frozen=True)
class CostModel:
    schema: GraphQLSchema
    fields: dict[tuple[str, str], FieldCost]
    default_list_size: int = 10
    mutation_cost: int = 10
    introspection_cost: int = 100
    fetch_cost: int = 4
    max_list_size: int = MAX_PAGE_SIZE
    today: Callable[[], date] = utc_today  # where an omitted `to` ends

    def costing(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
    ) -> "Costing":
        """The costing of one operation with these variables (reusable for any response
        when the operation has no variables); variables that do not coerce cost as their
        defaults (the pipeline refuses them before costing: Pipeline.executor_for)."""
        coerced = coerce_variables(self.schema, operation, variables)
        if not isinstance(coerced, VariableValues):
            coerced = VariableValues({}, {})
        return Costing(self, document, operation, coerced)


def coerce_variables(
    schema: GraphQLSchema, operation: OperationDefinitionNode, variables: dict[str, Any] | None
) -> VariableValues | list[GraphQLError]:
    """The operation's variables as its definitions coerce them, or why they do not."""
    return get_variable_values(schema, operation.variable_definitions or (), variables or {})


class MayVary(Visitor):
    """Finds what lets variables change the fields an operation selects: a directive
    (`@skip(if: $v)`; any, to be sure), or a fragment with variables of its own."""

    found = False

    def enter_directive(self, *_: Any) -> Any:
        self.found = True
        return BREAK

    def enter_fragment_definition(self, node: FragmentDefinitionNode, *_: Any) -> Any:
        if node.variable_definitions:
            self.found = True
            return BREAK
        return None


def selections_may_vary(document: DocumentNode) -> bool:
    finder = MayVary()
    visit(document, finder)
    return finder.found


OMITTED = object()
MEMO_ENTRIES = 32  # requested costs kept per operation: a client sends a few page sizes
MEMO_TEXT = 64  # the longest text a key holds: keys must not keep requests' variables alive


class RequestedMemo:
    """The requested costs of one operation by what they follow: the day (an omitted `to`
    ends today) and the values of the variables that its list sizes read (`first: $first`, not
    `ticker: $ticker`). Shared by the costings made from the one kept for an operation."""

    def __init__(self) -> None:
        self.read: set[str] = set()  # the variables the sizes read
        self.complete = False  # `read` is: the operation has been costed in full once
        self.costs: dict[tuple[Any, ...], int] = {}

    def key(self, today: date, variables: dict[str, Any]) -> tuple[Any, ...] | None:
        """None when a value is a list, an input object or a long text (a cost read from
        `tickers: $tickers` is worked out each time). Omitted and null differ: an omitted
        variable leaves the argument's default."""
        values = [variables.get(name, OMITTED) for name in sorted(self.read)]
        if any(isinstance(v, list | dict) or len(str(v)) > MEMO_TEXT for v in values):
            return None
        return (today, *values)

    def keep(self, key: tuple[Any, ...], cost: int) -> None:
        if len(self.costs) >= MEMO_ENTRIES:
            self.costs.clear()
        self.costs[key] = cost


Estimate = tuple[int, int]  # (points the lists above multiply, points of fetches: once each)
Reached = set[tuple[int, str]]  # the fetches a response shows to have run
Selections = list[tuple[str, GraphQLObjectType, FieldDetailsList]]  # (key, type, field)


class Costing:
    """One operation with its variables: its requested cost, and the actual cost of a response.
    Fields are collected once and kept for every later response, and for the costings of the
    operation with other variables (`with_variables`) when no variable can change them."""

    def __init__(
        self,
        model: CostModel,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: VariableValues,
    ) -> None:
        self.model, self.schema, self.operation = model, model.schema, operation
        self.fragments = {
            d.name.value: FragmentDetails(d)
            for d in document.definitions
            if isinstance(d, FragmentDefinitionNode)
        }
        self.document = document
        self.variables = variables
        root = self.schema.get_root_type(operation.operation)
        assert root is not None  # the document is valid
        self.root = root
        self.root_fields = collect_fields(
            self.schema, self.fragments, self.variables, root, operation
        ).grouped_field_set
        mutation = operation.operation == OperationType.MUTATION
        self.base = model.mutation_cost * len(self.root_fields) if mutation else 0
        self._subfields: dict[tuple[int, str], GroupedFieldSet] = {}
        self._selections: dict[tuple[int, str], Selections] = {}
        self._plans: dict[tuple[int, str], tuple[int, Any, bool]] = {}
        self._fixed_arguments: dict[int, dict[str, Any]] = {}  # by field node: no variables
        self._memo = RequestedMemo()
        self.today = model.today()

    @cached_property
    def shareable(self) -> bool:
        """No variable can change which fields are selected (see with_variables): asked of
        the costing kept for an operation only, and copied with it."""
        return not selections_may_vary(self.document)

    def with_variables(self, variables: VariableValues) -> "Costing":
        """The operation's costing with these variables, and today. Without directives in the
        document (`@skip`, `@include`) no variable changes which fields are selected, so it
        shares the fields collected, the plans made and the requested costs worked out."""
        if self.operation.variable_definitions and not self.shareable:
            return Costing(self.model, self.document, self.operation, variables)
        costing = copy.copy(self)  # shallow: the caches are shared
        costing.__dict__.pop("requested", None)  # a cached_property of the copied costing
        costing.variables, costing.today = variables, self.model.today()
        return costing

    @cached_property
    def requested(self) -> int:
        memo, values = self._memo, self.variables.coerced
        key = memo.key(self.today, values) if memo.complete else None
        if key is not None and (found := memo.costs.get(key)) is not None:
            return found
        cost = self.base + sum(self.requested_fields(self.root, self.root_fields, None))
        memo.complete = True  # every size has been read once: `read` names all they read
        if (key := memo.key(self.today, values)) is not None:
            memo.keep(key, cost)
        return cost

    def actual(self, data: dict[str, Any] | None) -> int:
        if data is None:
            return 0
        reached: Reached = set()
        items = self.actual_fields(self.root, self.root_fields, data, reached)
        return self.base + items + self.model.fetch_cost * len(reached)

    def subfields(self, type_: GraphQLObjectType, details: FieldDetailsList) -> GroupedFieldSet:
        key = (id(details), type_.name)
        found = self._subfields.get(key)
        if found is None:
            found = collect_subfields(
                self.schema, self.fragments, self.variables, self.operation, type_, details
            ).grouped_field_set
            self._subfields[key] = found
        return found

    def runtime_types(self, type_: Any) -> Iterable[GraphQLObjectType]:
        return self.schema.get_possible_types(type_) if is_abstract_type(type_) else (type_,)

    def arguments(self, definition: GraphQLField, node: FieldNode) -> dict[str, Any]:
        fixed = self._fixed_arguments.get(id(node))
        if fixed is not None:
            return fixed
        names = {
            name for argument in node.arguments or () for name in variable_names(argument.value)
        }
        self._memo.read |= names  # before the values: a size read is a size read, even of {}
        try:
            arguments = get_argument_values(definition, node, self.variables)
        except GraphQLError:  # execution reports it; cost with the defaults meanwhile
            return {}
        if not names:
            self._fixed_arguments[id(node)] = arguments  # shared with other variables' costings
        return arguments

    def slice_size(
        self,
        field: FieldNode,
        coordinate: str,
        config: FieldCost,
        definition: GraphQLField,
        arguments: dict[str, Any],
    ) -> int:
        if coordinate == "Query._entities":
            return len(arguments.get("representations") or ())
        maximum = self.model.max_list_size
        sizes = []
        for argument in config.slicing_arguments:
            size = arguments.get(argument)
            if size is None and argument in definition.args:  # null: the default, as resolvers
                size = definition.args[argument].default_value  # read it (Undefined if none)
            if size is None or size is Undefined:
                continue
            if not isinstance(size, int) or not 1 <= size <= maximum:
                raise ListSizeError(field, coordinate, argument, size, maximum)
            sizes.append(size)
        if sizes:
            return max(sizes)
        if config.assumed_size is not None:
            return config.assumed_size
        return self.model.default_list_size

    def field_of(
        self, parent: GraphQLObjectType, details: FieldDetailsList
    ) -> tuple[str, GraphQLField | None, FieldCost]:
        name = details[0].node.name.value
        config = self.model.fields.get((parent.name, name), NO_DIRECTIVES)
        return name, parent.fields.get(name), config

    def weight(self, definition: GraphQLField, config: FieldCost) -> int:
        if config.weight is not None:
            return config.weight
        return int(is_composite_type(get_named_type(definition.type)))

    # requested: before execution, from the document

    def requested_fields(
        self, parent: GraphQLObjectType, grouped: GroupedFieldSet, sized: Sized
    ) -> Estimate:
        estimates = [self.requested_field(parent, details, sized) for details in grouped.values()]
        return sum(items for items, _ in estimates), sum(once for _, once in estimates)

    def requested_field(
        self, parent: GraphQLObjectType, details: FieldDetailsList, sized: Sized
    ) -> Estimate:
        weight, composite, fetch = self.field_plan(parent, details)
        name, definition, config = self.field_of(parent, details)
        if definition is None:  # __typename, or introspection
            return weight, 0
        node = details[0].node
        size, below = self.sizes(f"{parent.name}.{name}", definition, config, node, sized)
        children, once = 0, self.model.fetch_cost if fetch else 0
        if composite is not None:
            estimates = [
                self.requested_fields(t, self.subfields(t, details), below)
                for t in self.runtime_types(composite)
            ]
            children = max(items for items, _ in estimates)
            once += max(fetched for _, fetched in estimates)
        return size * (weight + children), once

    def sizes(
        self,
        coordinate: str,
        definition: GraphQLField,
        config: FieldCost,
        node: FieldNode,
        sized: Sized,
    ) -> tuple[int, Sized]:
        """How many items a field returns (1 if it is not a list), and the size it gives the
        sized fields of its items (a connection's `nodes` and `edges`)."""
        rule = ARGUMENT_SIZES.get(coordinate)
        if rule is not None:
            return rule(self.arguments(definition, node), self.today)
        below: Sized = None
        if config.sized_fields:
            arguments = self.arguments(definition, node)
            size = self.slice_size(node, coordinate, config, definition, arguments)
            below = (config.sized_fields, size)
        if not is_list(definition.type):
            return 1, below
        if sized is not None and node.name.value in sized[0]:
            return sized[1], below
        arguments = self.arguments(definition, node)
        return self.slice_size(node, coordinate, config, definition, arguments), below

    # actual: after execution, from the response

    def actual_fields(
        self,
        parent: GraphQLObjectType,
        grouped: GroupedFieldSet,
        data: dict[str, Any],
        reached: Reached,
    ) -> int:
        return sum(
            self.actual_field(parent, details, data[key], reached)
            for key, details in grouped.items()
            if key in data
        )

    def actual_field(
        self, parent: GraphQLObjectType, details: FieldDetailsList, value: Any, reached: Reached
    ) -> int:
        weight, composite, fetch = self.field_plan(parent, details)
        if fetch:
            reached.add((id(details), parent.name))
        if value is None:
            return 0
        items = value if isinstance(value, list) else (value,)
        costly = self.costly_selections(composite, details) if composite is not None else None
        if not costly:  # a scalar, or only free scalars below: no need to look inside items
            return weight * (len(items) - items.count(None))
        return sum(
            weight
            + sum(
                self.actual_field(owner, field_details, item[key], reached)
                for key, owner, field_details in costly
                if key in item
            )
            for item in items
            if item is not None
        )

    def field_plan(
        self, parent: GraphQLObjectType, details: FieldDetailsList
    ) -> tuple[int, Any, bool]:
        """A field's weight per item, its type if composite, and whether it fetches (once per
        field)."""
        key = (id(details), parent.name)
        found = self._plans.get(key)
        if found is None:
            name, definition, config = self.field_of(parent, details)
            if definition is None:
                found = (self.model.introspection_cost if name in INTROSPECTION else 0, None, False)
            else:
                named = get_named_type(definition.type)
                composite = named if is_composite_type(named) else None
                fetch = self.model.fetch_cost > 0 and fetches(name, definition)
                found = (self.weight(definition, config), composite, fetch)
            self._plans[key] = found
        return found

    def costly_selections(self, named: Any, details: FieldDetailsList) -> Selections:
        """The fields below `details` that can cost anything (not free scalars), over every
        possible type, merged by response key; computed once per field of the document."""
        key = (id(details), named.name)
        found = self._selections.get(key)
        if found is None:
            merged: dict[str, tuple[GraphQLObjectType, FieldDetailsList]] = {}
            for runtime_type in self.runtime_types(named):
                for response_key, field_details in self.subfields(runtime_type, details).items():
                    merged.setdefault(response_key, (runtime_type, field_details))
            found = self._selections[key] = [
                (k, owner, d)
                for k, (owner, d) in merged.items()
                if self.field_plan(owner, d) != FREE  # not a weightless scalar
            ]
        return found
