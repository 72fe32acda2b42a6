"""The ASGI messages of one WebSocket, as the protocol handlers may trust them, whatever the
client sends and whichever server (Hypercorn, Granian) carries it:

- a message larger than `limit` closes the connection with 1009 before it is parsed (a message
  carries one operation, as a request body does);
- a binary message arrives without `text`, as Strawberry tells one (Hypercorn sends it with
  `text: None`, on which Strawberry failed);
- once the app has closed the connection, a receive under way, or asked for later, ends with a
  disconnect within CLOSE_GRACE_SECONDS, if the server has not said so by then. Strawberry
  waits for its next message while it closes an idle connection (its connection_init timeout),
  and Hypercorn never answers a connection it refused as it was opened (a client that sent a
  frame before the handshake's answer): each held a socket and a task for ever. (Not at once:
  Granian drops a connection whose app has returned before its close frame is out.)
"""

import asyncio

from starlette.types import Message, Receive, Send

TOO_LARGE = 1009
CLOSE_GRACE_SECONDS = 3.0


def size_of(message: Message) -> int:
    """A WebSocket message's size in bytes."""
    text = message.get("text")
    if text is None:
        return len(message.get("bytes") or b"")
    return len(text) if text.isascii() else len(text.encode())


class Channel:
    def __init__(self, receive: Receive, send: Send, limit: int) -> None:
        self._receive, self._send, self.limit = receive, send, limit
        self.closed: Message | None = None  # the disconnect the app's close means
        self._given_up: float | None = None  # when to stop waiting for the server to say it
        self._waiting: asyncio.Timeout | None = None  # the receive under way

    async def receive(self) -> Message:
        try:
            async with asyncio.timeout_at(self._given_up) as self._waiting:
                message = await self._receive()
        except TimeoutError:
            assert self.closed is not None  # the only deadline set (by send)
            return self.closed
        finally:
            self._waiting = None
        if message["type"] != "websocket.receive":
            return message
        if size_of(message) > self.limit:
            await self.send({"type": "websocket.close", "code": TOO_LARGE, "reason": ""})
            return {"type": "websocket.disconnect", "code": TOO_LARGE}
        if message.get("text") is None:
            return {"type": "websocket.receive", "bytes": message.get("bytes")}
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "websocket.close" and self.closed is None:
            self.closed = {"type": "websocket.disconnect", "code": message.get("code", 1000)}
            self._given_up = asyncio.get_running_loop().time() + CLOSE_GRACE_SECONDS
            if self._waiting is not None:
                self._waiting.reschedule(self._given_up)
        await self._send(message)
