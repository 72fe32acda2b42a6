"""The per-request context that every resolver receives, and the project-wide `Info` alias."""

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import strawberry
from sqlalchemy.ext.asyncio import AsyncEngine

from db.documents import DocumentStore
from loaders.filings import FilingRow
from loaders.request import Loaders


@dataclass(frozen=True)
class Viewer:
    """Who is asking, resolved once at the edge."""

    tier: str = "anonymous"
    scopes: frozenset[str] = frozenset()
    client_ip: str | None = None
    key_id: int | None = None
    via_gateway: bool = False  # the request carried the gateway's secret


@dataclass(frozen=True)
class Budget:
    """The viewer's cost budget as this request found it (after its debit)."""

    limit: int
    cost: int
    remaining: int
    full_at: float  # when it will be full again, in seconds since the epoch

    @property
    def reset_at(self) -> datetime:  # made only for the few requests that ask `rateLimit`
        return datetime.fromtimestamp(self.full_at, UTC)


class AlertQueue(Protocol):
    overflowed: bool  # fell too far behind

    async def next(self) -> FilingRow | None:
        """The next filing; None at the end (overflowed, or the server is stopping)."""


class FilingAlerts(Protocol):
    """New filings as they are ingested, in order (graph/transports/broker.py)."""

    position: int | None  # ingest_seq of the last filing handed out; None until known

    def subscribe(self, matches: Callable[[FilingRow], bool]) -> AlertQueue: ...

    def unsubscribe(self, subscriber: AlertQueue) -> None: ...


class Connection(Protocol):
    """What a subscription runs over: a WebSocket, or an SSE stream
    (graph/transports/connections.py)."""

    def resume_point(self) -> str | None:
        """An ingestCursor to resume after, whatever `since` says (SSE's Last-Event-ID)."""

    def delivered(self, cursor: str) -> None:
        """The ingestCursor of the event about to be sent (SSE sends it as the event id)."""

    async def hang_up(self, code: int, reason: str) -> None:
        """Close it with a WebSocket close code (an SSE stream ends without `complete`)."""


@dataclass
class Context:
    loaders: Loaders
    viewer: Viewer = field(default_factory=Viewer)
    budget: Budget | None = None  # set before execution when cost control is on
    writer: AsyncEngine | None = None  # the write path (mutations); reads go through loaders
    documents: DocumentStore | None = None  # filing documents
    # after a filing is ingested: drops the cached answers read from its company
    forget_answers: "Callable[[Iterable[int]], Awaitable[int]] | None" = None
    alerts: FilingAlerts | None = None  # subscriptions
    connection_params: dict[str, object] | None = None  # WebSocket connection_init payload
    connection: Connection | None = None  # subscriptions
    subscriptions_open: int = 0  # on this WebSocket connection
    max_subscriptions: int | None = None  # per WebSocket connection (Settings); SSE: one
    # event-loop time by which an HTTP request must be answered: execution stops there
    deadline: float | None = None


Info = strawberry.Info[Context, None]
