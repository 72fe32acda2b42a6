"""Serve the app with Hypercorn or Granian (`CORPGRAPH_SERVER`): in this process, or in worker
processes sharing the port. On SIGTERM or SIGINT every worker first flushes and closes its
subscriptions (1012), then lets the server finish the requests in flight and stop."""

import asyncio
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import wait
from multiprocessing.synchronize import Event
from pathlib import Path
from wsgiref.handlers import format_date_time

import uvloop
from granian.constants import Interfaces
from granian.server.embed import Server as Granian
from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config, Sockets
from hypercorn.utils import wrap_app
from starlette.applications import Starlette

from graph.app import close_subscriptions, create_app
from graph.observability import metrics
from graph.observability.logs import configure_logging
from graph.settings import Settings

log = logging.getLogger("corpgraph")
POLL_SECONDS = 0.1
GRACEFUL_SECONDS = 5.0  # for the requests in flight at shutdown
# Granian's own loggers go to ours (graph/observability/logs.py), not to a handler of its own on
# stdout
GRANIAN_LOGGING = {"loggers": {"_granian": {"propagate": True}}}


class ServerConfig(Config):
    """Hypercorn's configuration, with the headers it adds to every response made once a
    second instead of once per response (formatting the date was ~1% of a small request).
    No `server` header: it tells attackers nothing they need. No `alt-svc`: there is no QUIC
    listener."""

    _headers: tuple[int, list[tuple[bytes, bytes]]] = (0, [])

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        second = int(time.time())
        if self._headers[0] != second:
            self._headers = (second, [(b"date", format_date_time(second).encode("ascii"))])
        return list(self._headers[1])


def hypercorn_config(settings: Settings) -> Config:
    config = ServerConfig()
    config.bind = [f"{settings.host}:{settings.port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")  # graph/observability/logs.py's
    config.graceful_timeout = GRACEFUL_SECONDS
    # a WebSocket message carries one operation, as a request body does (Hypercorn's own
    # bound, 16 MiB, let a 7 MiB subscribe message take 1.5 GB)
    config.websocket_max_message_size = settings.max_body_bytes
    return config


def serve(settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT; the exit code."""
    if settings.workers == 1:
        uvloop.run(serve_app(settings, None, signalled))
        return 0
    given = os.environ.get(metrics.MULTIPROCESS_DIR)
    samples = Path(given) if given else Path(tempfile.mkdtemp(prefix="corpgraph-metrics-"))
    metrics.prepare_multiprocess(samples)
    try:
        return supervise(settings)
    finally:
        if not given:
            shutil.rmtree(samples, ignore_errors=True)


async def signalled() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


async def serve_app(
    settings: Settings,
    sockets: Sockets | None,
    stopped: Callable[[], Awaitable[None]],
) -> None:
    configure_logging(settings.json_logs, settings.log_level)  # in each worker process
    app = create_app(settings)

    async def shutdown_trigger() -> None:
        await stopped()
        await close_subscriptions(app)

    if settings.server == "granian":
        await with_granian(app, settings, shutdown_trigger)
    else:
        config = hypercorn_config(settings)
        await worker_serve(
            wrap_app(app, config.wsgi_max_body_size, None),  # type: ignore[arg-type]
            config,
            sockets=sockets,
            shutdown_trigger=shutdown_trigger,
        )


async def with_granian(
    app: Starlette, settings: Settings, shutdown_trigger: Callable[[], Awaitable[None]]
) -> None:
    """Granian embedded in this event loop, so that subscriptions are closed with 1012 before
    it stops (the signal handlers of Granian's own workers stop it first, and it drops the
    WebSockets still open). Each process binds the port itself: Granian's listener sets
    SO_REUSEPORT, and the kernel spreads connections over the processes. Granian adds
    `server: granian` to every response and cannot be told not to."""
    server = Granian(
        app,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,  # with the lifespan
        backlog=1024,
        # no limit of Granian's on requests at once: ours shed the excess with 503
        # (CORPGRAPH_MAX_IN_FLIGHT) and bound the open connections per client
        backpressure=2**20,
        log_dictconfig=GRANIAN_LOGGING,
    )
    configure_logging(settings.json_logs, settings.log_level)  # Granian's replaced our handler
    serving = asyncio.ensure_future(server.serve())
    stopping = asyncio.ensure_future(shutdown_trigger())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if serving.done():  # the port was taken, or the lifespan failed (logged)
        stopping.cancel()
        serving.result()
        raise RuntimeError("Granian stopped by itself")
    server.stop()  # type: ignore[no-untyped-call]
    try:
        await asyncio.wait_for(serving, GRACEFUL_SECONDS)
    except TimeoutError:
        log.warning("requests still in flight %g s after shutdown: cut off", GRACEFUL_SECONDS)


def supervise(settings: Settings) -> int:
    """`settings.workers` processes; when one exits, or a signal comes, all stop."""
    # Hypercorn's workers share the supervisor's sockets; Granian's bind the port themselves
    granian = settings.server == "granian"
    sockets = None if granian else hypercorn_config(settings).create_sockets()
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    # ignored signals stay ignored in the workers: the supervisor alone decides when to stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    workers = [
        spawn.Process(target=run_worker, args=(settings, sockets, stop))
        for _ in range(settings.workers)
    ]
    for worker in workers:
        worker.start()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    wait([worker.sentinel for worker in workers])
    stop.set()
    for worker in workers:
        worker.join(GRACEFUL_SECONDS + settings.drain_timeout.total_seconds() + 10)
        if worker.exitcode is None:
            worker.terminate()
            worker.join()
        if worker.pid is not None:
            metrics.worker_exited(worker.pid)
    return max((abs(worker.exitcode or 0) for worker in workers), default=0)


def run_worker(settings: Settings, sockets: Sockets | None, stop: Event) -> None:
    supervisor = os.getppid()

    async def stopped() -> None:
        """When the supervisor says so, or is gone (killed: nobody would stop us)."""
        # a process-shared event cannot be awaited; a thread blocked on it could outlive us
        while not stop.is_set() and os.getppid() == supervisor:  # noqa: ASYNC110
            await asyncio.sleep(POLL_SECONDS)

    uvloop.run(serve_app(settings, sockets, stopped))
