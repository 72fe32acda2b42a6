"""The supergraph is composed with Apollo's own composition library (ops/gateway/compose.mjs)."""

import subprocess
from pathlib import Path

import yaml

from tests.conftest import REPO

SUPERGRAPH = REPO / "ops" / "gateway" / "supergraph.graphql"

CONFLICTING = """
extend schema @link(url: "https://specs.apollo.dev/federation/v2.11", import: ["@key"])
type Company @key(fields: "ticker") { ticker: String! name: Int }
type Query { rival: Company }
"""


def compose(tools: Path, config: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["node", str(tools / "compose.mjs"), str(config), str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_committed_supergraph_is_current(gateway_tools: Path, tmp_path: Path) -> None:
    done = compose(
        gateway_tools, gateway_tools / "supergraph.yaml", tmp_path / "supergraph.graphql"
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "supergraph.graphql").read_text() == SUPERGRAPH.read_text(), (
        "ops/gateway/supergraph.graphql is stale: run `node ops/gateway/compose.mjs`"
    )


def test_composition_errors_fail(gateway_tools: Path, tmp_path: Path) -> None:
    (tmp_path / "rival.graphql").write_text(CONFLICTING)
    config = tmp_path / "supergraph.yaml"
    subgraphs = {
        "corpgraph": {
            "routing_url": "http://corpgraph",
            "schema": {"file": str(REPO / "schema/schema.graphql")},
        },
        "rival": {"routing_url": "http://rival", "schema": {"file": "rival.graphql"}},
    }
    config.write_text(yaml.safe_dump({"subgraphs": subgraphs}))
    done = compose(gateway_tools, config, tmp_path / "out.graphql")
    assert done.returncode == 1
    assert "error:" in done.stderr and "Company.name" in done.stderr
    assert not (tmp_path / "out.graphql").exists()
