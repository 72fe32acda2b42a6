"""A document's shape (depth and root fields) and the error of a limit it exceeds.

Each refusal is QUERY_LIMIT_EXCEEDED with `extensions.limit` naming the bound. The token
limit is enforced by the parser itself (see graph.pipeline.pipeline); the other limits are checked
before validation (graph.pipeline.prevalidation).
"""

from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    SelectionSetNode,
)


def limit_error(limit: str, maximum: int, actual: int, node: Any = None) -> GraphQLError:
    return GraphQLError(
        f"Query exceeds the {limit} limit: {actual} > {maximum}.",
        node,
        extensions={
            "code": "QUERY_LIMIT_EXCEEDED",
            "limit": limit,
            "maximum": maximum,
            "actual": actual,
        },
    )


class Shape:
    """Depth and root-field count of selection sets, through fragments.

    A fragment's depth is memoized, so fragment "bombs" (a fragment spread many times in
    many places) cost linear time; cycles count as depth 0 (NoFragmentCycles reports them).
    """

    def __init__(self, document: DocumentNode) -> None:
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self._depths: dict[str, int] = {}

    def _fragment(self, name: str) -> SelectionSetNode | None:
        fragment = self.fragments.get(name)
        return fragment.selection_set if fragment else None

    def depth(self, selection_set: SelectionSetNode | None) -> int:
        if selection_set is None:
            return 0
        deepest = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                deepest = max(deepest, 1 + self.depth(selection.selection_set))
            elif isinstance(selection, InlineFragmentNode):
                deepest = max(deepest, self.depth(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                deepest = max(deepest, self.fragment_depth(selection.name.value))
        return deepest

    def fragment_depth(self, name: str) -> int:
        if name not in self._depths:
            self._depths[name] = 0  # a cycle back to `name` sees 0
            self._depths[name] = self.depth(self._fragment(name))
        return self._depths[name]

    def root_fields(
        self, selection_set: SelectionSetNode | None, seen: frozenset[str] = frozenset()
    ) -> int:
        if selection_set is None:
            return 0
        count = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                count += 1
            elif isinstance(selection, InlineFragmentNode):
                count += self.root_fields(selection.selection_set, seen)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                name = selection.name.value
                count += self.root_fields(self._fragment(name), seen | {name})
        return count
