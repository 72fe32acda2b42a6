"""One place that gives every error its `extensions.code` and masks the unexpected ones."""

import asyncio
import logging
import socket
from collections.abc import Iterable
from typing import Any, cast

from asyncpg.exceptions import (
    AdminShutdownError,
    CannotConnectNowError,
    ConnectionDoesNotExistError,
    CrashShutdownError,
    PostgresConnectionError,
    QueryCanceledError,
)
from graphql import GraphQLError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from db.reader import PoolExhausted

log = logging.getLogger(__name__)

MASKED = "Internal server error."


def request_error(message: str, code: str, **extensions: Any) -> dict[str, Any]:
    """An error raised before execution, as it appears in the response."""
    return {"message": message, "extensions": {"code": code, **extensions}}


# PostgreSQL down, restarting or unreachable: it refused, dropped or shut the connection
UNREACHABLE = (
    ConnectionError,
    socket.gaierror,
    PostgresConnectionError,
    ConnectionDoesNotExistError,
    CannotConnectNowError,
    AdminShutdownError,
    CrashShutdownError,
)


def unreachable(error: BaseException) -> bool:
    # a Unix socket gone with its server (no file name: not a file anyone opened)
    gone = isinstance(error, FileNotFoundError) and error.filename is None
    return gone or isinstance(error, UNREACHABLE)


def _cause(error: BaseException) -> str | None:
    """Codes for exceptions that are expected at runtime but do not carry a code."""
    if isinstance(error, asyncio.TimeoutError | QueryCanceledError):
        return "TIMEOUT"
    if isinstance(error, DBAPIError) and isinstance(error.orig, Exception):
        if error.connection_invalidated:  # SQLAlchemy saw the connection die
            return "DATABASE_UNAVAILABLE"
        # SQLAlchemy wraps the driver's error; asyncpg's sits behind the adapter's
        return _cause(error.orig.__cause__ or error.orig)
    if isinstance(error, PoolTimeoutError | PoolExhausted):
        return "SERVICE_UNAVAILABLE"
    return "DATABASE_UNAVAILABLE" if unreachable(error) else None


MESSAGES = {
    "TIMEOUT": "The database statement timed out.",
    "SERVICE_UNAVAILABLE": "No database connection was free in time; retry later.",
    "DATABASE_UNAVAILABLE": "The database is unavailable; retry later.",
}
CODES = {"DATABASE_UNAVAILABLE": "SERVICE_UNAVAILABLE"}  # one code for clients, two messages


def coded(error: BaseException) -> tuple[str, str] | None:
    """The code and message of an expected runtime failure (None: unexpected)."""
    cause = _cause(error)
    return None if cause is None else (CODES.get(cause, cause), MESSAGES[cause])


def format_execution_error(error: GraphQLError) -> dict[str, Any]:
    """Keep coded errors; give expected runtime failures their code; mask everything else."""
    formatted = dict(error.formatted)
    extensions = cast(dict[str, Any], formatted.get("extensions") or {})
    if "code" in extensions:
        return formatted
    original = error.original_error
    known = coded(original) if original is not None else None
    if known is not None:
        code, message = known
        return {**formatted, "message": message, "extensions": {"code": code}}
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
