"""compose.yaml cannot run here (no Docker engine), so it is checked as data."""

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.sdk import environment_variables as otel_variables
from sqlalchemy import text
from starlette.testclient import TestClient

from db.engine import create_maintenance_engine, ensure_database
from graph.settings import Settings
from tests.conftest import REPO
from tests.test_series import fetch

STACK = {
    "postgres", "pgbouncer", "redis", "redis-cache", "minio", "minio-setup", "migrate", "api",
    "gateway", "otel-collector", "jaeger", "prometheus", "pushgateway", "grafana", "backup",
}  # fmt: skip


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((REPO / "compose.yaml").read_text())
    return loaded


def test_services_of_the_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= STACK
    assert "timescaledb-ha:pg18" in compose["services"]["postgres"]["image"]
    assert compose["services"]["api"]["deploy"]["replicas"] >= 2


def test_every_variable_set_is_read(compose: dict[str, Any]) -> None:
    """What compose sets for corpgraph exists in the settings object (or is one of the
    OpenTelemetry SDK's standard variables): a misspelt variable would be ignored silently."""
    otel = {value for value in vars(otel_variables).values() if isinstance(value, str)}
    otel.add("OTEL_EXPORTER_OTLP_ENDPOINT")
    for name in ("api", "migrate"):
        for variable in compose["services"][name]["environment"]:
            if variable.startswith("CORPGRAPH_"):
                field = variable.removeprefix("CORPGRAPH_").lower()
                assert field in Settings.model_fields, (name, variable)
            else:
                assert variable in otel, (name, variable)


def test_the_api_goes_through_pgbouncer_and_listens_past_it(compose: dict[str, Any]) -> None:
    services = compose["services"]
    pgbouncer = services["pgbouncer"]["environment"]
    assert pgbouncer["POOL_MODE"] == "transaction"
    api = services["api"]["environment"]
    assert "@pgbouncer:6432/" in api["CORPGRAPH_DATABASE_URL"]
    assert api["CORPGRAPH_DB_PGBOUNCER"] == "true"
    assert "@postgres:5432/" in api["CORPGRAPH_LISTEN_DATABASE_URL"]
    # migrations run DDL on PostgreSQL itself, and store the role's settings for PgBouncer
    migrate = services["migrate"]["environment"]
    assert "@postgres:5432/" in migrate["CORPGRAPH_DATABASE_URL"]
    assert migrate["CORPGRAPH_DB_PGBOUNCER"] == "true"
    assert services["migrate"]["command"] == ["corpgraph", "migrate"]


@pytest.mark.timescale
def test_the_migrate_service_succeeds_on_the_images_timescaledb(
    compose: dict[str, Any], timescale_postgres: Any, tmp_path: Path
) -> None:
    """The image's PostgreSQL major and TimescaleDB are those of the tested build, preloaded;
    the migrate service's command with its environment (the URLs pointed at that build)
    succeeds, and again, as on a restart: the role then keeps the API's statement timeout,
    which maintenance must not run under."""
    services = compose["services"]
    found = re.search(r":pg(\d+)[.\d]*-ts([\d.]+)$", services["postgres"]["image"])
    assert found, services["postgres"]["image"]
    assert "shared_preload_libraries=timescaledb" in services["postgres"]["command"]
    url: str = timescale_postgres.get_uri("t_compose_migrate")
    assert asyncio.run(ensure_database(url))
    (versions,) = fetch(url, VERSIONS)
    assert (str(versions[0]), versions[1]) == found.groups()
    service = services["migrate"]
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CORPGRAPH_")},
        **{name: str(value) for name, value in service["environment"].items()},
        "CORPGRAPH_DATABASE_URL": url,
        "CORPGRAPH_LISTEN_DATABASE_URL": url,
        "CORPGRAPH_DATA_DIR": str(tmp_path),
    }
    assert service["command"][0] == "corpgraph"
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "graph", *service["command"][1:]],
            env=environment, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    aggregates = fetch(url, "SELECT view_name FROM timescaledb_information.continuous_aggregates")
    assert sorted(row[0] for row in aggregates) == ["price_bars_month", "price_bars_week"]
    assert fetch(url, "SHOW statement_timeout")[0][0] == "5s"  # kept on the role for PgBouncer
    assert asyncio.run(maintenance_timeout(url)) == "0"  # what migrate's sessions run under


async def maintenance_timeout(url: str) -> str | None:
    engine = create_maintenance_engine(url)
    try:
        async with engine.connect() as conn:
            timeout: str | None = await conn.scalar(text("SHOW statement_timeout"))
            return timeout
    finally:
        await engine.dispose()


VERSIONS = """SELECT current_setting('server_version_num')::int / 10000,
    (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb')"""


def test_mounted_files_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), (name, source)


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service.get("image", "")
        assert re.search(r":[\w.-]*\d", image) and not image.endswith(":latest"), (name, image)


# they run to completion, awaited with service_completed_successfully; the rest keep
# running and are awaited healthy
ONE_SHOT = {"migrate", "minio-setup"}


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


def test_redis_split_by_role(compose: dict[str, Any]) -> None:
    services = compose["services"]
    state = " ".join(services["redis"]["command"])
    assert "--maxmemory-policy noeviction" in state and "--appendonly yes" in state
    assert "--maxmemory 256mb" in state  # bounded: refused writes, not a host out of memory
    cache = " ".join(services["redis-cache"]["command"])
    assert "--maxmemory-policy allkeys-lru" in cache and "--maxmemory " in cache
    environment = services["api"]["environment"]
    assert environment["CORPGRAPH_REDIS_URL"].startswith("redis://redis:")
    assert environment["CORPGRAPH_CACHE_REDIS_URL"].startswith("redis://redis-cache:")


def test_traces_flow_to_jaeger(compose: dict[str, Any]) -> None:
    services = compose["services"]
    environment = services["api"]["environment"]
    assert environment["CORPGRAPH_TRACING"] == "true"
    assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318"
    collector = yaml.safe_load((REPO / "ops/otel/collector.yaml").read_text())
    (pipeline,) = collector["service"]["pipelines"].values()
    assert pipeline["receivers"] == ["otlp"]
    (exporter,) = pipeline["exporters"]
    assert collector["exporters"][exporter]["endpoint"].startswith("jaeger:")


ALERTS = {
    # name: what its expression must say, and for how long
    "CorpgraphHighErrorRate": ("> 0.05", "5m"),
    "CorpgraphSlowResponses": ("> 1", "10m"),
    "CorpgraphDatabasePoolExhausted": ("corpgraph_db_pool_in_use", "5m"),
    "CorpgraphRedisDegraded": ("corpgraph_redis_up", "2m"),
    "CorpgraphBackupMissing": ("25 * 3600", "10m"),
    "CorpgraphRedisStateMemoryHigh": ("> 0.8", "5m"),
    "CorpgraphRedisStateMemoryFull": ("> 0.95", "1m"),
}


def test_alert_rules(compose: dict[str, Any]) -> None:
    mounts = compose["services"]["prometheus"]["volumes"]
    assert "./ops/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" in mounts
    config = yaml.safe_load((REPO / "ops/prometheus/prometheus.yml").read_text())
    assert "/etc/prometheus/alerts.yml" in config["rule_files"]
    scraped = {job["job_name"]: job for job in config["scrape_configs"]}
    assert scraped["corpgraph"]["dns_sd_configs"][0]["names"] == ["api"]
    rules = {
        rule["alert"]: rule
        for group in yaml.safe_load((REPO / "ops/prometheus/alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    assert set(rules) == set(ALERTS)
    for name, (says, lasting) in ALERTS.items():
        assert says in rules[name]["expr"] and rules[name]["for"] == lasting, name


def metric_names(text: str) -> set[str]:
    return set(re.findall(r"\b(corpgraph_[a-z_]+)", text))


def test_alerts_and_dashboard_use_metrics_that_exist(client: TestClient) -> None:
    """Every corpgraph_ series named in the rules and the dashboard is exposed by /metrics
    (or pushed by ops/backup.sh): a renamed metric would silence an alert."""
    client.post("/graphql", json={"query": '{ company(ticker: "AAPL") { name } }'})
    client.post("/graphql", json={"query": "{ company { nope } }"})  # errors are counted
    exposed = client.get("/metrics").text
    backup = (REPO / "ops/backup.sh").read_text()
    dashboard = json.loads((REPO / "ops/grafana/dashboards/corpgraph.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = metric_names((REPO / "ops/prometheus/alerts.yml").read_text())
    used |= metric_names(" ".join(expressions))
    assert len(dashboard["panels"]) >= 10
    for name in used:
        base = re.sub(r"_(bucket|count|sum|total)$", "", name)
        assert re.search(rf"^# TYPE ({base}|{name}) ", exposed, re.M) or name in backup, name


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
