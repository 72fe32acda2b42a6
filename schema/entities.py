"""`_entities`: checking representations and resolving them through the entity types.

Each representation is checked on its own: a bad one (unknown `__typename`, no complete key,
a key that is not a string) becomes a BAD_USER_INPUT error at its own index, the others
still resolve; a well-formed key that matches nothing resolves to null, as the spec says.
"""

from collections.abc import Awaitable
from typing import Any

from graphql import GraphQLError

from resolvers.context import Info
from schema.companies import Company
from schema.filings import Filing

# Each entity type with its keys (the `@key` fields, in GraphQL names).
ENTITY_KEYS: dict[str, tuple[tuple[str, ...], ...]] = {
    "Company": (("id",), ("ticker",), ("cik",)),
    "Filing": (("id",), ("accessionNumber",)),
}
ENTITY_TYPES: dict[str, type[Company] | type[Filing]] = {"Company": Company, "Filing": Filing}


def bad_representation(index: int, problem: str) -> GraphQLError:
    return GraphQLError(
        f"representations[{index}]: {problem}",
        extensions={"code": "BAD_USER_INPUT", "representation": index},
    )


def key_of(typename: str, representation: dict[str, Any]) -> dict[str, str] | None:
    """The first complete key with string values, or None."""
    for fields in ENTITY_KEYS[typename]:
        values = {field: representation.get(field) for field in fields}
        if all(isinstance(value, str) for value in values.values()):
            return values  # type: ignore[return-value]
    return None


def resolve_entity(info: Info, index: int, representation: Any) -> Awaitable[Any] | GraphQLError:
    typename = representation.get("__typename") if isinstance(representation, dict) else None
    if typename not in ENTITY_KEYS:
        return bad_representation(
            index,
            f"`__typename` must be one of {sorted(ENTITY_KEYS)}, received {str(typename)[:64]!r}.",
        )
    key = key_of(typename, representation)
    if key is None:
        keys = " or ".join("+".join(fields) for fields in ENTITY_KEYS[typename])
        return bad_representation(index, f"a {typename} needs a string {keys}.")
    return ENTITY_TYPES[typename].resolve_reference(info, **key)
