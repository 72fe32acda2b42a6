"""Metric series across companies, bucketed by calendar period: the enums and types."""

import datetime as dt
from enum import Enum
from typing import Any, Self

import strawberry

from loaders.series import Point, TickerSeries
from schema.costs import assumed


@strawberry.enum(description="Calendar buckets, named by their first day.")
class Interval(Enum):
    DAY = strawberry.enum_value("DAY", description="Each day (price bars only).")
    WEEK = strawberry.enum_value("WEEK", description="Weeks, Monday to Sunday.")
    MONTH = strawberry.enum_value("MONTH", description="Calendar months.")
    QUARTER = strawberry.enum_value("QUARTER", description="Calendar quarters, from January.")
    YEAR = strawberry.enum_value("YEAR", description="Calendar years.")


@strawberry.enum(description="How the values that fall in one bucket become one.")
class Aggregate(Enum):
    FIRST = strawberry.enum_value("FIRST", description="The value of the earliest period.")
    LAST = strawberry.enum_value("LAST", description="The value of the latest period.")
    MIN = strawberry.enum_value("MIN", description="The smallest value.")
    MAX = strawberry.enum_value("MAX", description="The largest value.")
    AVG = strawberry.enum_value("AVG", description="The mean of the values.")
    SUM = strawberry.enum_value("SUM", description="The total: for flows (revenue), not balances.")


@strawberry.enum(
    description="Which reported periods feed a series. A series never mixes them, so a year's "
    "SUM of quarters never also counts the annual figure."
)
class Basis(Enum):
    QUARTERLY = strawberry.enum_value(
        "QUARTERLY", description="Three-month values, and balances at every quarter end."
    )
    ANNUAL = strawberry.enum_value(
        "ANNUAL", description="Fiscal-year values, and balances at fiscal year ends."
    )


@strawberry.enum(
    description="Which value of a period a series counts, when filings reported it more than "
    "once (a prior-year comparative in a 10-K, a 10-K/A amendment)."
)
class SeriesValues(Enum):
    LATEST = strawberry.enum_value(
        "LATEST", description="Its latest revision, as known now: restatements included."
    )
    AS_OF = strawberry.enum_value(
        "AS_OF",
        description="Its latest revision filed at or before `asOf`: the series exactly as it "
        "looked then, for backtests (periods first filed later are absent).",
    )
    FIRST_REPORTED = strawberry.enum_value(
        "FIRST_REPORTED",
        description="Its first report, before any restatement (with `asOf`: of the periods "
        "filed by then).",
    )


def named(member: Enum) -> Any:
    """A member as the loaders name it: its value (typed there as a Literal; mypy sees a
    strawberry.enum_value definition here)."""
    return member.value


@strawberry.type(description="One bucket of a metric series.")
class MetricPoint:
    period_start: dt.date = strawberry.field(description="First day of the bucket.")
    value: float = strawberry.field(description="The aggregate of the values in the bucket.")
    count: int = strawberry.field(description="How many reported values fell in the bucket.")

    @classmethod
    def from_point(cls, point: Point) -> Self:
        return cls(period_start=point.period_start, value=point.value, count=point.reported)


@strawberry.type(description="A metric of one company, bucket by bucket, oldest first.")
class MetricSeries:
    ticker: str = strawberry.field(description="The company's ticker.")
    metric: str = strawberry.field(description="The metric, e.g. `revenue`.")
    unit: str = strawberry.field(description="`USD`, `USD/share` or `shares`.")
    points: list[MetricPoint] = strawberry.field(
        description="Buckets that have values, oldest first.", directives=[assumed(40)]
    )

    @classmethod
    def from_series(cls, series: TickerSeries, metric: str) -> Self:
        return cls(
            ticker=series.ticker,
            metric=metric,
            unit=series.kind.unit or "",
            points=[MetricPoint.from_point(point) for point in series.points],
        )
