"""One place that gives every error its `extensions.code` and masks the unexpected ones."""

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, cast

from asyncpg.exceptions import QueryCanceledError
from graphql import GraphQLError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from db.reader import PoolExhausted

log = logging.getLogger(__name__)

MASKED = "Internal server error."


def request_error(message: str, code: str, **extensions: Any) -> dict[str, Any]:
    """An error raised before execution, as it appears in the response."""
    return {"message": message, "extensions": {"code": code, **extensions}}


def _cause_code(error: BaseException) -> str | None:
    """Codes for exceptions that are expected at runtime but do not carry a code."""
    if isinstance(error, asyncio.TimeoutError | QueryCanceledError):
        return "TIMEOUT"
    if isinstance(error, DBAPIError) and isinstance(error.orig, Exception):
        # SQLAlchemy wraps the driver's error; asyncpg's sits behind the adapter's
        return _cause_code(error.orig.__cause__ or error.orig)
    if isinstance(error, PoolTimeoutError | PoolExhausted):
        return "SERVICE_UNAVAILABLE"
    return None


MESSAGES = {
    "TIMEOUT": "The database statement timed out.",
    "SERVICE_UNAVAILABLE": "No database connection was free in time; retry later.",
}


def format_execution_error(error: GraphQLError) -> dict[str, Any]:
    """Keep coded errors; give expected runtime failures their code; mask everything else."""
    formatted = dict(error.formatted)
    extensions = cast(dict[str, Any], formatted.get("extensions") or {})
    if "code" in extensions:
        return formatted
    original = error.original_error
    code = _cause_code(original) if original is not None else None
    if code is not None:
        return {**formatted, "message": MESSAGES[code], "extensions": {"code": code}}
    if original is None:
        # graphql-core's own runtime errors (e.g. a null in a non-null field): our bug
        log.error("execution error at %s: %s", error.path, error.message)
    else:
        log.error("unexpected error at %s", error.path, exc_info=original)
    return {**formatted, "message": MASKED, "extensions": {"code": "INTERNAL_SERVER_ERROR"}}


def format_request_errors(
    errors: Iterable[GraphQLError], default_code: str
) -> list[dict[str, Any]]:
    """Parse, validation and variable errors: no data was produced."""
    result = []
    for error in errors:
        formatted = dict(error.formatted)
        extensions = cast(dict[str, Any], formatted.get("extensions") or {})
        formatted["extensions"] = {"code": default_code, **extensions}
        result.append(formatted)
    return result
