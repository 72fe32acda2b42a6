"""Per-client limits across this process: open connections (WebSockets, SSE streams) and
running subscriptions. A client is its API key, or its IP address without one."""

from collections import Counter
from typing import Any

from graph.pipeline.errors import request_error


class ClientSlots:
    """At most `limit` of one kind of thing held at once by each client."""

    def __init__(self, kind: str, limit: int) -> None:
        self.kind, self.limit = kind, limit
        self._held: Counter[str] = Counter()

    def take(self, client: str) -> bool:
        if self._held[client] >= self.limit:
            return False
        self._held[client] += 1
        return True

    def give_back(self, client: str) -> None:
        self._held[client] -= 1
        if self._held[client] <= 0:
            del self._held[client]

    def held(self, client: str) -> int:
        return self._held[client]

    def message(self) -> str:
        return f"Too many {self.kind}: at most {self.limit} open at once per client."

    def refusal(self) -> dict[str, Any]:
        """The error that refuses one more (429 where there is a status)."""
        return request_error(self.message(), "RATE_LIMITED", limit=self.kind, maximum=self.limit)
