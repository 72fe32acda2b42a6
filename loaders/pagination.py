"""Keyset pagination: a window over an ordered key, fetched with one extra row to see beyond."""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, bindparam, tuple_

V = TypeVar("V")


@dataclass(frozen=True)
class Window:
    """`size` rows after `cursor` (forward) or before it (backward); cursor is a key tuple."""

    size: int
    forward: bool = True
    cursor: tuple[Any, ...] | None = None

    @property
    def shape(self) -> tuple[bool, bool]:
        return self.forward, self.cursor is not None

    def params(self) -> dict[str, Any]:
        values = {f"cursor_{index}": value for index, value in enumerate(self.cursor or ())}
        return {"limit": self.size + 1, **values}


@dataclass(frozen=True)
class Page(Generic[V]):
    rows: list[V]
    more: bool  # rows exist beyond this page in the direction of travel
    window: Window


def keyset(
    statement: Select[Any],
    key: Sequence[ColumnElement[Any]],
    descending: bool,
    shape: tuple[bool, bool],
) -> Select[Any]:
    """Order by `key` and keep `:limit` rows after `:cursor_0, :cursor_1, ...` if there is one."""
    forward, has_cursor = shape
    ascending_scan = descending != forward
    if has_cursor:
        values = [bindparam(f"cursor_{i}", type_=column.type) for i, column in enumerate(key)]
        columns, cursor = tuple_(*key), tuple_(*values)
        statement = statement.where(columns > cursor if ascending_scan else columns < cursor)
    order = [column.asc() if ascending_scan else column.desc() for column in key]
    return statement.order_by(*order).limit(bindparam("limit"))


def page(rows: Sequence[V], window: Window) -> Page[V]:
    kept = list(rows[: window.size])
    if not window.forward:
        kept.reverse()
    return Page(kept, len(rows) > window.size, window)
