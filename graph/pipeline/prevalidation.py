"""Limits checked after parsing and before validation, in work bounded by the limits.

graphql-core's validation costs more than linear time on some documents that fail it (the
overlapping-fields rule compares every pair of fields with one response name at one position,
and every pair of fragments spread side by side), and it runs before a document is costed.
These checks, modelled on graphql-armor's, refuse such documents first:

- `fragmentSpreads`, `directives`, `aliases`: counted in the document as written;
- `selections`: fields with every fragment spread expanded where it is spread (the size of
  the operations the server would run), fragment definitions counted once more on their own
  (validation checks each); the walk stops as soon as it passes the limit, so a fragment
  "bomb" costs no more than the limit;
- `fieldOccurrences`: how often one response name occurs at one position of the merged
  operation (`{ a a a }`, or `a` in several fragments spread at one place);
- `fieldMerges`: the pairs of same-named fields at one position, over every position: the
  comparisons the overlapping-fields rule makes (n occurrences make n(n-1)/2);
- `depth` and `rootFields` of each operation, through its fragments (checked last: the
  walk above has bounded the fragments they expand).

Each refusal is QUERY_LIMIT_EXCEEDED with `extensions.limit` naming the bound: one error, and
the document is not validated (its validation errors would bury the refusal).
"""

from collections import Counter
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    ExecutableDefinitionNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from graph.pipeline.limits import Shape, limit_error

# one position of the merged operation: the selection sets merged there, each with the
# fragments being expanded on its way (a cycle is left to validation's NoFragmentCycles)
Position = list[tuple[SelectionSetNode, frozenset[str]]]


@dataclass(frozen=True)
class DocumentBounds:
    selections: int
    field_occurrences: int
    field_merges: int
    fragment_spreads: int
    directives: int
    aliases: int
    depth: int
    root_fields: int


def prevalidation_errors(document: DocumentNode, bounds: DocumentBounds) -> list[GraphQLError]:
    """The first limit the document exceeds, if any (one error: the walk stops there)."""
    counts = written(document)
    for limit, maximum in (
        ("fragmentSpreads", bounds.fragment_spreads),
        ("directives", bounds.directives),
        ("aliases", bounds.aliases),
    ):
        if counts[limit] > maximum:
            return [limit_error(limit, maximum, counts[limit])]
    walk = MergedWalk(document, bounds)
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
            error = walk.root(definition.selection_set)
            if error is not None:
                return [error]
    return shape_errors(document, bounds)


def shape_errors(document: DocumentNode, bounds: DocumentBounds) -> list[GraphQLError]:
    """The depth or root fields of the first operation over its limit."""
    shape = Shape(document)
    for operation in document.definitions:
        if not isinstance(operation, OperationDefinitionNode):
            continue
        for limit, maximum, actual in (
            ("depth", bounds.depth, shape.depth(operation.selection_set)),
            ("rootFields", bounds.root_fields, shape.root_fields(operation.selection_set)),
        ):
            if actual > maximum:
                return [limit_error(limit, maximum, actual, operation)]
    return []


def written(document: DocumentNode) -> Counter[str]:
    """Fragment spreads, directives and aliases, as written (no fragment expanded)."""
    spreads = directives = aliases = 0
    pending: list[SelectionSetNode] = []
    for definition in document.definitions:
        if isinstance(definition, ExecutableDefinitionNode):
            directives += len(definition.directives or ())
            for variable in definition.variable_definitions or ():
                directives += len(variable.directives or ())
            pending.append(definition.selection_set)
    while pending:
        for selection in pending.pop().selections:
            directives += len(selection.directives or ())
            if isinstance(selection, FragmentSpreadNode):
                spreads += 1
                continue
            if isinstance(selection, FieldNode) and selection.alias is not None:
                aliases += 1
            if isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                pending.append(selection.selection_set)
    return Counter(fragmentSpreads=spreads, directives=directives, aliases=aliases)


class MergedWalk:
    """Each position of an operation with its fragments expanded, fields merged by response
    name, as execution (and the overlapping-fields rule) see it; stops at the first limit."""

    def __init__(self, document: DocumentNode, bounds: DocumentBounds) -> None:
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.bounds = bounds
        self.selections = self.merges = 0

    def root(self, selection_set: SelectionSetNode) -> GraphQLError | None:
        positions: list[Position] = [[(selection_set, frozenset())]]
        while positions:
            found = self.position(positions.pop())
            if isinstance(found, GraphQLError):
                return found
            positions.extend(found)
        return None

    def position(self, merged: Position) -> list[Position] | GraphQLError:
        """The positions below this one, or the limit this one exceeds."""
        occurrences: Counter[str] = Counter()
        below: dict[str, Position] = {}
        pending = list(merged)
        while pending:
            selection_set, expanding = pending.pop()
            for selection in selection_set.selections:
                self.selections += 1  # spreads too: a chain of empty fragments is work
                if self.selections > self.bounds.selections:
                    return limit_error("selections", self.bounds.selections, self.selections)
                if isinstance(selection, FieldNode):
                    key = (selection.alias or selection.name).value
                    occurrences[key] += 1
                    self.merges += occurrences[key] - 1
                    if occurrences[key] > self.bounds.field_occurrences:
                        maximum = self.bounds.field_occurrences
                        return limit_error("fieldOccurrences", maximum, occurrences[key])
                    if self.merges > self.bounds.field_merges:
                        return limit_error("fieldMerges", self.bounds.field_merges, self.merges)
                    if selection.selection_set:
                        below.setdefault(key, []).append((selection.selection_set, expanding))
                elif isinstance(selection, InlineFragmentNode):
                    pending.append((selection.selection_set, expanding))
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.fragments.get(name)
                    if fragment is not None and name not in expanding:
                        pending.append((fragment.selection_set, expanding | {name}))
        return list(below.values())
