"""The schema as a contract: committed SDL, breaking changes, descriptions, package origin."""

import importlib
import itertools
import subprocess
from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    find_breaking_changes,
)
from graphql import (
    build_schema as graphql_build_schema,
)
from starlette.testclient import TestClient

from schema.schema import SDL_PATH, sdl
from schema.schema import build_schema as build_strawberry_schema
from tests.conftest import REPO


def parse_sdl(text: str) -> GraphQLSchema:
    return graphql_build_schema(
        text, assume_valid_sdl=True
    )  # federation directives are not declared


FEDERATION_NAMES = {
    "_Service",
    "_Any",
    "_Entity",
    "_entities",
    "_service",
    "link__Import",
    "link__Purpose",
    "FieldSet",
    "_FieldSet",
}


def test_served_sdl_matches_the_committed_file(client: TestClient) -> None:
    served = client.post("/graphql", json={"query": "{ _service { sdl } }"}).json()
    current = sdl(build_strawberry_schema())
    assert served["data"]["_service"]["sdl"] + "\n" == current
    assert current == SDL_PATH.read_text(), (
        "schema/schema.graphql is stale: run `corpgraph schema > schema/schema.graphql` "
        "and acknowledge breaking changes in CHANGELOG.md"
    )


def committed_versions() -> list[str]:
    """schema.graphql as of every commit that changed it, oldest first."""
    try:
        log = subprocess.run(
            ["git", "log", "--format=%H", "--reverse", "--", "schema/schema.graphql"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        return [
            subprocess.run(
                ["git", "show", f"{commit}:schema/schema.graphql"],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            for commit in log
        ]
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the history of the schema is not available")


def test_breaking_changes_are_acknowledged_in_the_changelog() -> None:
    versions = [*committed_versions(), sdl(build_strawberry_schema())]
    changelog = (REPO / "CHANGELOG.md").read_text()
    unacknowledged = [
        change.description
        for old, new in itertools.pairwise(versions)
        for change in find_breaking_changes(parse_sdl(old), parse_sdl(new))
        if change.description not in changelog
    ]
    assert not unacknowledged, f"add these to CHANGELOG.md under Breaking: {unacknowledged}"


def test_breaking_change_detection_can_fail() -> None:
    current = sdl(build_strawberry_schema())
    without_ticker = current.replace(
        '  """Trading symbol, e.g. `AAPL`."""\n  ticker: String!\n', "", 1
    )
    assert without_ticker != current
    changes = find_breaking_changes(parse_sdl(current), parse_sdl(without_ticker))
    assert [change.description for change in changes] == ["Field Company.ticker was removed."]


def undocumented(schema: GraphQLSchema) -> list[str]:
    missing = []
    for name, type_ in schema.type_map.items():
        if (
            name.startswith("__")
            or name in FEDERATION_NAMES
            or name in {"String", "Int", "Float", "Boolean", "ID"}
        ):
            continue
        if not type_.description:
            missing.append(name)
        if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
            for field_name, field in type_.fields.items():
                if field_name in FEDERATION_NAMES:
                    continue
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in getattr(field, "args", {}).items():
                    if not arg.description:
                        missing.append(f"{name}.{field_name}({arg_name})")
        if isinstance(type_, GraphQLEnumType):
            missing += [f"{name}.{v}" for v, value in type_.values.items() if not value.description]
    return missing


def test_every_type_field_and_argument_has_a_description() -> None:
    assert undocumented(build_strawberry_schema()._schema) == []


@pytest.mark.parametrize("package", ["graph", "schema", "resolvers", "loaders", "db"])
def test_top_level_packages_come_from_this_repository(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__file__ is not None
    assert Path(module.__file__).resolve().parent == REPO / package
