"""Objects rendered as JSON text by PostgreSQL, byte for byte as the response would encode them.

A list of objects that selects only scalar columns (a filing's `metrics { name value unit
periodEnd }`) need not pass through Python value by value: the statement renders each row as
the text `orjson.dumps` would give its completed object, and the response embeds the texts
(`orjson.Fragment`). Each scalar is rendered as its GraphQL serialization renders it:

- String, ID: `to_json(text)`, which escapes as orjson does (`"`, `\\`, `\\b` `\\f` `\\n` `\\r`
  `\\t`, other control characters as `\\u00XX`; the rest as UTF-8).
- Float: PostgreSQL's shortest exact text of the double (`extra_float_digits` at its default,
  1), in orjson's notation: `100.0` where PostgreSQL writes `100`, positional from 1e-5 to
  below 1e16 and `1.5e+16`, `1e-6` beyond, where PostgreSQL writes `1.5e+16`, `1e-06` and
  switches at 1e-4 and 1e15.
- Int, Boolean, Date (`YYYY-MM-DD`), DateTime (UTC with `Z`, microseconds when not zero).
- `__typename`: the type's name.

What Python would refuse (a null in a non-null field, NaN or an infinity, an Int beyond 32
bits, an infinite date) makes the row not `trusted`: the caller then reads the rows instead.
tests/test_json_lists.py compares the bytes with the Python path's.
"""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import orjson
from sqlalchemy import (
    Boolean,
    ColumnElement,
    Date,
    Double,
    FromClause,
    Integer,
    String,
    literal_column,
)
from sqlalchemy.types import TIMESTAMP, SmallInteger, TypeEngine

TYPENAME = "__typename"
JSON_LIST = "json_list"  # the key of a field's JsonList in its Strawberry metadata
INT_RANGE = "BETWEEN -2147483648 AND 2147483647"  # GraphQL's Int: 32 bits


class JsonLeaf(NamedTuple):
    """One selected scalar field: its response name, its column, its GraphQL scalar and
    whether the field is non-null; or `__typename` as the column and the type's name as the
    scalar."""

    key: str
    column: str
    scalar: str
    non_null: bool


Selection = tuple[JsonLeaf, ...]


@dataclass(frozen=True)
class JsonList:
    """A list field whose objects are rows of `table`: `load(source, info, selection,
    **arguments)` answers a selection of its columns as the objects' JSON texts, or None
    where some value is not `trusted` (then the field's own resolver answers)."""

    table: FromClause
    load: Callable[..., Awaitable[list[orjson.Fragment] | None]]


class JsonObject(NamedTuple):
    text: ColumnElement[str]  # the row's object as JSON text
    trusted: ColumnElement[bool]  # false: Python would not serialize some value as is


def _float(column: str) -> str:
    text = f"({column})::text"
    scientific = (
        f"(SELECT CASE WHEN e BETWEEN -5 AND 15 THEN {_positional('s', 'd', 'e')} "
        "ELSE s || left(d, 1) || CASE WHEN length(d) > 1 THEN '.' || substr(d, 2) ELSE '' END "
        "|| 'e' || CASE WHEN e > 0 THEN '+' ELSE '-' END || abs(e) END "
        f"FROM (SELECT m[1] AS s, m[2] || m[3] AS d, m[4]::int AS e "
        f"FROM regexp_match({text}, '^(-?)(\\d)\\.?(\\d*)e([-+]\\d+)$') AS m) AS parts)"
    )
    return (
        f"CASE WHEN strpos({text}, 'e') > 0 THEN {scientific} "
        f"WHEN strpos({text}, '.') > 0 THEN {text} ELSE {text} || '.0' END"
    )


def _positional(sign: str, digits: str, exponent: str) -> str:
    """d.ddd x 10^e written out: `0.0000ddd` below 1, `ddd000.0` or `dd.dd` above."""
    return (
        f"{sign} || CASE WHEN {exponent} < 0 THEN '0.' || repeat('0', -{exponent} - 1) || {digits} "
        f"WHEN length({digits}) <= {exponent} + 1 THEN rpad({digits}, {exponent} + 1, '0') || '.0' "
        f"ELSE left({digits}, {exponent} + 1) || '.' || substr({digits}, {exponent} + 2) END"
    )


def _datetime(column: str) -> str:
    utc = f"(({column}) AT TIME ZONE 'UTC')"
    return (
        f"""'"' || to_char({utc}, 'YYYY-MM-DD"T"HH24:MI:SS') """
        f"|| CASE WHEN to_char({utc}, 'US') = '000000' THEN '' "
        f"""ELSE '.' || to_char({utc}, 'US') END || 'Z"'"""
    )


def _rendering(scalar: str, kind: TypeEngine[object], column: str) -> tuple[str, str] | None:
    """The SQL of a value's JSON text, and the condition for Python to serialize it as is."""
    if scalar in ("String", "ID") and isinstance(kind, String):
        return f"to_json({column})::text", "true"
    if scalar == "Float" and isinstance(kind, Double):
        return _float(column), f"{column} NOT IN ('NaN', 'Infinity', '-Infinity')"
    if scalar == "Int" and isinstance(kind, Integer | SmallInteger):
        return f"({column})::text", f"{column} {INT_RANGE}"
    if scalar == "Boolean" and isinstance(kind, Boolean):
        return f"CASE WHEN {column} THEN 'true' ELSE 'false' END", "true"
    if scalar == "Date" and isinstance(kind, Date):
        return f"""'"' || to_char({column}, 'YYYY-MM-DD') || '"'""", f"isfinite({column})"
    if scalar == "DateTime" and isinstance(kind, TIMESTAMP) and kind.timezone:
        return _datetime(column), f"isfinite({column})"
    return None


def json_object(table: FromClause, selection: Sequence[JsonLeaf]) -> JsonObject | None:
    """A row of `table` as the JSON object `selection` makes of it; None when some field is
    not a column this module renders."""
    parts, conditions = [], []
    for leaf in selection:
        key = f'"{leaf.key}":'  # a GraphQL name: letters, digits and underscores
        if leaf.column == TYPENAME:
            parts.append(f"""'{key}"{leaf.scalar}"'""")
            continue
        column = table.c.get(leaf.column)
        if column is None:
            return None
        qualified = str(column)  # table.column
        rendering = _rendering(leaf.scalar, column.type, qualified)
        if rendering is None:
            return None
        value, trusted = rendering
        if leaf.non_null:
            conditions.append(f"{qualified} IS NOT NULL")
            parts.append(f"'{key}' || {value}")
        else:
            parts.append(f"'{key}' || coalesce({value}, 'null')")
        conditions.append(f"({qualified} IS NULL OR {trusted})")
    text = "'{' || " + " || ',' || ".join(parts) + " || '}'" if parts else "'{}'"
    trusted = " AND ".join(conditions) or "true"
    return JsonObject(literal_column(text), literal_column(trusted))
