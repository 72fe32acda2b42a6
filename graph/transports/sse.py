"""Subscriptions as Server-Sent Events: the graphql-sse protocol's distinct connections mode.

A request to /graphql that accepts `text/event-stream` (a POST with the usual JSON body, or a
GET with `query`, `variables` and `operationName` parameters, as a browser's EventSource sends
it) runs one subscription and streams it: a `next` event per result, carrying the filing's
ingestCursor as the event `id`, then `complete`. EventSource reconnects by itself and sends the
last id back as `Last-Event-ID`; the subscription then resumes after it, whatever `since` says.
A stream the server ends (its client fell too far behind, or the server is restarting) ends
without `complete`, so that the client reconnects and resumes.

Refusals (a bad document or key, a query, the cost over budget) come before the stream, as
ordinary GraphQL responses with their status (graph/transports/http.py).
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from typing import Any

import orjson

MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}
HEARTBEAT_SECONDS = 15.0
COMPLETE = b"event: complete\ndata: \n\n"
HEARTBEAT = b": ping\n\n"


def wants_event_stream(accept: str) -> bool:
    return any(part.split(";")[0].strip().lower() == MEDIA_TYPE for part in accept.split(","))


class EventStream:
    """One subscription's stream; the ids it sends are the ingestCursors of its filings."""

    def __init__(self, last_event_id: str | None) -> None:
        self.last_event_id = last_event_id or None
        self.hung_up = asyncio.Event()
        self.on_end: Callable[[], object] = lambda: None  # once the stream has ended

    def resume_point(self) -> str | None:
        return self.last_event_id

    def delivered(self, cursor: str) -> None:
        self.last_event_id = cursor

    async def hang_up(self, code: int, reason: str) -> None:
        self.hung_up.set()  # SSE has no close codes: the stream just ends

    async def events(
        self, results: AsyncIterator[dict[str, Any]], abandon: Callable[[], None]
    ) -> AsyncIterator[bytes]:
        """`next` per payload (graph/transports/streams.py: coded, masked, charged) and
        `complete` at the end; `: ping` comments when quiet. When the stream ends, `abandon`
        cancels what its last event was still waiting for (the client left while it was
        resolved)."""
        hung_up = asyncio.ensure_future(self.hung_up.wait())
        pending = asyncio.ensure_future(anext(results))
        try:
            while True:
                await asyncio.wait(
                    (pending, hung_up), timeout=HEARTBEAT_SECONDS, return_when="FIRST_COMPLETED"
                )
                if hung_up.done():
                    return  # without `complete`: the client reconnects and resumes
                if not pending.done():
                    yield HEARTBEAT
                    continue
                try:
                    payload = pending.result()
                except StopAsyncIteration:
                    break
                yield self.event(payload)
                pending = asyncio.ensure_future(anext(results))
            yield COMPLETE
        finally:
            hung_up.cancel()
            pending.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await pending  # the subscription's own clean-up (it unsubscribes) runs now
            try:
                if hasattr(results, "aclose"):
                    await results.aclose()
            finally:
                abandon()
                self.on_end()

    def event(self, payload: dict[str, Any]) -> bytes:
        # an event without data (the error that ends it) has no cursor of its own
        delivered = self.last_event_id and payload.get("data") is not None
        head = f"id: {self.last_event_id}\n" if delivered else ""
        return f"{head}event: next\ndata: ".encode() + orjson.dumps(payload) + b"\n\n"
