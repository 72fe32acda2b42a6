"""The install a newcomer runs: a fresh virtual environment with the pip its Python bundles (no
upgrade), the README's command with the pins of constraints.txt; and pins that agree with
pyproject.toml and with each other (requirements.lock is what the image installs)."""

import ensurepip
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.conftest import REPO

# the README's install, run in the checkout
INSTALL = ["pip", "install", "--quiet", "-e", ".[dev]", "-c", "constraints.txt"]
PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$", re.MULTILINE)


def pins(path: Path) -> dict[str, Version]:
    """Each package's pinned version where its marker holds for this Python."""
    found: dict[str, Version] = {}
    for name, version, marker in PIN.findall(path.read_text()):
        if not marker or Requirement(f"x; {marker}").marker.evaluate():  # type: ignore[union-attr]
            found[canonicalize_name(name)] = Version(version)
    return found


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    every = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return [Requirement(text) for text in every]


def test_every_dependency_is_pinned_within_its_range() -> None:
    pinned = pins(REPO / "constraints.txt")
    wanted = [r for r in declared() if r.marker is None or r.marker.evaluate()]
    wrong = [
        f"{requirement}: pinned {pin}"
        for requirement in wanted
        if (pin := pinned.get(canonicalize_name(requirement.name))) is None
        or pin not in requirement.specifier
    ]
    assert wrong == [], "constraints.txt is stale: run ops/lock.sh"


def test_the_image_lock_pins_the_same_versions() -> None:
    development, image = pins(REPO / "constraints.txt"), pins(REPO / "requirements.lock")
    assert image, "requirements.lock pins nothing"
    differing = {name: (version, development.get(name)) for name, version in image.items()}
    assert {name: pair for name, pair in differing.items() if pair[0] != pair[1]} == {}
    assert "--hash=sha256:" in (REPO / "requirements.lock").read_text()


@pytest.mark.e2e
def test_a_fresh_venv_installs_as_the_readme_says(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    environment = {**os.environ, "VIRTUAL_ENV": str(venv)}
    environment["PATH"] = f"{venv / 'bin'}{os.pathsep}{environment['PATH']}"

    def run(*command: str, timeout: float = 60) -> str:
        done = subprocess.run(
            command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"{' '.join(command)}:\n{done.stderr[-3000:]}"
        return done.stdout

    bundled = ensurepip.version()
    assert run("pip", "--version").startswith(f"pip {bundled} "), "not the bundled pip"
    run(*INSTALL, timeout=900)
    run("pip", "check")
    assert "serve" in run("corpgraph", "--help")


def test_the_readme_the_docs_and_ci_install_the_same_way() -> None:
    """What this module runs is what the README and docs/install.md say and what CI does."""
    command = " ".join(arg for arg in INSTALL if arg != "--quiet").replace(".[dev]", '".[dev]"')
    for page in ("README.md", "docs/install.md"):
        assert command in (REPO / page).read_text(), page
    ci = (REPO / ".ci" / "run").read_text()
    assert " ".join(INSTALL).replace(".[dev]", '".[dev]"') in ci
    assert "upgrade pip" not in ci  # a newcomer's pip is the one its Python bundles
