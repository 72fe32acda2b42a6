"""Imports run one way: graph -> schema -> resolvers -> loaders -> db (STYLE.md), and inside
graph, cli -> transports -> observability -> pipeline -> execution (graph/__init__.py)."""

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

LAYERS = ["graph", "schema", "resolvers", "loaders", "db"]  # each may import those after it
PARTS = ["cli", "transports", "observability", "pipeline", "execution"]  # the same, in graph
SHARED = {"settings", "services", "bounded", "redis_client"}  # graph's, for every part


def imported_modules(path: Path) -> set[str]:
    """The modules a module imports, at any depth (an import inside a function counts)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def imported_layers(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)} & set(LAYERS)


def imported_parts(path: Path) -> set[str]:
    """What a module imports of graph: its parts and modules beside them (`app`, `settings`)."""
    names = [name.split(".") for name in imported_modules(path)]
    return {name[1] for name in names if name[0] == "graph" and len(name) > 1}


def upward_imports(layer: str) -> list[str]:
    allowed = set(LAYERS[LAYERS.index(layer) :])
    return [
        f"{path.relative_to(REPO)} imports {sorted(imported_layers(path) - allowed)}"
        for path in sorted((REPO / layer).rglob("*.py"))
        if imported_layers(path) - allowed
    ]


def upward_parts(part: str) -> list[str]:
    allowed = set(PARTS[PARTS.index(part) :]) | SHARED | ({"app"} if part == "cli" else set())
    return [
        f"{path.relative_to(REPO)} imports {sorted(imported_parts(path) - allowed)}"
        for path in sorted((REPO / "graph" / part).rglob("*.py"))
        if imported_parts(path) - allowed
    ]


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_run_one_way(layer: str) -> None:
    assert upward_imports(layer) == []


@pytest.mark.parametrize("part", PARTS)
def test_graph_parts_import_one_way(part: str) -> None:
    assert upward_parts(part) == []


def test_every_module_of_graph_is_in_a_part_or_shared() -> None:
    beside = {path.stem for path in (REPO / "graph").glob("*.py")}
    assert beside - SHARED == {"__init__", "__main__", "app", "settings_doc"}
    assert {path.name for path in (REPO / "graph").iterdir() if path.is_dir()} - {
        "__pycache__", "static"} == set(PARTS)  # fmt: skip


def test_the_check_sees_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "request.py"
    module.write_text("def f():\n    from graph.observability.telemetry import RequestSpans\n")
    assert imported_layers(module) == {"graph"}
    module.write_text("from graph import app\nfrom graph.transports.http import InFlight\n")
    assert imported_parts(module) == {"app", "transports"}
