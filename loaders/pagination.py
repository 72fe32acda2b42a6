"""Keyset pagination: a window over an ordered key, fetched with one extra row to see beyond."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, tuple_

V = TypeVar("V")


@dataclass(frozen=True)
class Window:
    """`size` rows after `cursor` (forward) or before it (backward); cursor is a key tuple."""

    size: int
    forward: bool = True
    cursor: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class Page(Generic[V]):
    rows: list[V]
    more: bool  # rows exist beyond this page in the direction of travel
    window: Window


def keyset(
    statement: Select[Any], key: Sequence[ColumnElement[Any]], descending: bool, window: Window
) -> Select[Any]:
    """Order by `key` (descending or not) and keep `window.size + 1` rows of the window."""
    ascending_scan = descending != window.forward
    if window.cursor is not None:
        columns, values = tuple_(*key), tuple_(*window.cursor)
        statement = statement.where(columns > values if ascending_scan else columns < values)
    order = [column.asc() if ascending_scan else column.desc() for column in key]
    return statement.order_by(*order).limit(window.size + 1)


def page(rows: Sequence[V], window: Window) -> Page[V]:
    kept = list(rows[: window.size])
    if not window.forward:
        kept.reverse()
    return Page(kept, len(rows) > window.size, window)
