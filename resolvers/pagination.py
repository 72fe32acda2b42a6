"""Relay pagination arguments: validation and opaque keyset cursors."""

import base64
import binascii
from collections.abc import Callable
from typing import Any

import orjson

from loaders.pagination import Window
from resolvers.errors import UserInputError

Cursor = tuple[Any, ...]
# the most items one `first`, `last` or other slicing argument may ask for: the resolvers, the
# schema's descriptions and the cost model (graph/pipeline/cost.py) all read it here
MAX_PAGE_SIZE = 100


def encode_cursor(kind: str, key: Cursor) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([kind, *key])).decode().rstrip("=")


def decode_cursor(
    kind: str, cursor: str, argument: str, parse: Callable[[list[Any]], Cursor]
) -> Cursor:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
        if not isinstance(value, list) or not value or value[0] != kind:
            raise ValueError(kind)
        return parse(value[1:])
    except (binascii.Error, ValueError, TypeError, IndexError) as error:
        raise UserInputError(
            f"`{argument}` is not a cursor of this connection: {cursor[:64]!r}.", argument=argument
        ) from error


def window(
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    *,
    default: int,
    decode: Callable[[str, str], Cursor],
) -> Window:
    """`first`/`after` pages forward, `last`/`before` backward; mixing the two is refused."""
    if first is not None and last is not None:
        raise UserInputError("Pass `first` or `last`, not both.", argument="last")
    for name, value in (("first", first), ("last", last)):
        if value is not None and not 1 <= value <= MAX_PAGE_SIZE:
            raise UserInputError(
                f"`{name}` must be between 1 and {MAX_PAGE_SIZE}, received {value}.",
                argument=name,
            )
    if last is not None or (before is not None and first is None):
        if after is not None:
            raise UserInputError("`after` pages forward: use it with `first`.", argument="after")
        cursor = decode(before, "before") if before is not None else None
        return Window(last or default, forward=False, cursor=cursor)
    if before is not None:
        raise UserInputError("`before` pages backward: use it with `last`.", argument="before")
    cursor = decode(after, "after") if after is not None else None
    return Window(first or default, forward=True, cursor=cursor)
