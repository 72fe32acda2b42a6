"""Deadlines: a statement over statement_timeout and a request over its deadline both
answer TIMEOUT, and the server keeps answering. The slow statement is real: a test
transaction holds a lock the query has to wait for."""

import threading
import time
from datetime import timedelta

from starlette.testclient import TestClient

from graph.app import create_app
from graph.services import services_of
from graph.settings import Settings

QUERY = {"query": '{ company(ticker: "AAPL") { name } }'}


def app_with(settings: Settings, **timeouts: timedelta) -> TestClient:
    # the entity cache would answer AAPL without touching the locked table
    return TestClient(create_app(settings.replace(redis_url=None, **timeouts)))


def test_statement_timeout_is_a_field_error(
    settings: Settings, companies_locked: threading.Event
) -> None:
    with app_with(settings, statement_timeout=timedelta(milliseconds=300)) as client:
        response = client.post("/graphql", json=QUERY)
        assert response.status_code == 200
        body = response.json()
        assert body["data"] == {"company": None}
        assert body["errors"][0]["extensions"]["code"] == "TIMEOUT"
        assert body["errors"][0]["path"] == ["company"]
        assert client.post("/graphql", json={"query": "{ __typename }"}).status_code == 200


def test_request_deadline_is_504(settings: Settings, companies_locked: threading.Event) -> None:
    with app_with(settings, request_timeout=timedelta(milliseconds=300)) as client:
        response = client.post("/graphql", json=QUERY)
        assert response.status_code == 504
        assert [e["extensions"]["code"] for e in response.json()["errors"]] == ["TIMEOUT"]
        assert response.json()["extensions"]["cost"]["requestedQueryCost"] == 4 + 1  # costed
        assert client.post("/graphql", json={"query": "{ __typename }"}).status_code == 200


def test_server_answers_after_the_lock_is_gone(settings: Settings) -> None:
    with app_with(settings, request_timeout=timedelta(milliseconds=300)) as client:
        assert client.post("/graphql", json=QUERY).json()["data"] == {
            "company": {"name": "Apple Inc."}
        }


def test_exhausted_pool_is_503_with_retry_after(
    settings: Settings, companies_locked: threading.Event
) -> None:
    """One connection, held by a request that waits on the lock: the next one is shed."""
    one_connection = settings.replace(
        redis_url=None,
        db_pool_size=1,
        db_max_overflow=0,
        db_pool_timeout=timedelta(milliseconds=200),
    )
    with TestClient(create_app(one_connection)) as client:
        holder = threading.Thread(target=client.post, args=("/graphql",), kwargs={"json": QUERY})
        holder.start()
        pool = services_of(client.app).reader.pool
        deadline = time.monotonic() + 10
        while pool.get_idle_size() or pool.get_size() == 0:  # until the request holds it
            assert time.monotonic() < deadline, "the first request never took the connection"
            time.sleep(0.02)
        response = client.post("/graphql", json={"query": '{ company(ticker: "MSFT") { name } }'})
        assert response.status_code == 200  # `company` is nullable: data came back, as null
        assert response.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        shed = client.post("/graphql", json={"query": "{ companies { totalCount } }"})
        assert shed.status_code == 503  # nothing could be returned
        assert shed.headers["retry-after"] == "1"
        assert [e["extensions"]["code"] for e in shed.json()["errors"]] == ["SERVICE_UNAVAILABLE"]
        companies_locked.set()  # the first request completes before the app stops
        holder.join(10)
