"""Docs as tests: every example of the README and docs/ runs against the demo data set.

GraphQL blocks are sent to a real `corpgraph serve` (tiers as shipped: an anonymous example
must fit the anonymous ceiling), with the key their note names; subscriptions run over
WebSocket. Shell blocks run in bash, in a scratch folder, with the server's
environment. The notes that steer them are listed in tests/doc_blocks.py.
"""

import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2 as httpx
import orjson
import pytest
from graphql import OperationType, parse
from graphql.language import OperationDefinitionNode
from redis import Redis
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from graph.settings import DEFAULT_TIERS
from tests.conftest import new_api_key
from tests.doc_blocks import PROSE_LANGUAGES, REPO, RUN_LANGUAGES, Block, all_blocks
from tests.servers import corpgraph_environment, corpgraph_processes

pytestmark = pytest.mark.e2e

DOCUMENTED_SERVER = "127.0.0.1:8000"  # where the docs say `corpgraph serve` listens
UNKNOWN_KEY = "cg_this-key-was-never-issued"
WAIT = 30.0  # seconds: the longest wait for a stream's first output


@dataclass
class Docs:
    """The server the examples run against, and what earlier examples answered."""

    server: str
    environment: dict[str, str]
    workdir: Path
    database_url: str
    answers: dict[str, Any] = field(default_factory=dict)  # by `name`
    last: dict[str, Any] = field(default_factory=dict)  # the previous GraphQL response
    keys: dict[str, str] = field(default_factory=dict)

    def key(self, spec: str) -> str:
        if spec == "unknown":
            return UNKNOWN_KEY
        if spec not in self.keys:
            tier, _, scopes = spec.partition(":")
            made = new_api_key(self.database_url, tier, tuple(filter(None, scopes.split(","))))
            self.keys[spec] = made
        return self.keys[spec]


@pytest.fixture(scope="module")
def docs(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Docs]:
    Redis.from_url(redis_url).flushdb()  # budgets start full, as on a new server
    workdir = tmp_path_factory.mktemp("docs")
    shutil.copytree(REPO / "ops" / "operations", workdir / "ops" / "operations")
    with corpgraph_processes(1, database_url, redis_url) as [server]:
        environment = corpgraph_environment(
            database_url, redis_url, str(tmp_path_factory.mktemp("data"))
        )
        environment["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environment['PATH']}"
        yield Docs(server, environment, workdir, database_url)


def value_at(data: Any, path: str) -> Any:
    """`companies.nodes.ticker`: a dotted path; lists on the way are mapped over."""
    for part in path.split("."):
        data = [item[part] for item in data] if isinstance(data, list) else data[part]
    return data


def variables_of(block: Block, docs: Docs) -> dict[str, Any]:
    variables = {}
    for pair in filter(None, block.notes.get("variables", "").split(",")):
        variable, _, source = pair.partition("=")
        name, _, path = source.partition(":")
        variables[variable] = value_at(docs.answers[name]["data"], path)
    return variables


def operation_type(text: str) -> OperationType:
    [operation] = [d for d in parse(text).definitions if isinstance(d, OperationDefinitionNode)]
    return operation.operation


def headers_of(block: Block, docs: Docs) -> dict[str, str]:
    spec = block.notes.get("key")
    return {"authorization": f"Bearer {docs.key(spec)}"} if spec else {}


def query(block: Block, docs: Docs) -> dict[str, Any]:
    body = {"query": block.text, "variables": variables_of(block, docs)}
    response = httpx.post(
        f"http://{docs.server}/graphql", json=body, headers=headers_of(block, docs), timeout=60
    )
    assert response.status_code == int(block.notes.get("status", 200)), response.text
    answer: dict[str, Any] = response.json()
    return answer


def subscribe(block: Block, docs: Docs) -> dict[str, Any]:
    """Subscribe over WebSocket (graphql-transport-ws, as GraphiQL does); read `events`."""
    wanted = int(block.notes.get("events", 1))
    payload = {"query": block.text, "variables": variables_of(block, docs)}
    init = headers_of(block, docs)  # {"authorization": "Bearer ..."}, or nothing
    url, protocol = f"ws://{docs.server}/graphql", Subprotocol("graphql-transport-ws")
    with connect(url, subprotocols=[protocol], open_timeout=WAIT) as socket:
        socket.send(orjson.dumps({"type": "connection_init", "payload": init}).decode())
        assert orjson.loads(socket.recv(WAIT))["type"] == "connection_ack"
        socket.send(orjson.dumps({"id": "1", "type": "subscribe", "payload": payload}).decode())
        messages = [orjson.loads(socket.recv(WAIT)) for _ in range(wanted)]
    assert all(message["type"] == "next" for message in messages), messages
    events = [message["payload"] for message in messages]
    for event in events:
        assert "errors" not in event, event
    return {"data": {"events": [event["data"] for event in events]}}


def check_answer(block: Block, answer: dict[str, Any]) -> None:
    if "error" in block.notes:
        codes = [error["extensions"]["code"] for error in answer.get("errors", [])]
        assert block.notes["error"] in codes, answer
        return
    assert "errors" not in answer, answer["errors"]
    for root, value in answer["data"].items():
        assert value not in (None, []), f"{root} is empty: the example shows nothing"
    if "key" not in block.notes and "cost" in answer.get("extensions", {}):
        requested = answer["extensions"]["cost"]["requestedQueryCost"]
        assert requested <= DEFAULT_TIERS["anonymous"].ceiling
    if spec := block.notes.get("sorted"):
        path, _, order = spec.partition(" ")
        values = value_at(answer["data"], path)
        assert len(values) > 1, f"{path}: too few values to show an order"
        assert values == sorted(values, reverse=order == "desc"), f"{path} not {spec}"


def run_graphql(block: Block, docs: Docs) -> None:
    subscription = operation_type(block.text) == OperationType.SUBSCRIPTION
    answer = subscribe(block, docs) if subscription else query(block, docs)
    if not subscription and "error" not in block.notes:
        assert "cost" in answer["extensions"], "every query's answer says what it cost"
    check_answer(block, answer)
    if spec := block.notes.get("equals"):
        name, _, path = spec.partition(":")
        assert value_at(answer["data"], path) == value_at(docs.answers[name]["data"], path)
    docs.answers[block.notes.get("name", block.id)] = docs.last = answer


def subset(expected: Any, actual: Any, vary: set[str]) -> None:
    """`expected` is `actual` with some keys of its objects left out."""
    if isinstance(expected, dict):
        for name, value in expected.items():
            assert name in actual, f"{name} missing from {actual}"
            if name not in vary:
                subset(value, actual[name], vary)
    elif isinstance(expected, list):
        assert len(expected) == len(actual), f"{expected} against {actual}"
        for item, actual_item in zip(expected, actual, strict=True):
            subset(item, actual_item, vary)
    else:
        assert expected == actual


def run_response(block: Block, docs: Docs) -> None:
    assert "response" in block.notes, "a JSON block is either a `response` or skipped"
    vary = set(filter(None, block.notes.get("vary", "").split(",")))
    subset(orjson.loads(block.text), docs.last, vary)


def run_shell(block: Block, docs: Docs) -> None:
    script = block.text.replace(DOCUMENTED_SERVER, docs.server)
    if "until" in block.notes:
        output = until(script, block.notes["until"], docs)
    else:
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script], cwd=docs.workdir,
            env=docs.environment, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        output = done.stdout + done.stderr
    assert re.search(block.notes.get("output", ""), output, re.DOTALL), output[-2000:]


def until(script: str, text: str, docs: Docs) -> str:
    """Run a command that does not end; return its output once `text` appears in it."""
    process = subprocess.Popen(
        ["bash", "-c", script], cwd=docs.workdir, env=docs.environment,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    timer = threading.Timer(WAIT, process.kill)  # a silent stream would block readline
    timer.start()
    output = ""
    try:
        assert process.stdout is not None
        while text not in output:
            line = process.stdout.readline()
            assert line, f"ended (or no {text!r} in {WAIT} s): {output[-2000:]}"
            output += line
    finally:
        timer.cancel()
        process.kill()
        process.communicate(timeout=WAIT)
    return output


RUNNERS = {"graphql": run_graphql, "sh": run_shell, "json": run_response}
BLOCKS = [block for block in all_blocks() if block.language not in PROSE_LANGUAGES]


def test_every_block_has_a_known_language() -> None:
    unknown = [block.id for block in BLOCKS if block.language not in RUN_LANGUAGES]
    assert unknown == [], f"fenced blocks without graphql, sh, json or text: {unknown}"


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_example(block: Block, docs: Docs) -> None:
    if "skip" in block.notes:
        pytest.skip(f"{block.id}: {block.notes['skip']}")
    RUNNERS[block.language](block, docs)
