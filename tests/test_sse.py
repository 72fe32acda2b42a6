"""Subscriptions as Server-Sent Events (graphql-sse, distinct connections mode): the npm
`graphql-sse` client gets the same events as a WebSocket client; refusals come before the
stream, with their status. (Resuming with Last-Event-ID: tests/test_alert_resilience.py.)"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import pytest

from tests.filings import ALERT, ingest
from tests.node import NodeClient, Subscriber
from tests.servers import SERVERS, corpgraph_processes

pytestmark = pytest.mark.e2e

STREAM = {"accept": "text/event-stream"}


@pytest.fixture(scope="module", params=SERVERS)
def servers(
    request: pytest.FixtureRequest, database_url: str, redis_url: str
) -> Iterator[list[str]]:
    """Two `corpgraph serve` processes of each HTTP server: streaming is the server's job."""
    with corpgraph_processes(2, database_url, redis_url, server=request.param) as hosts:
        yield hosts


def sse_client(tools: Path, server: str, variables: dict[str, Any], count: int) -> NodeClient:
    arguments = ["graphql-sse", f"http://{server}/graphql", ALERT, orjson.dumps(variables).decode()]
    return NodeClient(tools / "sse.mjs", *arguments, str(count))


def test_graphql_sse_gets_what_graphql_ws_gets(
    client_tools: Path, servers: list[str], writer: str
) -> None:
    wanted = {"tickers": ["MSFT"], "formTypes": ["8-K"]}
    over_sse = sse_client(client_tools, servers[0], wanted, count=3)
    over_ws = Subscriber(client_tools, f"ws://{servers[0]}/graphql", wanted, count=3)
    try:
        over_ws.connected()  # the SSE client announces nothing: give both the same moment
        ingest(servers[1], writer, "AAPL")  # filtered out
        ingest(servers[1], writer, "MSFT", "10-Q")  # filtered out
        sent = [ingest(servers[1], writer, "MSFT") for _ in range(3)]
        expected = [
            {"data": {"filingAdded": {"accessionNumber": filing["accessionNumber"],
             "formType": "8-K", "ingestCursor": filing["ingestCursor"],
             "company": {"ticker": "MSFT"}}}}
            for filing in sent
        ]  # fmt: skip
        assert [over_sse.next() for _ in range(3)] == expected
        assert [over_ws.next() for _ in range(3)] == expected
    finally:
        over_sse.close()
        over_ws.close()


def test_a_query_does_not_stream(servers: list[str]) -> None:
    answer = httpx.post(
        f"http://{servers[0]}/graphql",
        json={"query": '{ company(ticker: "AAPL") { name } }'},
        headers=STREAM,
    )
    assert answer.status_code == 400
    assert answer.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def test_refusals_come_before_the_stream(servers: list[str]) -> None:
    url = f"http://{servers[0]}/graphql"
    bad_key = httpx.post(
        url, json={"query": ALERT}, headers={**STREAM, "authorization": "Bearer cg_nope"}
    )
    assert (bad_key.status_code, bad_key.headers["content-type"]) == (401, "application/json")
    invalid = {"query": "subscription { filingAdded { nope } }"}
    refused = httpx.post(url, json=invalid, headers=STREAM)
    assert refused.status_code == 400  # whatever the Accept: a stream was asked for
    assert refused.json()["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    params = {"query": ALERT, "variables": '{"since": "nope"}'}
    since = httpx.get(url, params=params, headers=STREAM)
    assert since.headers["content-type"].startswith("text/event-stream")
    assert since.text.startswith("event: next\ndata: ")  # an argument error ends the stream
    first = orjson.loads(since.text.split("data: ", 1)[1].split("\n", 1)[0])
    assert first["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert since.text.endswith("event: complete\ndata: \n\n")
