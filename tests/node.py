"""Real clients from npm, run as Node processes that print one JSON line per event."""

import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from tests.filings import ALERT


class NodeClient:
    def __init__(self, script: Path, *arguments: str) -> None:
        self.process = subprocess.Popen(
            ["node", str(script), *arguments],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def next(self, seconds: float = 10) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=seconds)
        except queue.Empty:
            raise AssertionError(f"nothing from the client in {seconds} s") from None
        try:
            result: dict[str, Any] = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise AssertionError(f"the client said: {line}") from None
        return result

    def close(self) -> None:
        self.process.kill()
        self.process.wait(10)
        self.reader.join(10)  # it reads to the end of the output, which the kill brought
        assert self.process.stdout is not None
        self.process.stdout.close()


class Subscriber(NodeClient):
    """The npm graphql-ws client (tests/clients/subscribe.mjs)."""

    def __init__(self, tools: Path, url: str, variables: dict[str, Any], count: int,
                 params: dict[str, str] | None = None, query: str = ALERT,
                 extensions: dict[str, Any] | None = None) -> None:  # fmt: skip
        """`query` may be empty when `extensions` name a persisted document."""
        arguments = [url, query, orjson.dumps(variables).decode(), str(count)]
        arguments.append(orjson.dumps(params or {}).decode())
        if extensions is not None:
            arguments.append(orjson.dumps(extensions).decode())
        super().__init__(tools / "subscribe.mjs", *arguments)

    def connected(self) -> None:
        assert self.next() == {"connected": True}
        time.sleep(0.5)  # the subscribe message reaches the server and registers
