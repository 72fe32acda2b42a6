"""The Company entity: federation keys `id`, `ticker` and `cik`."""

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Self

import strawberry

from loaders.companies import CompanyRow
from resolvers import companies, filings, metrics, search, series
from resolvers.context import Info
from resolvers.pagination import MAX_PAGE_SIZE
from schema.costs import Cost, assumed, paged, sliced
from schema.metrics import AsOf, DaysFrom, DaysTo, Metric, PeriodsFrom, PeriodsTo, PriceBar
from schema.node import Node, key_in
from schema.pagination import After, Before, Connection, Last
from schema.series import Interval, named

if TYPE_CHECKING:
    from schema.filings import Filing

FilingConnection = Connection[Annotated["Filing", strawberry.lazy("schema.filings")]]


@strawberry.federation.type(
    keys=["id", "ticker", "cik"], description="A company that files with the SEC."
)
class Company(Node):
    db_id: strawberry.Private[int]
    ticker: str = strawberry.field(description="Trading symbol, e.g. `AAPL`.")
    cik: str = strawberry.field(description="SEC Central Index Key, 10 digits with leading zeros.")
    name: str = strawberry.field(description="Registered company name.")
    sector: str | None = strawberry.field(description="GICS sector, e.g. `Information Technology`.")
    industry: str | None = strawberry.field(description="GICS industry, e.g. `Semiconductors`.")

    def node_key(self) -> str:
        return self.cik

    @classmethod
    def from_row(cls, row: CompanyRow) -> Self:
        return cls(
            db_id=row.id,
            ticker=row.ticker,
            cik=row.cik,
            name=row.name,
            sector=row.sector,
            industry=row.industry,
        )

    @classmethod
    def maybe(cls, row: CompanyRow | None) -> Self | None:
        return None if row is None else cls.from_row(row)

    @classmethod
    async def resolve_reference(
        cls,
        info: Info,
        id: str | None = None,
        ticker: str | None = None,
        cik: str | None = None,
        **_: Any,
    ) -> Self | None:
        if id is not None:
            cik = key_in(id, "Company")
            if cik is None:
                return None
        if ticker is not None:
            return cls.maybe(await companies.company_by_ticker(info, ticker))
        if cik is not None:
            return cls.maybe(await companies.company_by_cik(info, cik))
        return None

    @strawberry.field(description="The company's filings, newest first.", directives=[paged(10)])
    async def filings(
        self,
        info: Info,
        first: Annotated[
            int | None,
            strawberry.argument(description=f"Page size forward (1-{MAX_PAGE_SIZE}, default 10)."),
        ] = None,
        after: After = None,
        last: Last = None,
        before: Before = None,
        form_types: Annotated[
            list[str] | None,
            strawberry.argument(description='Only these form types, e.g. `["10-K", "10-Q"]`.'),
        ] = None,
        as_of: Annotated[
            datetime | None,
            strawberry.argument(
                description="Point in time: only the filings filed at or before this instant."
            ),
        ] = None,
    ) -> FilingConnection:
        from schema.filings import Filing

        page, count = await filings.company_filings(
            info,
            self.db_id,
            first=first,
            after=after,
            last=last,
            before=before,
            form_types=form_types,
            as_of=as_of,
        )
        return Connection.build(page, count, Filing.from_row, filings.cursor_of)

    @strawberry.field(
        description="Reported financial metrics, oldest period first: every reported value, or "
        "with `asOf` each period's value as known at that instant.",
        directives=[assumed(200)],  # a time series: ten metrics over five years
    )
    async def metrics(
        self,
        info: Info,
        names: Annotated[
            list[str] | None,
            strawberry.argument(description='Only these metrics, e.g. `["revenue"]`.'),
        ] = None,
        from_: PeriodsFrom = None,
        to: PeriodsTo = None,
        as_of: AsOf = None,
    ) -> list[Metric]:
        rows = await metrics.company_metrics(
            info, self.db_id, names=names, start=from_, end=to, as_of=as_of
        )
        return Metric.served(rows)

    @strawberry.field(
        description="Daily price bars, oldest first.",
        directives=[assumed(500)],  # about two years
    )
    async def prices(
        self,
        info: Info,
        from_: DaysFrom = None,
        to: DaysTo = None,
    ) -> list[PriceBar]:
        rows = await metrics.company_prices(info, self.db_id, start=from_, end=to)
        return [PriceBar.from_row(row) for row in rows]

    @strawberry.field(
        description="Price bars per calendar bucket, oldest first: open of the first day, close "
        "of the last, the highest high, the lowest low, the total volume; `date` is the "
        "bucket's first day.",
        directives=[assumed(100)],
    )
    async def price_series(
        self,
        info: Info,
        interval: Annotated[Interval, strawberry.argument(description="The bucket size.")],
        from_: DaysFrom = None,
        to: DaysTo = None,
    ) -> list[PriceBar]:
        rows = await series.price_series(
            info, self.db_id, start=from_, end=to, interval=named(interval)
        )
        return [PriceBar.from_row(row) for row in rows]

    @strawberry.field(
        description="The companies whose filings are nearest to this one's by meaning (each "
        "company placed at the mean of its filings' embeddings), nearest first.",
        directives=[Cost(weight=5), sliced()],  # a vector search per parent, in PostgreSQL
    )
    async def similar_companies(
        self,
        info: Info,
        first: Annotated[
            int | None, strawberry.argument(description=f"How many (1-{MAX_PAGE_SIZE}).")
        ] = search.SIMILAR_FIRST,
    ) -> list["Company"]:
        rows = await search.similar_companies(info, self.db_id, first)
        return [Company.from_row(row) for row in rows]


CompanyConnection = Connection[Company]
