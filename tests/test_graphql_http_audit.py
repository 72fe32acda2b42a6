"""The GraphQL over HTTP audit (npm `graphql-http`, `auditServer`, tests/clients/audit.mjs):
every MUST, SHOULD and MAY it checks passes against a real corpgraph in development mode, and
the same audit fails an endpoint that does not speak GraphQL, so a pass means something."""

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from graph.app import create_app
from graph.settings import Settings
from tests.servers import threaded


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[str]:
    """The base URL of a corpgraph in development mode."""
    with threaded(create_app(settings.replace(env="development")), "/health/ready") as base:
        yield base


def audit(client_tools: Path, url: str) -> list[dict[str, Any]]:
    ran = subprocess.run(
        ["node", str(client_tools / "audit.mjs"), url],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    results: list[dict[str, Any]] = orjson.loads(ran.stdout)
    return results


def test_every_audit_is_ok(client_tools: Path, server: str) -> None:
    results = audit(client_tools, f"{server}/graphql")
    failing = [result for result in results if result["status"] != "ok"]
    # the whole audit ran (61 audits in graphql-http 1.23.1), at each requirement level
    assert len(results) > 50, results
    assert {result["name"].split()[0] for result in results} == {"MUST", "SHOULD", "MAY"}
    assert not failing, "\n".join(
        f"{r['status']} {r['id']} {r['name']}: {r['reason']} (HTTP {r['httpStatus']}: {r['body']})"
        for r in failing
    )


def test_the_audit_fails_an_endpoint_that_is_not_graphql(client_tools: Path, server: str) -> None:
    results = audit(client_tools, f"{server}/health/live")
    failed = {result["id"] for result in results if result["status"] == "error"}
    assert {"2C94", "03D4"} <= failed, results  # MUST accept (application/json) POST requests
