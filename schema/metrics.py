"""Metric (a reported value) and PriceBar (a daily price)."""

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Self, cast

import strawberry

from loaders.metrics import MetricRow, PriceRow
from resolvers import filings, metrics
from resolvers.context import Info
from schema.costs import assumed

if TYPE_CHECKING:
    from schema.filings import Filing

PeriodsFrom = Annotated[
    dt.date | None,
    strawberry.argument(name="from", description="Periods ending on or after this date."),
]
PeriodsTo = Annotated[
    dt.date | None, strawberry.argument(description="Periods ending on or before this date.")
]
DaysFrom = Annotated[
    dt.date | None, strawberry.argument(name="from", description="First date, inclusive.")
]
DaysTo = Annotated[dt.date | None, strawberry.argument(description="Last date, inclusive.")]
AsOf = Annotated[
    dt.datetime | None,
    strawberry.argument(
        description="Point in time: answer with what had been filed by this instant (filings "
        "filed later do not exist yet), as a backtest needs. Each period then has one value, "
        "its latest revision filed at or before `asOf`. Omit it for the values as reported "
        "to date."
    ),
]


@strawberry.type(
    description="A financial value reported in a filing. A period may be reported again by a "
    "later filing (a prior-year comparative in a 10-K, a 10-K/A amendment), with the same value "
    "or a restated one: each report is a revision, and `revisions` lists them."
)
class Metric:
    filing_id: strawberry.Private[int]
    company_id: strawberry.Private[int]
    as_of: strawberry.Private[dt.datetime | None]
    name: str = strawberry.field(description="Metric name, e.g. `revenue`, `total_assets`.")
    value: float = strawberry.field(description="The reported value, in `unit`.")
    unit: str = strawberry.field(description="`USD`, `USD/share` or `shares`.")
    period_start: dt.date | None = strawberry.field(
        description="Start of the period of a flow (revenue); null for an instant (assets)."
    )
    period_end: dt.date = strawberry.field(
        description="End of the period, or the instant measured."
    )
    fiscal_year: int | None = strawberry.field(description="Fiscal year of the period.")
    fiscal_period: str | None = strawberry.field(description="`FY`, `Q1`, `Q2` or `Q3`.")
    reported_at: dt.datetime = strawberry.field(
        description="When this value became known: its filing's `filedAt`."
    )

    @staticmethod
    def served(rows: list[MetricRow]) -> list["Metric"]:
        """The loader's rows, served as they are: a row has every attribute of a Metric, and
        a Metric's fields are read from attributes (`filing` from `self.filing_id`). A large
        response holds thousands; converting each would cost ~1 µs."""
        return cast("list[Metric]", rows)

    @strawberry.field(description="The filing that reported it.")
    async def filing(
        self, info: Info
    ) -> Annotated["Filing", strawberry.lazy("schema.filings")] | None:
        from schema.filings import Filing

        return Filing.maybe(await filings.filing_by_id(info, self.filing_id))

    @strawberry.field(
        description="Every value reported for this period, oldest first (by `reportedAt`), each "
        "with its filing; this value is one of them. When this value was read `asOf` an "
        "instant, only the revisions filed by then.",
        directives=[assumed(3)],
    )
    async def revisions(self, info: Info) -> list["Metric"]:
        return Metric.served(await metrics.revisions(info, cast(MetricRow, self)))

    @strawberry.field(
        description="The value as first reported for this period (the oldest of `revisions`): "
        "what a model saw on the day the period was first filed."
    )
    async def first_reported(self, info: Info) -> "Metric":
        first, *_ = await metrics.revisions(info, cast(MetricRow, self))
        return Metric.served([first])[0]

    @strawberry.field(
        description="True when this value differs from the value first reported for the period: "
        "a restatement (by a later 10-K's comparative or an amendment)."
    )
    async def is_revised(self, info: Info) -> bool:
        first, *_ = await metrics.revisions(info, cast(MetricRow, self))
        return first.value != self.value


@strawberry.type(description="One trading day of a stock.")
class PriceBar:
    date: dt.date = strawberry.field(description="Trading day.")
    open: float = strawberry.field(description="Opening price, USD.")
    high: float = strawberry.field(description="Highest price, USD.")
    low: float = strawberry.field(description="Lowest price, USD.")
    close: float = strawberry.field(description="Closing price, USD.")
    volume: float = strawberry.field(description="Shares traded.")

    @classmethod
    def from_row(cls, row: PriceRow) -> Self:
        return cls(
            date=row.date,
            open=row.open,
            high=row.high,
            low=row.low,
            close=row.close,
            volume=row.volume,
        )
