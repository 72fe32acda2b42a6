"""`corpgraph ingest`: filings from JSON Lines files, as `ingestFiling` would take them, in
batches that share one call of the embedder."""

from dataclasses import dataclass, field
from pathlib import Path

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from db.documents import DocumentStore
from db.embeddings import Embedder, embed
from db.ingest import Conflict, FilingInput, InvalidFiling, from_json, ingest
from graph.cli.console import Advance

EMBEDDING_BATCH = 64  # filings embedded together


@dataclass
class IngestSummary:
    accepted: int = 0
    unchanged: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)


async def ingest_files(
    db: AsyncEngine,
    files: list[Path],
    embedder: Embedder,
    documents: DocumentStore,
    progress: Advance = lambda done, total: None,
) -> IngestSummary:
    summary = IngestSummary()
    lines = [
        (f"{path}:{number}", text)
        for path in files
        for number, text in enumerate(path.read_text().splitlines(), 1)
        if text.strip()
    ]
    for start in range(0, len(lines), EMBEDDING_BATCH):
        batch = lines[start : start + EMBEDDING_BATCH]
        filings = [parsed(where, text, summary) for where, text in batch]
        valid = [
            (where, filing)
            for (where, _), filing in zip(batch, filings, strict=True)
            if filing is not None
        ]
        embeddings = await embed(embedder, [filing.text for _, filing in valid])
        for (where, filing), embedding in zip(valid, embeddings, strict=True):
            try:
                _, created = await ingest(db, filing, embedding, documents)
            except (InvalidFiling, Conflict) as error:
                summary.rejected.append((where, str(error)))
            else:
                summary.accepted += created
                summary.unchanged += not created
        progress(start + len(batch), len(lines))
    position = {where: index for index, (where, _) in enumerate(lines)}
    summary.rejected.sort(key=lambda rejected: position[rejected[0]])
    return summary


def parsed(where: str, text: str, summary: IngestSummary) -> FilingInput | None:
    try:
        return from_json(orjson.loads(text))
    except orjson.JSONDecodeError as error:
        summary.rejected.append((where, f"not JSON: {error}"))
    except InvalidFiling as error:
        summary.rejected.append((where, str(error)))
    return None
