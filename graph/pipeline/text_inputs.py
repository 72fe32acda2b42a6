"""Text that PostgreSQL cannot hold: a NUL character in an argument (a literal, checked with
the document's validation) or in a variable (checked per request) is BAD_USER_INPUT naming it,
before anything runs, rather than a database error in the middle of execution."""

from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    ArgumentNode,
    ASTValidationRule,
    GraphQLError,
    StringValueNode,
    ValueNode,
)

from graph.execution.compiled import value_leaves

NUL = "\x00"


def literal_strings(value: ValueNode) -> Iterator[str]:
    return (leaf.value for leaf in value_leaves(value) if isinstance(leaf, StringValueNode))


class NoNulInArguments(ASTValidationRule):
    def enter_argument(self, node: ArgumentNode, *_: Any) -> None:
        if any(NUL in text for text in literal_strings(node.value)):
            name = node.name.value
            self.report_error(
                GraphQLError(
                    f"`{name}` contains a NUL character, which no text here can hold.",
                    node,
                    extensions={"code": "BAD_USER_INPUT", "argument": name},
                )
            )


def holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, list):
        return any(holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any(holds_nul(key) or holds_nul(item) for key, item in value.items())
    return False


def nul_in_variables(variables: Mapping[str, Any] | None) -> GraphQLError | None:
    """The first variable that holds a NUL character, as the error to answer with."""
    for name, value in (variables or {}).items():
        if holds_nul(value):
            return GraphQLError(
                f"Variable `${name}` contains a NUL character, which no text here can hold.",
                extensions={"code": "BAD_USER_INPUT", "variable": name},
            )
    return None
