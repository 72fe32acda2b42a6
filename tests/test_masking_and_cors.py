"""Unexpected errors are masked in one place; CORS follows the allowlist."""

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import strawberry
from starlette.testclient import TestClient

from graph.app import create_app
from graph.execution.compiled import EXECUTORS
from graph.pipeline.pipeline import Pipeline
from graph.settings import Settings
from loaders.request import Loaders
from resolvers.context import Context


@strawberry.type
class Boom:
    @strawberry.field
    def fine(self) -> str:
        return "ok"

    @strawberry.field
    def broken(self) -> str | None:
        raise RuntimeError("password=hunter2 at /srv/secret/path.py")

    @strawberry.field
    def broken_required(self) -> str:
        raise KeyError("internal detail")


@strawberry.type
class BoomQuery:
    @strawberry.field
    def boom(self) -> Boom:
        return Boom()


def run(query: str, settings: Settings) -> dict[str, Any]:
    executor = EXECUTORS[settings.executor]
    pipeline = Pipeline(strawberry.Schema(query=BoomQuery)._schema, settings, executor)
    context = Context(Loaders(None, None))  # type: ignore[arg-type]  # no data behind it
    outcome = asyncio.run(pipeline.run(query, None, None, context, mutations_allowed=True))
    return outcome.payload


@pytest.mark.executors
def test_unexpected_errors_are_masked_and_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="graph.pipeline.errors"):
        payload = run("{ boom { fine broken } }", settings)
    assert payload["data"] == {"boom": {"fine": "ok", "broken": None}}  # partial data kept
    (error,) = payload["errors"]
    assert error["message"] == "Internal server error."
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR"}
    assert error["path"] == ["boom", "broken"]
    assert "hunter2" not in str(payload) and "Traceback" not in str(payload)
    assert "hunter2" in caplog.text  # the trace is in the log, for operators


@pytest.mark.executors
def test_masked_error_in_a_non_null_field_nulls_its_parent(settings: Settings) -> None:
    payload = run("{ boom { fine brokenRequired } }", settings)
    assert payload["data"] is None
    assert [e["extensions"]["code"] for e in payload["errors"]] == ["INTERNAL_SERVER_ERROR"]


@pytest.fixture(scope="module")
def cors_client(settings: Settings) -> Iterator[TestClient]:
    app = create_app(settings.replace(cors_origins="https://app.example.com, https://x.example"))
    with TestClient(app) as client:
        yield client


def preflight(client: TestClient, origin: str) -> dict[str, str]:
    response = client.options(
        "/graphql",
        headers={
            "origin": origin,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type,authorization",
        },
    )
    return dict(response.headers)


def test_cors_allows_only_the_allowlist(cors_client: TestClient, client: TestClient) -> None:
    allowed = preflight(cors_client, "https://app.example.com")
    assert allowed["access-control-allow-origin"] == "https://app.example.com"
    assert "authorization" in allowed["access-control-allow-headers"].lower()
    assert "access-control-allow-origin" not in preflight(cors_client, "https://evil.example")
    assert "access-control-allow-origin" not in preflight(client, "https://app.example.com")
