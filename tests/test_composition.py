"""The supergraph is composed with Apollo's own composition library (ops/gateway/compose.mjs)."""

from pathlib import Path

import yaml

from tests.conftest import REPO, compose

SUPERGRAPH = REPO / "ops" / "gateway" / "supergraph.graphql"

CONFLICTING = """
extend schema @link(url: "https://specs.apollo.dev/federation/v2.11", import: ["@key"])
type Company @key(fields: "ticker") { ticker: String! name: Int }
type Query { rival: Company }
"""


def test_committed_supergraph_is_current(gateway_tools: Path, tmp_path: Path) -> None:
    done = compose(
        gateway_tools, gateway_tools / "supergraph.yaml", tmp_path / "supergraph.graphql"
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "supergraph.graphql").read_text() == SUPERGRAPH.read_text(), (
        "ops/gateway/supergraph.graphql is stale: run `node ops/gateway/compose.mjs`"
    )


def compose_beside_corpgraph(tools: Path, tmp_path: Path, sdl: str) -> tuple[int, str]:
    """Compose corpgraph with one other subgraph; (exit status, stderr)."""
    (tmp_path / "rival.graphql").write_text(sdl)
    config = tmp_path / "supergraph.yaml"
    subgraphs = {
        "corpgraph": {
            "routing_url": "http://corpgraph",
            "schema": {"file": str(REPO / "schema/schema.graphql")},
        },
        "rival": {"routing_url": "http://rival", "schema": {"file": "rival.graphql"}},
    }
    config.write_text(yaml.safe_dump({"subgraphs": subgraphs}))
    out = tmp_path / "out.graphql"
    out.unlink(missing_ok=True)
    done = compose(tools, config, out)
    assert out.exists() == (done.returncode == 0)
    return done.returncode, done.stderr


def test_composition_errors_fail(gateway_tools: Path, tmp_path: Path) -> None:
    status, errors = compose_beside_corpgraph(gateway_tools, tmp_path, CONFLICTING)
    assert status == 1
    assert "error:" in errors and "Company.name" in errors


RELAY_SUBGRAPH = """
extend schema @link(url: "https://specs.apollo.dev/federation/v2.11",
                    import: ["@key", "@shareable", "@override"])
interface Node { id: ID! }
type Watchlist implements Node @key(fields: "id") { id: ID! companies: [Company!]! }
type Company @key(fields: "ticker") { ticker: String! }
type PageInfo @shareable { hasNextPage: Boolean! hasPreviousPage: Boolean!
                           startCursor: String endCursor: String }
type WatchlistConnection { nodes: [Watchlist!]! pageInfo: PageInfo! }
type Query { watchlists: WatchlistConnection! NODE }
"""


def test_node_and_pageinfo_beside_another_relay_subgraph(
    gateway_tools: Path, tmp_path: Path
) -> None:
    """Its own Node and PageInfo compose with corpgraph's; a second `Query.node` only as an
    override (the node-router pattern, docs/federation.md), never as a rival."""
    node = "node(id: ID!): Node"
    status, errors = compose_beside_corpgraph(
        gateway_tools, tmp_path, RELAY_SUBGRAPH.replace("NODE", "")
    )
    assert status == 0, errors
    status, errors = compose_beside_corpgraph(
        gateway_tools, tmp_path, RELAY_SUBGRAPH.replace("NODE", node)
    )
    assert status == 1 and 'Non-shareable field "Query.node"' in errors, errors
    overridden = RELAY_SUBGRAPH.replace("NODE", f'{node} @override(from: "corpgraph")')
    status, errors = compose_beside_corpgraph(gateway_tools, tmp_path, overridden)
    assert status == 0, errors
