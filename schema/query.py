"""The root Query type."""

from datetime import datetime
from typing import Annotated

import strawberry

from resolvers import companies, filings, search, series
from resolvers.context import Info
from resolvers.errors import UserInputError
from resolvers.pagination import MAX_PAGE_SIZE
from schema.companies import Company, CompanyConnection
from schema.costs import Cost, assumed, paged, sliced
from schema.entities import ENTITY_TYPES
from schema.filings import FiledAfter, FiledBy, Filing, OfFormTypes, OfTickers
from schema.metrics import PeriodsFrom, PeriodsTo
from schema.node import Node, from_global_id
from schema.pagination import After, Before, Connection, Last
from schema.rate_limit import RateLimit, rate_limit
from schema.search import FilingSearchHit, SearchMode
from schema.series import Aggregate, Basis, Interval, MetricSeries, SeriesValues, named

FilingConnection = Connection[Filing]

First = Annotated[
    int | None,
    strawberry.argument(description=f"Page size forward (1-{MAX_PAGE_SIZE}, default 20)."),
]


@strawberry.type(description="Companies, their SEC filings, reported metrics and prices.")
class Query:
    rate_limit: RateLimit = strawberry.field(
        resolver=rate_limit, description="Your cost budget and what this request cost."
    )

    @strawberry.field(description="Fetch any object by its global ID.")
    async def node(
        self,
        info: Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="A global ID.")],
    ) -> Node | None:
        decoded = from_global_id(id)
        if decoded is None:
            raise UserInputError(f"{id[:64]!r} is not a global ID.", argument="id")
        entity = ENTITY_TYPES.get(decoded[0])  # every entity is a Node
        return None if entity is None else await entity.resolve_reference(info, id=id)

    @strawberry.field(description="A company by ticker (case-insensitive); null if unknown.")
    async def company(
        self, info: Info, ticker: Annotated[str, strawberry.argument(description="e.g. `AAPL`.")]
    ) -> Company | None:
        return Company.maybe(await companies.company_by_ticker(info, ticker))

    @strawberry.field(
        description="Companies ordered by ticker, optionally filtered.", directives=[paged(20)]
    )
    async def companies(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        sector: Annotated[
            str | None, strawberry.argument(description="Exact GICS sector, e.g. `Energy`.")
        ] = None,
        search: Annotated[
            str | None,
            strawberry.argument(description="Ticker prefix or part of the name, case-insensitive."),
        ] = None,
    ) -> CompanyConnection:
        page, count = await companies.companies(
            info, first=first, after=after, last=last, before=before, sector=sector, search=search
        )
        return Connection.build(page, count, Company.from_row, companies.cursor_of)

    @strawberry.field(description="A filing by accession number; null if unknown.")
    async def filing(
        self,
        info: Info,
        accession_number: Annotated[
            str, strawberry.argument(description="e.g. `0000320193-24-000123`.")
        ],
    ) -> Filing | None:
        return Filing.maybe(await filings.filing_by_accession(info, accession_number))

    @strawberry.field(
        description="Filings of all companies, newest first, optionally filtered.",
        directives=[paged(20)],
    )
    async def filings(
        self,
        info: Info,
        first: First = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        tickers: OfTickers = None,
        form_types: OfFormTypes = None,
        filed_after: FiledAfter = None,
        filed_before: Annotated[
            datetime | None, strawberry.argument(description="Filed strictly before this instant.")
        ] = None,
        as_of: FiledBy = None,
    ) -> FilingConnection:
        page, count = await filings.filings(
            info,
            first=first,
            after=after,
            last=last,
            before=before,
            tickers=tickers,
            form_types=form_types,
            filed_after=filed_after,
            filed_before=filed_before,
            as_of=as_of,
        )
        return Connection.build(page, count, Filing.from_row, filings.cursor_of)

    @strawberry.field(
        description="A metric of several companies, bucketed by calendar period: one series "
        "per ticker, in the order asked.",
        directives=[assumed(10)],
    )
    async def metric_series(
        self,
        info: Info,
        tickers: Annotated[
            list[str], strawberry.argument(description=f"1-{series.MAX_TICKERS} tickers.")
        ],
        metric: Annotated[str, strawberry.argument(description="e.g. `revenue`.")],
        interval: Annotated[
            Interval, strawberry.argument(description="WEEK, MONTH, QUARTER or YEAR.")
        ],
        from_: PeriodsFrom = None,
        to: PeriodsTo = None,
        aggregate: Annotated[
            Aggregate, strawberry.argument(description="How a bucket's values become one.")
        ] = Aggregate.LAST,
        basis: Annotated[
            Basis, strawberry.argument(description="Quarterly or fiscal-year values.")
        ] = Basis.QUARTERLY,
        values: Annotated[
            SeriesValues | None,
            strawberry.argument(
                description="Which revision of each period counts: LATEST, AS_OF or "
                "FIRST_REPORTED. Default: AS_OF when `asOf` is given, else LATEST."
            ),
        ] = None,
        as_of: Annotated[
            datetime | None,
            strawberry.argument(
                description="Point in time: read only what had been filed by this instant "
                "(AS_OF, or FIRST_REPORTED of the periods filed by then)."
            ),
        ] = None,
    ) -> list[MetricSeries]:
        found = await series.metric_series(
            info,
            tickers,
            metric,
            start=from_,
            end=to,
            interval=named(interval),
            aggregate=named(aggregate),
            basis=named(basis),
            values=None if values is None else named(values),
            as_of=as_of,
        )
        return [MetricSeries.from_series(one, metric) for one in found]

    @strawberry.field(
        description="Filings that match a query, best first: by meaning (VECTOR), by words "
        "(TEXT) or both (HYBRID). Filters apply before ranking, so up to `first` hits come "
        "back whenever that many filings pass them.",
        directives=[Cost(weight=5), sliced()],
    )
    async def search_filings(
        self,
        info: Info,
        query: Annotated[
            str, strawberry.argument(description="What to look for: up to 1,000 characters.")
        ],
        first: Annotated[
            int | None, strawberry.argument(description=f"How many hits (1-{MAX_PAGE_SIZE}).")
        ] = search.SEARCH_FIRST,
        tickers: OfTickers = None,
        form_types: OfFormTypes = None,
        filed_after: FiledAfter = None,
        mode: Annotated[
            SearchMode, strawberry.argument(description="How filings are ranked.")
        ] = SearchMode.HYBRID,
    ) -> list[FilingSearchHit]:
        hits = await search.search_filings(
            info,
            query,
            first=first,
            tickers=tickers,
            form_types=form_types,
            filed_after=filed_after,
            mode=named(mode),
        )
        return [FilingSearchHit.from_hit(hit) for hit in hits]
