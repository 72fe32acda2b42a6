"""compose.yaml cannot run here (no Docker engine), so it is checked as data."""

import re
from typing import Any

import pytest
import yaml

from tests.conftest import REPO


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
    return loaded


def test_services_of_the_stack(compose: dict[str, Any]) -> None:
    assert {"postgres", "redis", "minio", "migrate", "api", "gateway"} <= set(compose["services"])
    assert "timescaledb-ha:pg18" in compose["services"]["postgres"]["image"]


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image", "")
        assert re.search(r":[\w.-]*\d", image) and not image.endswith(":latest"), (name, image)


ONE_SHOT = {"migrate", "minio-setup"}  # they run to completion; the rest keep running


def test_long_running_services_are_healthchecked_and_awaited(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        if name not in ONE_SHOT:
            assert "test" in service.get("healthcheck", {}), name
        for dependency, condition in service.get("depends_on", {}).items():
            expected = (
                "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            )
            assert condition == {"condition": expected}, (name, dependency)
    assert set(services["api"]["depends_on"]) >= ONE_SHOT


def test_documents_go_to_a_bucket_created_before_the_api_starts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    environment = services["api"]["environment"]
    bucket = environment["CORPGRAPH_S3_BUCKET"]
    assert f"mc mb --ignore-existing local/{bucket}" in " ".join(services["minio-setup"]["command"])
    assert environment["CORPGRAPH_S3_ENDPOINT"] == "http://minio:9000"
    assert environment["CORPGRAPH_S3_PUBLIC_URL"]  # links must work outside the stack


def test_redis_state_role_never_evicts(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["redis"]["command"])
    assert "--maxmemory-policy noeviction" in command and "--appendonly yes" in command


def test_no_committed_secrets() -> None:
    text = (REPO / "compose.yaml").read_text()
    for secret in re.findall(r"(?:PASSWORD|SECRET|ROOT_USER)\w*:\s*(\S+)", text):
        assert secret.startswith("${") and "?" in secret, secret
    assert not (REPO / ".env").exists() or ".env" in (REPO / ".gitignore").read_text()


def test_gateway_runs_the_tested_configuration(compose: dict[str, Any]) -> None:
    services = compose["services"]
    gateway = services["gateway"]
    assert gateway["image"].startswith("ghcr.io/graphql-hive/gateway:")
    mounts = {m.split(":")[0]: m.split(":")[1] for m in gateway["volumes"]}
    assert mounts == {
        "./ops/gateway/gateway.config.ts": "/gateway/gateway.config.ts",
        "./ops/gateway/supergraph.graphql": "/gateway/supergraph.graphql",
    }
    for source in mounts:
        assert (REPO / source).is_file(), source
    assert set(mounts.values()) <= set(gateway["command"])
    secret = gateway["environment"]["CORPGRAPH_GATEWAY_SECRET"]
    assert services["api"]["environment"]["CORPGRAPH_GATEWAY_SECRET"] == secret
    # clients reach the supergraph through the gateway only
    assert gateway["ports"] and "ports" not in services["api"]
