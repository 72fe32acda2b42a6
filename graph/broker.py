"""New-filing alerts for this process's subscribers: one listener, one reader, many queues.

PostgreSQL `NOTIFY` (sent inside the ingest transaction, so only on commit) only wakes the
broker; it then reads the filings after the last position it delivered, in ingestion order,
from the table itself. A notification lost to a dropped connection therefore loses nothing: the
next wake-up (another notification, the reconnect, or the periodic check) reads from where it
left off. Subscribers never hold a database connection; each has a bounded queue, and one that
falls behind is dropped rather than slowing the others or growing memory.
"""

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from db.ingest import FILINGS_CHANNEL
from db.reader import Reader, create_reader, plain_dsn
from loaders.filings import FilingFilter, FilingRow, ingested_after, last_ingested

log = logging.getLogger(__name__)

EVERYTHING = FilingFilter()
NO_END = 2**62
CHECK_SECONDS = 5.0  # a wake-up even without a notification
BATCH = 500


@dataclass(eq=False)
class Subscriber:
    """What one subscription receives: new filings that match, in ingestion order."""

    matches: Callable[[FilingRow], bool]
    queue: asyncio.Queue[FilingRow | None] = field(default_factory=lambda: asyncio.Queue(256))
    overflowed: bool = False

    def offer(self, row: FilingRow) -> None:
        if self.overflowed or not self.matches(row):
            return
        try:
            self.queue.put_nowait(row)
        except asyncio.QueueFull:  # too slow: drop the backlog, and tell the reader to stop
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class FilingBroker:
    """Its own connections: one that listens, one that reads (not the request pool)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.reader: Reader | None = None
        self.position: int | None = None  # ingest_seq of the last filing handed out
        self.subscribers: set[Subscriber] = set()
        self._woken = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self.reader = await create_reader(self.database_url, size=1)
        try:
            self.position = await last_ingested(self.reader)
        except asyncpg.PostgresError as error:  # e.g. not migrated yet: the deliverer retries
            log.warning("filing alerts: no start position yet (%s)", error)
        self._tasks = [
            asyncio.create_task(self._listen(), name="filing-broker-listen"),
            asyncio.create_task(self._deliver(), name="filing-broker-deliver"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for subscriber in self.subscribers:
            subscriber.queue.put_nowait(None)
        if self.reader is not None:
            await self.reader.pool.close()

    def subscribe(self, matches: Callable[[FilingRow], bool]) -> Subscriber:
        subscriber = Subscriber(matches)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def wake(self, *_: object) -> None:
        self._woken.set()

    async def _listen(self) -> None:
        """LISTEN on a dedicated connection (never a pooled or PgBouncer one); reconnect."""
        while True:
            try:
                connection = await asyncpg.connect(plain_dsn(self.database_url))
                try:
                    await connection.add_listener(FILINGS_CHANNEL, self.wake)
                    self.wake()  # catch up on whatever committed while we were not listening
                    while not connection.is_closed():
                        await asyncio.sleep(CHECK_SECONDS)
                        self.wake()
                finally:
                    await connection.close()
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("filing alerts: listener lost (%s); reconnecting", error)
                await asyncio.sleep(1)

    async def _deliver(self) -> None:
        while True:
            await self._woken.wait()
            self._woken.clear()
            assert self.reader is not None
            try:
                if self.position is None:  # where the live stream starts
                    self.position = await last_ingested(self.reader)
                rows = await ingested_after(self.reader, self.position, NO_END, EVERYTHING, BATCH)
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("filing alerts: reading new filings failed (%s)", error)
                await asyncio.sleep(1)
                self.wake()
                continue
            for row in rows:
                for subscriber in list(self.subscribers):
                    subscriber.offer(row)
                self.position = row.ingest_seq
            if len(rows) == BATCH:
                self.wake()
