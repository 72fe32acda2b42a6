"""Through PgBouncer in transaction mode (CORPGRAPH_DB_PGBOUNCER): no statement stays
prepared on a server connection, and session settings live on the role."""

import asyncio

import asyncpg
import pytest
from anyio.from_thread import BlockingPortal
from pydantic import ValidationError
from starlette.testclient import TestClient
from typer.testing import CliRunner

from db.reader import plain_dsn
from graph.app import create_app
from graph.cli.commands import app as cli
from graph.services import services_of
from graph.settings import Settings
from tests.servers import corpgraph_environment


def test_pgbouncer_mode_needs_a_direct_url_to_listen_on(settings: Settings) -> None:
    with pytest.raises(ValidationError, match="listen_database_url"):
        settings.replace(db_pgbouncer=True)


def test_migrate_keeps_the_session_settings_on_the_role(
    database_url: str, redis_url: str, tmp_path: object
) -> None:
    environment = corpgraph_environment(
        database_url,
        redis_url,
        str(tmp_path),
        db_pgbouncer="true",
        listen_database_url=database_url,
        statement_timeout="7",
    )
    result = CliRunner().invoke(cli, ["migrate"], env=environment)
    assert result.exit_code == 0, result.output

    async def fresh_session() -> tuple[str, str, str]:
        connection = await asyncpg.connect(plain_dsn(database_url))  # sends no settings
        try:
            row = await connection.fetchrow(
                "SELECT current_setting('statement_timeout'), "
                "current_setting('hnsw.ef_search', true), "
                "current_setting('hnsw.iterative_scan', true)"
            )
            return row[0], row[1], row[2]
        finally:
            await connection.close()

    assert asyncio.run(fresh_session()) == ("7s", "160", "relaxed_order")


def test_the_api_keeps_no_prepared_statements(settings: Settings, database_url: str) -> None:
    through_pgbouncer = settings.replace(db_pgbouncer=True, listen_database_url=database_url)
    with TestClient(create_app(through_pgbouncer)) as client:
        query = '{ company(ticker: "AAPL") { name filings(first: 2) { nodes { formType } } } }'
        for _ in range(3):
            assert "errors" not in client.post("/graphql", json={"query": query}).json()
        reader = services_of(client.app).reader

        async def prepared() -> int:
            async with reader.pool.acquire() as connection:
                count: int = await connection.fetchval(
                    "SELECT count(*) FROM pg_prepared_statements"
                )
                return count

        assert portal_of(client).call(prepared) == 0
    with TestClient(create_app(settings)) as client:  # the default caches them
        client.post("/graphql", json={"query": query})
        reader = services_of(client.app).reader
        assert portal_of(client).call(prepared) > 0


def portal_of(client: TestClient) -> BlockingPortal:
    assert client.portal is not None, "inside `with TestClient(...)`"
    return client.portal
