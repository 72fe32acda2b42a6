"""New-filing alerts for this process's subscribers: one listener, one reader, many queues.

PostgreSQL `NOTIFY` (sent inside the ingest transaction, so only on commit) only wakes the
broker; it then reads the filings after the last position it delivered, in ingestion order,
from the table itself. A notification lost to a dropped connection therefore loses nothing: the
next wake-up (another notification, the reconnect, or the periodic check) reads from where it
left off. Subscribers never hold a database connection; each has a bounded queue (its room,
and one batch more if it had caught up), and one that falls behind is dropped rather than
slowing the others or growing memory. On shutdown, `drain` hands out what has committed and
waits until every subscriber has taken it.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
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
    """What one subscription receives: new filings that match, in ingestion order, then
    None: it fell more than `room` filings behind (`overflowed`), or the server is stopping."""

    matches: Callable[[FilingRow], bool]
    room: int
    queue: asyncio.Queue[FilingRow | None] = field(default_factory=asyncio.Queue)
    overflowed: bool = False
    ending: bool = False
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # it has taken its None
    limit: int = 0  # what may wait in the queue during the current batch

    def __post_init__(self) -> None:
        self.limit = self.room

    def batch_starts(self, size: int) -> None:
        """A batch is handed out all at once, before any subscriber can take from it. One
        that has taken everything before is keeping up: the whole batch may wait for it, even
        a burst larger than its room (a bulk ingest). One still behind keeps only its room."""
        self.limit = self.room + (size if self.queue.empty() else 0)

    def offer(self, row: FilingRow) -> None:
        if self.ending or not self.matches(row):
            return
        if self.queue.qsize() >= self.limit:  # too slow: drop the backlog, and end it
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.end()
            return
        self.queue.put_nowait(row)

    def end(self) -> None:
        """After what is queued (stopping), or instead of it (overflowed)."""
        if not self.ending:
            self.ending = True
            self.queue.put_nowait(None)

    async def next(self) -> FilingRow | None:
        row = await self.queue.get()
        if row is None:
            self.ended.set()
        return row


class FilingBroker:
    """Its own connections: one that listens, one that reads (not the request pool)."""

    def __init__(
        self,
        database_url: str,
        queue_size: int = 256,
        on_ingested: Callable[[list[FilingRow]], Awaitable[object]] | None = None,
    ) -> None:
        """`on_ingested` hears of each batch of new filings after the subscribers."""
        self.database_url = database_url
        self.queue_size = queue_size
        self.on_ingested = on_ingested
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
        await self._stop_tasks()
        for subscriber in self.subscribers:
            subscriber.end()
        if self.reader is not None:
            await self.reader.pool.close()

    async def drain(self, seconds: float) -> None:
        """Deliver what has committed, end every subscription, and wait (at most `seconds`)
        until each has taken all it was given."""
        await self._stop_tasks()
        with suppress(OSError, asyncpg.PostgresError, asyncio.TimeoutError):
            async with asyncio.timeout(seconds / 2):
                while await self._read_new() == BATCH:
                    pass
        for subscriber in self.subscribers:
            subscriber.end()
        ended = [asyncio.create_task(s.ended.wait()) for s in self.subscribers]
        if ended:
            _, waiting = await asyncio.wait(ended, timeout=seconds / 2)
            for task in waiting:
                task.cancel()

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def subscribe(self, matches: Callable[[FilingRow], bool]) -> Subscriber:
        subscriber = Subscriber(matches, self.queue_size)
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
            try:
                if await self._read_new() == BATCH:
                    self.wake()
            except (OSError, asyncpg.PostgresError) as error:
                log.warning("filing alerts: reading new filings failed (%s)", error)
                await asyncio.sleep(1)
                self.wake()

    async def _read_new(self) -> int:
        """Hands out the filings committed after `position`, at most a batch; how many."""
        assert self.reader is not None
        if self.position is None:  # where the live stream starts
            self.position = await last_ingested(self.reader)
        rows = await ingested_after(self.reader, self.position, NO_END, EVERYTHING, BATCH)
        subscribers = list(self.subscribers)
        for subscriber in subscribers:
            subscriber.batch_starts(len(rows))
        for row in rows:
            for subscriber in subscribers:
                subscriber.offer(row)
            self.position = row.ingest_seq
        if rows and self.on_ingested is not None:
            await self.on_ingested(rows)
        return len(rows)
