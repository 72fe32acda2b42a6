"""`reindex`: batches under its own statement timeout (not the engine's, which may be the
API's), resumed after an interruption, and the same vectors as seeding made."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.embeddings import HashingEmbedder, reindex
from db.engine import create_engine

BATCH = 100


class Interrupted(Exception):
    pass


async def embeddings(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        query = text("SELECT id, embedding::text FROM filings ORDER BY id")
        return list((await conn.execute(query)).all())


def batch_sizes(engine: AsyncEngine) -> list[int]:
    """Filings per UPDATE that reindex sends."""
    sizes: list[int] = []

    def seen(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.startswith("UPDATE filings SET embedding = CAST"):
            sizes.append(len(parameters[0]))

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    return sizes


def test_a_batch_runs_under_reindex_own_timeout(database_url: str) -> None:
    """Through an engine whose statements may take 100 ms: one batch of every filing takes
    longer (an HNSW insertion each), and passes under reindex's own timeout."""

    async def run() -> int:
        engine = create_engine(database_url, statement_timeout=timedelta(milliseconds=100))
        try:
            return await reindex(engine, HashingEmbedder(), batch_size=100_000)
        finally:
            await engine.dispose()

    assert asyncio.run(run()) > 1000


def test_an_interrupted_reindex_is_resumed(database_url: str) -> None:
    """A run stopped after two batches, then a second run that does the rest, in batches."""

    async def run() -> tuple[list[Any], list[Any], int, int, list[int]]:
        engine = create_engine(database_url)
        sizes = batch_sizes(engine)
        try:
            before = await embeddings(engine)
            async with engine.begin() as conn:
                await conn.execute(text("UPDATE filings SET embedding = NULL"))

            def interrupt(done: int, total: int) -> None:
                if done >= 2 * BATCH:
                    raise Interrupted

            with pytest.raises(Interrupted):
                await reindex(engine, HashingEmbedder(), BATCH, interrupt)
            rest = await reindex(engine, HashingEmbedder(), BATCH)
            return before, await embeddings(engine), len(before), rest, sizes
        finally:
            await engine.dispose()

    before, after, total, rest, sizes = asyncio.run(run())
    assert after == before
    assert rest == total - 2 * BATCH  # the first two batches were not redone
    assert max(sizes) <= BATCH and sum(sizes) == total
