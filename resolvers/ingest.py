"""`Mutation.ingestFiling`: who may write, and what the write path's outcomes mean in GraphQL."""

from collections.abc import Callable

from graphql import GraphQLError

from db.embeddings import embed
from db.ingest import Conflict, FilingInput, InvalidFiling, ingest
from loaders.filings import CACHE_KIND, FilingRow
from resolvers.context import Info
from resolvers.errors import UserInputError

WRITE_SCOPE = "filings:write"


def check_can_write(info: Info) -> None:
    viewer = info.context.viewer
    if viewer.key_id is None:
        raise GraphQLError(
            f"Ingesting filings needs an API key with the {WRITE_SCOPE} scope.",
            extensions={"code": "UNAUTHENTICATED"},
        )
    if WRITE_SCOPE not in viewer.scopes:
        raise GraphQLError(
            f"This API key lacks the {WRITE_SCOPE} scope.", extensions={"code": "FORBIDDEN"}
        )


async def ingest_filing(info: Info, filing_of: Callable[[], FilingInput]) -> FilingRow:
    """`filing_of` makes the filing from the input (and may find it invalid)."""
    check_can_write(info)
    writer = info.context.writer
    assert writer is not None, "the write path is not configured"
    try:
        filing = filing_of()
        [embedding] = await embed(info.context.loaders.embedder, [filing.text])
        accession_number, created = await ingest(writer, filing, embedding, info.context.documents)
    except InvalidFiling as error:
        raise UserInputError(f"Invalid filing: {error}", fields=error.problems) from None
    except Conflict as error:
        raise GraphQLError(str(error), extensions={"code": "CONFLICT"}) from None
    loaders = info.context.loaders
    if created and loaders.cache is not None:
        await loaders.cache.invalidate(CACHE_KIND, [accession_number])
    row = await loaders.filing_by_accession.load(accession_number)
    assert row is not None, "a committed filing must be readable"
    forget_answers = info.context.forget_answers
    if created and forget_answers is not None:
        # now, so that the writer reads its write; every server also does it on the alert
        await forget_answers([row.company_id])
    return row
