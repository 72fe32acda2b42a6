"""Filing search: the mode enum and the hit type."""

from enum import Enum
from typing import Self

import strawberry

from loaders.search import FilingHit
from schema.filings import Filing


@strawberry.enum(description="How `searchFilings` ranks filings against a query.")
class SearchMode(Enum):
    VECTOR = strawberry.enum_value(
        "VECTOR", description="By the cosine similarity of the query's embedding to a filing's."
    )
    TEXT = strawberry.enum_value(
        "TEXT",
        description="By full-text match of title and summary (web-search syntax: quotes for "
        "phrases, `or`, `-` to exclude), ranked by cover density.",
    )
    HYBRID = strawberry.enum_value(
        "HYBRID", description="Both rankings fused by reciprocal rank fusion."
    )


@strawberry.type(description="A filing found by search, with how well it matched.")
class FilingSearchHit:
    filing: Filing = strawberry.field(description="The filing.")
    score: float = strawberry.field(
        description="Higher is better. VECTOR: cosine similarity (-1 to 1); TEXT: rank (0 to 1); "
        "HYBRID: the fused reciprocal ranks. Compare scores within one answer only."
    )

    @classmethod
    def from_hit(cls, hit: FilingHit) -> Self:
        return cls(filing=Filing.from_row(hit.filing), score=hit.score)
