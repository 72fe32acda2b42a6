"""DateTime (ISO 8601 in UTC with `Z`) and Date (`YYYY-MM-DD`)."""

from datetime import UTC, date, datetime

import strawberry
from graphql import GraphQLError


def _bad(kind: str, value: object, example: str) -> GraphQLError:
    return GraphQLError(
        f"{kind} expects {example}, received {str(value)[:64]!r}.",
        extensions={"code": "BAD_USER_INPUT"},
    )


def serialize_datetime(value: datetime) -> str:
    if value.tzinfo is not UTC:  # asyncpg's instants are already UTC
        value = value.astimezone(UTC)
    return value.isoformat()[:-6] + "Z"  # "+00:00" as "Z"


def parse_datetime(value: object) -> datetime:
    example = "an ISO 8601 date-time with a time zone, e.g. 2024-02-01T21:30:00Z"
    if not isinstance(value, str):
        raise _bad("DateTime", value, example)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _bad("DateTime", value, example) from None
    if parsed.tzinfo is None:
        raise _bad("DateTime", value, example)
    return parsed.astimezone(UTC)


def parse_date(value: object) -> date:
    if not isinstance(value, str):
        raise _bad("Date", value, "YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise _bad("Date", value, "YYYY-MM-DD") from None


DateTime = strawberry.scalar(
    name="DateTime",
    description="An instant in ISO 8601, always in UTC with a `Z`: `2024-02-01T21:30:00Z`.",
    serialize=serialize_datetime,
    parse_value=parse_datetime,
)
Date = strawberry.scalar(
    name="Date",
    description="A calendar date in ISO 8601: `2024-02-01`.",
    serialize=date.isoformat,
    parse_value=parse_date,
)
SCALAR_OVERRIDES = {datetime: DateTime, date: Date}
