"""Imports run one way: graph -> schema -> resolvers -> loaders -> db (STYLE.md)."""

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

LAYERS = ["graph", "schema", "resolvers", "loaders", "db"]  # each may import those after it


def imported_layers(path: Path) -> set[str]:
    """The layers a module imports, at any depth (an import inside a function counts)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found |= {name.split(".")[0] for name in names} & set(LAYERS)
    return found


def upward_imports(layer: str) -> list[str]:
    allowed = set(LAYERS[LAYERS.index(layer) :])
    return [
        f"{path.relative_to(REPO)} imports {sorted(imported_layers(path) - allowed)}"
        for path in sorted((REPO / layer).rglob("*.py"))
        if imported_layers(path) - allowed
    ]


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_run_one_way(layer: str) -> None:
    assert upward_imports(layer) == []


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "request.py"
    module.write_text("def f():\n    from graph.telemetry import RequestSpans\n")
    assert imported_layers(module) == {"graph"}
