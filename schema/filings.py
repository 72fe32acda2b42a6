"""The Filing entity: federation keys `id` and `accessionNumber`."""

from collections.abc import Awaitable
from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated, Any, Self

import orjson
import strawberry

from loaders.filings import FilingRow
from loaders.json_lists import JSON_LIST, JsonList, Selection
from loaders.metrics import METRICS_TABLE
from resolvers import companies, filings, metrics, search
from resolvers.context import Info
from resolvers.pagination import MAX_PAGE_SIZE
from resolvers.subscriptions import to_ingest_cursor
from schema.costs import Cost, assumed, sliced
from schema.metrics import Metric
from schema.node import Node, key_in

if TYPE_CHECKING:
    from schema.companies import Company
    from schema.search import FilingSearchHit

# filters of filing lists and searches
OfTickers = Annotated[
    list[str] | None, strawberry.argument(description="Only filings of these companies.")
]
OfFormTypes = Annotated[list[str] | None, strawberry.argument(description="Only these form types.")]
FiledBy = Annotated[
    datetime | None,
    strawberry.argument(
        description="Point in time: only the filings filed at or before this instant (a "
        "filing filed later did not exist then)."
    ),
]
FiledAfter = Annotated[
    datetime | None, strawberry.argument(description="Filed at or after this instant.")
]


def metrics_as_json(
    filing: "Filing", info: Info, selection: Selection, names: list[str] | None = None
) -> Awaitable[list[orjson.Fragment] | None]:
    return metrics.filing_metrics_json(info, filing.db_id, names, selection)


@strawberry.federation.type(
    keys=["id", "accessionNumber"],
    description="A document filed with the SEC (10-K, 10-Q, 8-K, ...).",
)
class Filing(Node):
    db_id: strawberry.Private[int]
    company_id: strawberry.Private[int]
    document_key: strawberry.Private[str | None]
    amends_id: strawberry.Private[int | None]
    accession_number: str = strawberry.field(
        description="SEC accession number, e.g. `0000320193-24-000123`."
    )
    form_type: str = strawberry.field(description="SEC form type, e.g. `10-K`, `10-Q`, `8-K`.")
    filed_at: datetime = strawberry.field(description="When the filing was accepted by the SEC.")
    period_end: date | None = strawberry.field(description="End of the reported period.")
    fiscal_year: int | None = strawberry.field(description="Fiscal year of the reported period.")
    fiscal_period: str | None = strawberry.field(description="`FY`, `Q1`, `Q2` or `Q3`.")
    title: str | None = strawberry.field(description="Human-readable title.")
    summary: str | None = strawberry.field(description="What the filing is about, in brief.")
    ingest_seq: strawberry.Private[int]

    def node_key(self) -> str:
        return self.accession_number

    @strawberry.field(
        description="Opaque position in ingestion order: pass it to `filingAdded(since:)` to "
        "receive every filing ingested after this one."
    )
    def ingest_cursor(self) -> str:
        return to_ingest_cursor(self.ingest_seq)

    @classmethod
    def from_row(cls, row: FilingRow) -> Self:
        return cls(
            db_id=row.id,
            company_id=row.company_id,
            accession_number=row.accession_number,
            form_type=row.form_type,
            filed_at=row.filed_at,
            period_end=row.period_end,
            fiscal_year=row.fiscal_year,
            fiscal_period=row.fiscal_period,
            title=row.title,
            summary=row.summary,
            ingest_seq=row.ingest_seq,
            document_key=row.document_key,
            amends_id=row.amends_id,
        )

    @classmethod
    def maybe(cls, row: FilingRow | None) -> Self | None:
        return None if row is None else cls.from_row(row)

    @classmethod
    async def resolve_reference(
        cls,
        info: Info,
        id: str | None = None,
        accessionNumber: str | None = None,
        **_: Any,
    ) -> Self | None:
        if id is not None:
            accessionNumber = key_in(id, "Filing")
        if accessionNumber is None:
            return None
        return cls.maybe(await filings.filing_by_accession(info, accessionNumber))

    @strawberry.field(
        description="A link to the filing's document, valid for a limited time; null if the "
        "filing was ingested without one."
    )
    def document_url(self, info: Info) -> str | None:
        documents = info.context.documents
        info.context.loaders.note_instant(None)  # the link expires: an answer of now
        if self.document_key is None or documents is None:
            return None
        return documents.url(self.document_key)

    @strawberry.field(
        description="The filing this one amends (a `10-K/A`'s `10-K`), when it names one. "
        "Its restated values are revisions of the periods that filing reported."
    )
    async def amends(self, info: Info) -> "Filing | None":
        if self.amends_id is None:
            return None
        return Filing.maybe(await filings.filing_by_id(info, self.amends_id))

    @strawberry.field(description="The company that filed it.")
    async def company(
        self, info: Info
    ) -> Annotated["Company", strawberry.lazy("schema.companies")]:
        from schema.companies import Company

        return Company.from_row(await companies.company_by_id(info, self.company_id))

    @strawberry.field(
        description="Financial metrics reported in this filing.",
        directives=[assumed(12)],
        metadata={JSON_LIST: JsonList(METRICS_TABLE, metrics_as_json)},
    )
    async def metrics(
        self,
        info: Info,
        names: Annotated[
            list[str] | None,
            strawberry.argument(description='Only these metrics, e.g. `["revenue"]`.'),
        ] = None,
    ) -> list[Metric]:
        rows = await metrics.filing_metrics(info, self.db_id, names)
        return Metric.served(rows)

    @strawberry.field(
        description="The filings nearest to this one by meaning, nearest first.",
        directives=[Cost(weight=5), sliced()],  # a vector search per parent, in PostgreSQL
    )
    async def similar_filings(
        self,
        info: Info,
        first: Annotated[
            int | None, strawberry.argument(description=f"How many (1-{MAX_PAGE_SIZE}).")
        ] = search.SIMILAR_FIRST,
    ) -> list[Annotated["FilingSearchHit", strawberry.lazy("schema.search")]]:
        from schema.search import FilingSearchHit

        hits = await search.similar_filings(info, self.db_id, first)
        return [FilingSearchHit.from_hit(hit) for hit in hits]
