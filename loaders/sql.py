"""Helpers for the loaders' statements and their rows.

Statements are built once per shape (which filters are present, which way a page goes) with
named bind parameters, and cached: building a LATERAL select in SQLAlchemy costs ~0.4 ms
and its cache key ~0.1 ms, against microseconds to reuse a built one.
"""

from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def align_one(keys: Sequence[K], rows: Sequence[V], key: Callable[[V], K]) -> list[V | None]:
    by_key = {key(row): row for row in rows}
    return [by_key.get(k) for k in keys]


def align_many(keys: Sequence[K], rows: Sequence[V], key: Callable[[V], K]) -> list[list[V]]:
    groups: dict[K, list[V]] = {k: [] for k in keys}
    for row in rows:
        groups[key(row)].append(row)
    return [groups[k] for k in keys]


def any_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """`column = ANY(:name)`: one array parameter, so the statement text (and its prepared
    statement) is the same whatever the batch size, unlike an expanding `IN (...)`."""
    return column == any_(bindparam(name, type_=ARRAY(column.type)))
