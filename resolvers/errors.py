"""Expected failures, each with the `extensions.code` of the public contract."""

from typing import Any

from graphql import GraphQLError


class UserInputError(GraphQLError):
    """An argument or variable out of range or malformed: BAD_USER_INPUT."""

    def __init__(self, message: str, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": "BAD_USER_INPUT", **extensions})


MAX_LIST_VALUES = 100  # the most values a list argument (tickers, formTypes, names) may carry


def limit_list(
    name: str, values: list[str] | None, maximum: int = MAX_LIST_VALUES
) -> tuple[str, ...] | None:
    """Lists filter SQL: bound their length and make them hashable loader keys."""
    if values is None:
        return None
    if len(values) > maximum:
        raise UserInputError(
            f"`{name}` takes at most {maximum} values, received {len(values)}.", argument=name
        )
    return tuple(dict.fromkeys(values))
