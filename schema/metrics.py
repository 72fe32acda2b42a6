"""Metric (a reported value) and PriceBar (a daily price)."""

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Self, cast

import strawberry

from loaders.metrics import MetricRow, PriceRow
from resolvers import filings
from resolvers.context import Info

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


@strawberry.type(description="A financial value reported in a filing.")
class Metric:
    filing_id: strawberry.Private[int]
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
