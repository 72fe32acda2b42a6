"""The TypeScript client example (ops/clients): graphql-codegen generates its typed documents
and persisted-documents.json from schema/schema.graphql and ops/operations, `tsc --strict`
compiles it, and a server in trusted mode that loads only those documents runs exactly them:
the example's queries and its subscription, by id; nothing ad hoc; the gateway still."""

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import pytest

from graph.app import create_app
from graph.settings import Settings
from tests.conftest import REPO, npm_installed
from tests.servers import threaded

EXAMPLE = REPO / "ops" / "clients"
GENERATED = EXAMPLE / "src" / "gql"
SECRET = "gateway-secret-for-tests"
VARIABLES = {
    "CompanyPage": {"ticker": "AAPL"},
    "MetricsChart": {"ticker": "AAPL", "names": ["revenue"]},
    "SectorDashboard": {"sector": "Financials"},
}
MISUSE = """import { CompanyPageDocument } from "../../src/gql/graphql.js";
import { query } from "../../src/client.js";
const page = await query("http://localhost", CompanyPageDocument, { ticker: 1 });
"""


def run(*command: str, cwd: Path = EXAMPLE) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def example() -> Path:
    """The example, generated and type-checked (`tsc --noEmit --strict`), then built."""
    npm_installed(EXAMPLE)
    bin = EXAMPLE / "node_modules" / ".bin"
    shutil.rmtree(GENERATED, ignore_errors=True)
    generated = run(str(bin / "graphql-codegen"), "--config", "codegen.ts")
    assert generated.returncode == 0, generated.stdout + generated.stderr
    checked = run(str(bin / "tsc"), "--noEmit", "--strict")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    built = run(str(bin / "tsc"))
    assert built.returncode == 0, built.stdout + built.stderr
    return EXAMPLE


@pytest.fixture(scope="module")
def documents(example: Path) -> dict[str, str]:
    generated: dict[str, str] = orjson.loads((GENERATED / "persisted-documents.json").read_bytes())
    return generated


@pytest.fixture(scope="module")
def server(example: Path, settings: Settings) -> Iterator[str]:
    trusted = settings.replace(
        persisted_mode="trusted",
        persisted_manifests=[GENERATED / "persisted-documents.json"],
        gateway_secret=SECRET,
    )
    with threaded(create_app(trusted), "/health/ready") as base:
        yield f"{base}/graphql"


def post(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(url, json=body, headers=headers, timeout=30)


def test_codegen_writes_every_operation_with_its_sha256(documents: dict[str, str]) -> None:
    names = {body.split("(")[0].split()[-1] for body in documents.values()}
    assert {"CompanyPage", "SectorDashboard", "MetricsChart", "FilingAlerts"} <= names
    assert all(key.startswith("sha256:") and len(key) == 71 for key in documents)


def test_the_types_catch_a_misuse(example: Path, tmp_path: Path) -> None:
    """A variable of the wrong type does not compile: the types are the schema's."""
    misuse = example / "node_modules" / ".corpgraph-misuse"
    misuse.mkdir(exist_ok=True)
    (misuse / "misuse.ts").write_text(MISUSE)
    config = {"extends": "../../tsconfig.json", "include": ["misuse.ts"],
              "compilerOptions": {"rootDir": "../..", "noEmit": True}}  # fmt: skip
    (misuse / "tsconfig.json").write_bytes(orjson.dumps(config))
    checked = run(str(example / "node_modules" / ".bin" / "tsc"), "-p", str(misuse))
    assert checked.returncode != 0
    assert "error TS2322" in checked.stdout and "'number' is not assignable" in checked.stdout


def test_the_example_runs_its_queries_and_subscription_by_id(example: Path, server: str) -> None:
    cursors = post(server, {"query": "{ filings(last: 1) { nodes { ingestCursor } } }"},
                   **{"x-corpgraph-gateway-secret": SECRET}).json()  # fmt: skip
    since = cursors["data"]["filings"]["nodes"][0]["ingestCursor"]
    ran = run("node", str(example / "dist" / "client.js"), server, "AAPL", since)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    page, dashboard, alert = (orjson.loads(line) for line in ran.stdout.splitlines())
    assert page["company"] == "Apple Inc." and page["filings"] > 0
    assert dashboard["sector"] == "Information Technology" and dashboard["tickers"]
    assert alert["alert"] and alert["ticker"]


def test_trusted_mode_runs_exactly_the_generated_documents(
    documents: dict[str, str], server: str
) -> None:
    for key, body in documents.items():
        name = body.split("(")[0].split()[-1]
        if name in VARIABLES:
            answer = post(server, {"documentId": key, "variables": VARIABLES[name]}).json()
            assert "errors" not in answer and answer["data"], (name, answer)
    ad_hoc = post(server, {"query": '{ company(ticker: "AAPL") { name } }'})
    assert ad_hoc.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_ID_REQUIRED"
    manifest = orjson.loads((REPO / "ops/operations/persisted-query-manifest.json").read_bytes())
    apollo_id = manifest["operations"][0]["id"]  # the same operation, printed otherwise
    assert f"sha256:{apollo_id}" not in documents
    other = post(server, {"documentId": f"sha256:{apollo_id}", "variables": {"ticker": "AAPL"}})
    assert other.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"


def test_the_gateway_is_served_in_trusted_mode(server: str) -> None:
    planned = post(server, {"query": '{ company(ticker: "AAPL") { name } }'},
                   **{"x-corpgraph-gateway-secret": SECRET})  # fmt: skip
    assert planned.json()["data"] == {"company": {"name": "Apple Inc."}}
