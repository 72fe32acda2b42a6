"""Running one read statement on its own short-lived connection."""

from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Executable, Row, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncEngine

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


async def fetch(db: AsyncEngine, statement: Executable) -> Sequence[Row[Any]]:
    """Batches of different loaders run as concurrent tasks: each gets its own connection."""
    async with db.connect() as conn:
        return (await conn.execute(statement)).all()


def align_one(keys: Sequence[K], rows: Sequence[V], key: Callable[[V], K]) -> list[V | None]:
    by_key = {key(row): row for row in rows}
    return [by_key.get(k) for k in keys]


def align_many(keys: Sequence[K], rows: Sequence[V], key: Callable[[V], K]) -> list[list[V]]:
    groups: dict[K, list[V]] = {k: [] for k in keys}
    for row in rows:
        groups[key(row)].append(row)
    return [groups[k] for k in keys]


def any_of(column: ColumnElement[Any], values: Sequence[Any]) -> ColumnElement[bool]:
    """`column = ANY($1)`: one array parameter, so the statement text (and its prepared
    statement) is the same whatever the batch size, unlike an expanding `IN (...)`."""
    return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
