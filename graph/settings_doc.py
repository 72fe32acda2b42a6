"""Render docs/configuration.md from the Settings object, so the page cannot drift from it.

    python -m graph.settings_doc > docs/configuration.md

tests/test_settings_doc.py fails while the committed page differs from this rendering.
"""

from datetime import timedelta
from typing import Any, get_args

from pydantic.fields import FieldInfo

from graph.settings import DEFAULT_TIERS, Settings

PREAMBLE = """\
# Configuration

<!-- Made by `python -m graph.settings_doc > docs/configuration.md`: edit the docstrings in
graph/settings.py, not this page. -->

corpgraph reads its settings once, at start, from environment variables named
`CORPGRAPH_` + the setting (`CORPGRAPH_PORT=9000`), into `graph.settings.Settings`.
A bad value stops corpgraph with an error naming the setting and the value.
Durations take seconds (`5`, `0.5`) or ISO 8601 (`PT5S`). Lists are comma-separated.

| variable | default | meaning |
| --- | --- | --- |
"""

TIERS = """
## Tiers

What each tier of clients may spend (see [Query cost and budgets](api.md#query-cost-and-budgets)):
the ceiling is the most one request may cost, the bucket is the points a client has, refilled
at the restore rate. `CORPGRAPH_TIERS` overrides them by name.

| tier | ceiling per request | bucket | restores per second |
| --- | --- | --- | --- |
"""


def duration(value: timedelta) -> str:
    seconds = value.total_seconds()
    for unit, size in (("days", 86_400), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def default_of(field: FieldInfo) -> str:
    value = field.default
    if field.default_factory is not None or value is None or value == []:
        return "-"  # the meaning says what unset means
    if isinstance(value, timedelta):
        return duration(value)
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict):
        return "[below](#tiers)"
    return f"`{value}`"


def choices_of(field: FieldInfo) -> str:
    """`a`, `b` or `c` for a Literal setting, else nothing."""
    arguments = get_args(field.annotation)  # Literal[...], or Literal[...] | None
    options = [a for arg in arguments for a in get_args(arg)] or list(arguments)
    if not options or not all(isinstance(option, str) for option in options):
        return ""
    quoted = [f"`{option}`" for option in options]
    return " One of " + ", ".join(quoted[:-1]) + f" or {quoted[-1]}."


def row(name: str, field: FieldInfo) -> str:
    assert field.description, f"Settings.{name} has no docstring"
    meaning = " ".join(field.description.split()) + choices_of(field)
    return f"| `CORPGRAPH_{name.upper()}` | {default_of(field)} | {meaning} |\n"


def tier_rows() -> str:
    return "".join(
        f"| `{name}` | {tier.ceiling:,} | {tier.capacity:,} | {tier.restore_rate:,g} |\n"
        for name, tier in DEFAULT_TIERS.items()
    )


def render() -> str:
    fields: dict[str, Any] = Settings.model_fields
    rows = "".join(row(name, field) for name, field in fields.items())
    return PREAMBLE + rows + TIERS + tier_rows()


if __name__ == "__main__":
    print(render(), end="")
