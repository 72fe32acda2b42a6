"""ops/k8s/base, checked as data (no cluster runs here)."""

from typing import Any

import pytest
import yaml

from graph.settings import Settings
from tests.conftest import REPO

BASE = REPO / "ops/k8s/base"


@pytest.fixture(scope="module")
def objects() -> dict[tuple[str, str], dict[str, Any]]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((BASE / resource).read_text()):
            found[(document["kind"], document["metadata"]["name"])] = document
    for generator in kustomization.get("configMapGenerator", []):
        for entry in generator["files"]:
            assert (BASE / entry.split("=", 1)[1]).is_file(), entry
    return found


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return spec


def test_deployments_have_probes_and_resource_requests(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    for name in ("corpgraph", "gateway"):
        for container in containers(objects[("Deployment", name)]):
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert "memory" in container["resources"]["limits"], name
            assert container["readinessProbe"]["httpGet"]["path"], name
            assert container["livenessProbe"]["httpGet"]["path"], name
    (api,) = containers(objects[("Deployment", "corpgraph")])
    # readiness follows PostgreSQL and tolerates Redis (graph/observability/health.py);
    # liveness is the process
    assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health/live"


def test_autoscaling_and_disruption_budget(objects: dict[tuple[str, str], dict[str, Any]]) -> None:
    hpa = objects[("HorizontalPodAutoscaler", "corpgraph")]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "corpgraph",
    }
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    for name in ("corpgraph", "gateway"):
        pdb = objects[("PodDisruptionBudget", name)]["spec"]
        labels = objects[("Deployment", name)]["spec"]["selector"]["matchLabels"]
        assert pdb["selector"]["matchLabels"] == labels
        assert pdb["minAvailable"] < objects[("Deployment", name)]["spec"]["replicas"]


def test_config_and_secrets_are_read_by_the_settings(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    config = objects[("ConfigMap", "corpgraph")]["data"]
    secret = objects[("Secret", "corpgraph")]["stringData"]
    for variable in [*config, *secret]:
        if variable.startswith("CORPGRAPH_"):
            assert variable.removeprefix("CORPGRAPH_").lower() in Settings.model_fields, variable
        else:
            assert variable.startswith("OTEL_"), variable
    assert all(value == "" for value in secret.values()), "no secret values in the repository"
    (api,) = containers(objects[("Deployment", "corpgraph")])
    sources = {next(iter(source.values()))["name"] for source in api["envFrom"]}
    assert sources == {"corpgraph"}
    assert [list(source) for source in api["envFrom"]] == [["configMapRef"], ["secretRef"]]


def test_migrations_run_as_a_job_on_postgres_itself(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    job = objects[("Job", "corpgraph-migrate")]
    (container,) = containers(job)
    assert container["command"] == ["corpgraph", "migrate"]
    database = {entry["name"]: entry for entry in container["env"]}["CORPGRAPH_DATABASE_URL"]
    assert database["valueFrom"]["secretKeyRef"]["key"] == "CORPGRAPH_LISTEN_DATABASE_URL"
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}


def test_the_gateway_reaches_the_api_service(
    objects: dict[tuple[str, str], dict[str, Any]],
) -> None:
    routing = yaml.safe_load((REPO / "ops/gateway/supergraph.yaml").read_text())
    (subgraph,) = routing["subgraphs"].values()
    service = objects[("Service", "api")]
    assert subgraph["routing_url"] == f"http://api:{service['spec']['ports'][0]['port']}/graphql"
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "corpgraph"}
