"""The open connections that subscriptions run over (WebSockets and SSE streams), so that a
stopping server can close them all with 1012 once their last events are flushed: clients
then reconnect, to another replica, and resume with `since` (or Last-Event-ID)."""

import asyncio
import weakref
from contextlib import suppress

from starlette.websockets import WebSocket, WebSocketState

from resolvers.context import Connection

RESTARTING = 1012  # WebSocket close code "service restart"
RESTART_REASON = "The server is restarting: reconnect, and resume with `since`."


class WebSocketConnection:
    """A WebSocket's subscriptions resume with `since`: nothing to remember per event."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.client: str | None = None  # whose connection slot it holds (once initialised)

    def resume_point(self) -> None:
        return None

    def delivered(self, cursor: str) -> None:
        pass

    async def hang_up(self, code: int, reason: str) -> None:
        if self.websocket.application_state == WebSocketState.CONNECTED:
            with suppress(RuntimeError):  # the client closed it meanwhile
                await self.websocket.close(code, reason)


class OpenConnections:
    """Held weakly: a connection leaves when its handler lets go of it."""

    def __init__(self) -> None:
        self._open: weakref.WeakSet[Connection] = weakref.WeakSet()

    def add(self, connection: Connection) -> None:
        self._open.add(connection)

    def __len__(self) -> int:
        return len(self._open)

    async def hang_up(self, code: int, reason: str) -> None:
        await asyncio.gather(
            *(connection.hang_up(code, reason) for connection in list(self._open)),
            return_exceptions=True,
        )
