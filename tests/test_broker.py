"""The broker's subscriber queues: bounded, and fair to a subscriber that keeps up with a
burst (graph/transports/broker.py). The end-to-end 1013 test is in
tests/test_alert_resilience.py."""

import asyncio
from datetime import UTC, datetime

from graph.transports.broker import Subscriber
from loaders.filings import FilingRow

FILED = datetime(2026, 11, 2, tzinfo=UTC)


def rows(first: int, count: int) -> list[FilingRow]:
    return [
        FilingRow(
            n, f"0000320193-26-{n:06d}", 1, "8-K", FILED, None, None, None, None, None, n, None
        )
        for n in range(first, first + count)
    ]


def hand_out(subscriber: Subscriber, batch: list[FilingRow]) -> None:
    """As FilingBroker._read_new does with each batch it reads."""
    subscriber.batch_starts(len(batch))
    for row in batch:
        subscriber.offer(row)


def taken(subscriber: Subscriber, count: int) -> list[int]:
    async def take() -> list[int]:
        return [row.ingest_seq for row in [await subscriber.next() for _ in range(count)] if row]

    return asyncio.run(take())


def test_a_burst_larger_than_the_room_waits_for_a_subscriber_that_kept_up() -> None:
    subscriber = Subscriber(lambda row: True, room=4)
    hand_out(subscriber, rows(1, 30))  # e.g. a bulk ingest, read at once
    assert not subscriber.overflowed
    assert taken(subscriber, 30) == list(range(1, 31))
    hand_out(subscriber, rows(31, 30))  # caught up again: the next burst is as welcome
    assert not subscriber.overflowed
    assert taken(subscriber, 30) == list(range(31, 61))


def test_a_subscriber_still_behind_has_only_its_room() -> None:
    subscriber = Subscriber(lambda row: True, room=4)
    hand_out(subscriber, rows(1, 3))
    hand_out(subscriber, rows(4, 1))  # 3 waiting + 1 = 4: the room is full, not exceeded
    assert not subscriber.overflowed
    hand_out(subscriber, rows(5, 1))  # behind, and one more: dropped
    assert subscriber.overflowed
    assert subscriber.queue.qsize() == 1  # only the end: the backlog is dropped
    assert asyncio.run(subscriber.next()) is None
    hand_out(subscriber, rows(6, 1))  # ended: nothing more queues
    assert subscriber.queue.empty()


def test_a_burst_stays_bounded_for_one_that_falls_behind_during_it() -> None:
    """The allowance is for one batch: the next one finds the queue still full."""
    subscriber = Subscriber(lambda row: True, room=4)
    hand_out(subscriber, rows(1, 30))
    assert taken(subscriber, 10) == list(range(1, 11))
    hand_out(subscriber, rows(31, 1))
    assert subscriber.overflowed


def test_filings_that_do_not_match_take_no_room() -> None:
    subscriber = Subscriber(lambda row: row.ingest_seq % 2 == 0, room=2)
    hand_out(subscriber, rows(1, 3))  # 2 matches
    hand_out(subscriber, rows(4, 1))  # matches; 1 behind + 1 = 2: room
    hand_out(subscriber, rows(5, 1))  # no match
    assert not subscriber.overflowed
    assert taken(subscriber, 2) == [2, 4]
