"""Strawberry's name converter, memoized: it otherwise re-derives every argument's GraphQL name
(snake_case to camelCase) on every resolver call, a few microseconds each."""

from typing import Any

from strawberry.schema.name_converter import NameConverter
from strawberry.types.arguments import StrawberryArgument


class MemoizedNameConverter(NameConverter):
    def __init__(self) -> None:
        super().__init__(auto_camel_case=True)
        self._arguments: dict[int, tuple[Any, str]] = {}

    def from_argument(self, argument: StrawberryArgument) -> str:
        cached = self._arguments.get(id(argument))
        if cached is None or cached[0] is not argument:
            cached = self._arguments[id(argument)] = (argument, super().from_argument(argument))
        return cached[1]
