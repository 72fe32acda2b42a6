"""The supergraph for real: corpgraph and two other subgraphs (tests/subgraphs.py), composed
by ops/gateway/compose.mjs (Apollo's composition library) and served by Hive Gateway with
the production configuration, ops/gateway/gateway.config.ts."""

import asyncio
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import pytest
import yaml
from redis import Redis
from sqlalchemy import text
from starlette.types import ASGIApp, Receive, Scope, Send

from db.engine import create_engine
from graph.app import create_app
from graph.services import services_of
from graph.settings import Settings
from tests import subgraphs
from tests.conftest import REPO, StatementLog, compose, new_api_key
from tests.servers import free_port, threaded, wait_ready

pytestmark = pytest.mark.e2e

SECRET = "secret-the-gateway-shares-with-corpgraph"
TICKERS = ("AAPL", "MSFT", "NVDA")
EXTRA_COMPANIES = 45  # the small data set has 60; entity batching is shown for 100


class HeaderLog:
    """An ASGI wrapper that records the headers of every HTTP request it passes on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.seen = app, list[dict[str, str]]()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)


async def add_companies(database_url: str, count: int) -> None:
    engine = create_engine(database_url)
    statement = text(
        "INSERT INTO companies (ticker, cik, name) SELECT 'ZZ' || lpad(n::text, 3, '0'),"
        " lpad((9000000000 + n)::text, 10, '0'), 'Test Company ' || n"
        " FROM generate_series(1, :count) AS n"
    )
    async with engine.begin() as connection:
        await connection.execute(statement, {"count": count})
    await engine.dispose()


@pytest.fixture(scope="module")
def corpgraph(settings: Settings, database_url: str) -> Iterator[tuple[str, Any, HeaderLog]]:
    """corpgraph with a gateway secret, on a real port; yields (base URL, app, header log)."""
    asyncio.run(add_companies(database_url, EXTRA_COMPANIES))
    app = create_app(settings.replace(gateway_secret=SECRET))
    log = HeaderLog(app)
    with threaded(log, "/health/ready") as base:
        yield base, app, log


@pytest.fixture(scope="module")
def others() -> Iterator[tuple[str, HeaderLog]]:
    log = HeaderLog(subgraphs.app())
    with threaded(log, "/health") as base:
        yield base, log


@pytest.fixture(scope="module")
def supergraph(
    gateway_tools: Path,
    corpgraph: tuple[str, Any, HeaderLog],
    others: tuple[str, HeaderLog],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    directory = tmp_path_factory.mktemp("supergraph")
    (directory / "watchlists.graphql").write_text(subgraphs.sdl(subgraphs.WATCHLISTS))
    (directory / "nodes.graphql").write_text(subgraphs.sdl(subgraphs.NODES))
    config = {
        "federation_version": "=2.11.0",
        "subgraphs": {
            "corpgraph": {
                "routing_url": f"{corpgraph[0]}/graphql",
                "schema": {"file": str(REPO / "schema" / "schema.graphql")},
            },
            "watchlists": {
                "routing_url": f"{others[0]}/watchlists/graphql",
                "schema": {"file": "watchlists.graphql"},
            },
            "nodes": {
                "routing_url": f"{others[0]}/nodes/graphql",
                "schema": {"file": "nodes.graphql"},
            },
        },
    }
    (directory / "supergraph.yaml").write_text(yaml.safe_dump(config))
    composed = directory / "supergraph.graphql"
    done = compose(gateway_tools, directory / "supergraph.yaml", composed)
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr
    return composed


@pytest.fixture(scope="module")
def gateway(
    gateway_tools: Path, supergraph: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Hive Gateway on a free port with ops/gateway/gateway.config.ts; yields its GraphQL URL."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("gateway") / "gateway.log"
    command = [
        str(gateway_tools / "node_modules" / ".bin" / "hive-gateway"),
        "supergraph", str(supergraph),
        "--config-path", str(gateway_tools / "gateway.config.ts"),
        "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    environment = {**os.environ, "CORPGRAPH_GATEWAY_SECRET": SECRET}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=gateway_tools, env=environment, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_ready(f"http://127.0.0.1:{port}/readiness", process, seconds=120)
            yield f"http://127.0.0.1:{port}/graphql"
        except AssertionError:
            raise AssertionError(log_path.read_text()[-4000:]) from None
        finally:
            process.terminate()
            process.wait(timeout=30)


Ask = Callable[..., dict[str, Any]]


@pytest.fixture
def ask(gateway: str) -> Ask:
    def run(query: str, variables: dict[str, Any] | None = None, **headers: str) -> dict[str, Any]:
        body = {"query": query, "variables": variables or {}}
        response = httpx.post(gateway, json=body, headers=headers, timeout=60)
        result: dict[str, Any] = response.json()
        return result

    return run


@pytest.fixture
def corpgraph_sql(corpgraph: tuple[str, Any, HeaderLog]) -> Iterator[StatementLog]:
    log = StatementLog()
    reader = services_of(corpgraph[1]).reader
    reader.observers.append(log.statements.append)
    yield log
    reader.observers.remove(log.statements.append)


@pytest.fixture(autouse=True)
def watchlists() -> Iterator[None]:
    subgraphs.STORE.lists = {
        "mega": ("Megacaps", list(TICKERS)),
        "chips": ("Chips", ["NVDA", "AMD", "INTC"]),
    }
    yield
    subgraphs.STORE.lists = {}


def direct(corpgraph: tuple[str, Any, HeaderLog], query: str) -> dict[str, Any]:
    response = httpx.post(f"{corpgraph[0]}/graphql", json={"query": query}, timeout=60)
    result: dict[str, Any] = response.json()
    return result


COMPANY_TREE = """ticker name filings(first: 2, formTypes: ["10-K", "10-Q"]) {
    nodes { accessionNumber formType metrics(names: ["revenue", "netIncome"]) { name value } } }"""


def test_watchlist_to_companies_to_filings_to_metrics(
    ask: Ask, corpgraph: tuple[str, Any, HeaderLog]
) -> None:
    body = ask(f"{{ watchlists {{ totalCount nodes {{ name companies {{ {COMPANY_TREE} }} }} }} }}")
    assert "errors" not in body, body["errors"]
    lists = body["data"]["watchlists"]
    assert lists["totalCount"] == 2
    mega = lists["nodes"][0]
    assert mega["name"] == "Megacaps"
    aliased = " ".join(f'{t}: company(ticker: "{t}") {{ {COMPANY_TREE} }}' for t in TICKERS)
    expected = direct(corpgraph, f"{{ {aliased} }}")
    assert mega["companies"] == list(expected["data"].values())
    assert all(company["filings"]["nodes"] for company in mega["companies"])
    assert any(filing["metrics"] for filing in mega["companies"][0]["filings"]["nodes"])


def test_corpgraph_companies_to_watchlists(ask: Ask) -> None:
    query = """{ companies(first: 3, search: "N") { nodes { ticker name watcherCount
        watchlists { name companies { ticker } } } } }"""
    body = ask(query)
    assert "errors" not in body, body["errors"]
    nodes = {node["ticker"]: node for node in body["data"]["companies"]["nodes"]}
    assert nodes, "the search found no company"
    for ticker, node in nodes.items():
        watching = [name for name, tickers in subgraphs.STORE.lists.values() if ticker in tickers]
        assert node["watcherCount"] == len(watching)
        assert [w["name"] for w in node["watchlists"]] == watching
    nvda = ask('{ company(ticker: "NVDA") { name watcherCount watchlists { name } } }')
    assert nvda == {"data": {"company": {
        "name": "NVIDIA Corporation", "watcherCount": 2,
        "watchlists": [{"name": "Megacaps"}, {"name": "Chips"}]}}}  # fmt: skip


def test_node_resolves_every_subgraphs_types(ask: Ask) -> None:
    ids = ask("""{ company(ticker: "AAPL") { id filings(first: 1) { nodes { id accessionNumber } } }
                   watchlists { nodes { id name } } }""")["data"]  # fmt: skip
    company_id = ids["company"]["id"]
    filing = ids["company"]["filings"]["nodes"][0]
    watchlist = ids["watchlists"]["nodes"][0]
    query = """query($c: ID!, $f: ID!, $w: ID!, $x: ID!) {
      c: node(id: $c) { __typename id ... on Company { ticker name watcherCount } }
      f: node(id: $f) { __typename ... on Filing { accessionNumber company { ticker } } }
      w: node(id: $w) { __typename ... on Watchlist { name companies { name } } }
      x: node(id: $x) { id } }"""
    unknown = subgraphs.global_id("Portfolio", "1")
    body = ask(query, {"c": company_id, "f": filing["id"], "w": watchlist["id"], "x": unknown})
    assert "errors" not in body, body["errors"]
    assert body["data"] == {
        "c": {"__typename": "Company", "id": company_id, "ticker": "AAPL",
              "name": "Apple Inc.", "watcherCount": 1},
        "f": {"__typename": "Filing", "accessionNumber": filing["accessionNumber"],
              "company": {"ticker": "AAPL"}},
        "w": {"__typename": "Watchlist", "name": watchlist["name"], "companies": [
            {"name": "Apple Inc."}, {"name": "Microsoft Corporation"},
            {"name": "NVIDIA Corporation"}]},
        "x": None,
    }  # fmt: skip


@pytest.mark.parametrize("count", [1, 10, 100])
def test_gateway_entity_batches_are_one_statement(
    ask: Ask, corpgraph_sql: StatementLog, settings: Settings, count: int
) -> None:
    page = ask("{ companies(first: 100) { nodes { ticker name } } }")["data"]["companies"]["nodes"]
    assert len(page) == 100
    subgraphs.STORE.lists = {"n": (f"{count} companies", [c["ticker"] for c in page[:count]])}
    assert settings.redis_url is not None
    Redis.from_url(settings.redis_url).flushdb()  # a cold entity cache: every company from SQL
    corpgraph_sql.clear()
    body = ask("{ watchlists { nodes { companies { ticker name } } } }")
    assert "errors" not in body, body["errors"]
    assert body["data"]["watchlists"]["nodes"][0]["companies"] == page[:count]
    assert len(corpgraph_sql) == 1, corpgraph_sql.statements


def test_headers_reaching_the_subgraphs(
    ask: Ask, corpgraph: tuple[str, Any, HeaderLog], others: tuple[str, HeaderLog]
) -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    corpgraph[2].seen.clear()
    others[1].seen.clear()
    body = ask(
        '{ company(ticker: "AAPL") { name watcherCount } }',
        traceparent=traceparent,
        **{"x-client-ip": "198.51.100.66", "x-forwarded-for": "198.51.100.67"},
    )
    assert "errors" not in body, body["errors"]
    for seen in (corpgraph[2].seen, others[1].seen):
        assert seen, "the subgraph was not asked"
        assert all(h["traceparent"] == traceparent for h in seen)
        assert all(h["x-client-ip"] == "127.0.0.1" for h in seen)  # the socket, not the header
    assert all(h["x-corpgraph-gateway-secret"] == SECRET for h in corpgraph[2].seen)
    assert all("x-corpgraph-gateway-secret" not in h for h in others[1].seen)


def test_authorization_reaches_corpgraph(ask: Ask) -> None:
    body = ask('{ company(ticker: "AAPL") { name } }', authorization="Bearer cg_not_a_real_key")
    (error,) = body["errors"]
    assert error["extensions"] == {"code": "UNAUTHENTICATED", "serviceName": "corpgraph"}
    assert body["data"] == {"company": None}


def test_gateway_limits_refuse_deep_queries(ask: Ask, corpgraph_sql: StatementLog) -> None:
    deep = '{ company(ticker: "AAPL") { ' + "filings { nodes { company { " * 5 + "name"
    deep += " } } }" * 5 + " } }"
    body = ask(deep)
    assert "data" not in body or body["data"] is None
    assert "depth" in str(body["errors"]).lower()
    assert len(corpgraph_sql) == 0


def test_federation_fields_need_the_gateway(corpgraph: tuple[str, Any, HeaderLog]) -> None:
    body = direct(corpgraph, "{ _service { sdl } }")
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]


def test_subscription_through_the_gateway(
    gateway: str, client_tools: Path, corpgraph: tuple[str, Any, HeaderLog], database_url: str
) -> None:
    """The gateway takes the client's WebSocket and subscribes to corpgraph over its own."""
    alert = 'subscription { filingAdded(tickers: ["NVDA"]) { accessionNumber company { name } } }'
    command = ["node", str(client_tools / "subscribe.mjs"), gateway.replace("http", "ws"), alert,
               "{}", "1"]  # fmt: skip
    subscriber = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert subscriber.stdout is not None
        assert orjson.loads(subscriber.stdout.readline()) == {"connected": True}
        time.sleep(1)  # the gateway opens its own subscription to corpgraph
        writer = new_api_key(database_url, "pro", ("filings:write",))
        filing = {"ticker": "NVDA", "accessionNumber": "0001045810-26-800001", "formType": "8-K",
                  "filedAt": "2026-11-03T13:00:00Z"}  # fmt: skip
        ingested = httpx.post(
            f"{corpgraph[0]}/graphql",
            json={"query": INGEST, "variables": {"input": filing}},
            headers={"authorization": f"Bearer {writer}"},
        ).json()
        assert "errors" not in ingested, ingested
        event = orjson.loads(subscriber.stdout.readline())
        assert event == {
            "data": {
                "filingAdded": {
                    "accessionNumber": "0001045810-26-800001",
                    "company": {"name": "NVIDIA Corporation"},
                }
            }
        }
    finally:
        subscriber.kill()
        subscriber.wait(10)
        if subscriber.stdout is not None:
            subscriber.stdout.close()


INGEST = (
    """mutation($input: IngestFilingInput!) { ingestFiling(input: $input) { accessionNumber } }"""
)
