"""List sizes that follow arguments no `@listSize` can name (a slicing argument must be an
Int, so composition refuses a list such as `tickers`, and no directive counts the calendar
buckets between two dates). graph/pipeline/cost.py applies them in place of the field's directive.
"""

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from db.ingest import EARLIEST_PERIOD
from resolvers.series import MAX_TICKERS

Sized = tuple[tuple[str, ...], int] | None  # the sized fields of a connection and their size
METRIC_HISTORY = 10  # years of reported values a series spans when `from` is omitted
PRICE_HISTORY = 2  # years of daily bars, likewise (Company.prices assumes 500 bars in the SDL)
MONTHS = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}  # a bucket's length


def utc_today() -> date:
    return datetime.now(UTC).date()


def named(value: Any) -> Any:
    """An enum argument's name (Strawberry coerces enums to Python enum members)."""
    return getattr(value, "value", value)


def span(arguments: dict[str, Any], today: date, years: int) -> tuple[date, date]:
    """The dates a `from`/`to` pair covers: `to` defaults to today and `from` to `years` before
    it; no value is older than EARLIEST_PERIOD nor newer than today, so a range past them
    costs no more than what can exist."""
    end = min(arguments.get("to") or today, today)
    start = arguments.get("from") or end - timedelta(days=365 * years + years // 4)
    return max(start, EARLIEST_PERIOD), end


def buckets(start: date, end: date, interval: Any) -> int:
    """How many calendar buckets of `interval` meet the dates from `start` to `end`; DAY counts
    weekdays (price bars), as does an unknown interval (the most)."""
    if start > end:
        return 0
    months = MONTHS.get(interval)
    if months is not None:
        return (
            (end.year * 12 + end.month - 1) // months
            - (start.year * 12 + start.month - 1) // months
            + 1
        )
    if interval == "WEEK":  # from Monday
        mondays = (end - timedelta(days=end.weekday())) - (start - timedelta(days=start.weekday()))
        return mondays.days // 7 + 1
    weeks, rest = divmod((end - start).days + 1, 7)
    return weeks * 5 + sum((start.weekday() + day) % 7 < 5 for day in range(rest))


def series_sizes(arguments: dict[str, Any], today: date) -> tuple[int, Sized]:
    """`Query.metricSeries`: a series per ticker, each with a point per bucket that can hold a
    value (a metric is reported once a quarter, or once a year on the ANNUAL basis)."""
    tickers = min(len(arguments.get("tickers") or ()), MAX_TICKERS)
    start, end = span(arguments, today, METRIC_HISTORY)
    reported = "YEAR" if named(arguments.get("basis")) == "ANNUAL" else "QUARTER"
    interval = named(arguments.get("interval"))
    points = min(buckets(start, end, interval), buckets(start, end, reported))
    return tickers, (("points",), points)


def price_series_sizes(arguments: dict[str, Any], today: date) -> tuple[int, Sized]:
    """`Company.priceSeries`: a bar per bucket."""
    start, end = span(arguments, today, PRICE_HISTORY)
    return buckets(start, end, named(arguments.get("interval"))), None


def price_sizes(arguments: dict[str, Any], today: date) -> tuple[int, Sized]:
    """`Company.prices`: a bar per weekday."""
    return buckets(*span(arguments, today, PRICE_HISTORY), "DAY"), None


# Lists sized by arguments that no `@listSize` can name: a field's own size, and the size of the
# sized fields of its items. They stay >= 0 and grow with every list and every range.
ARGUMENT_SIZES: dict[str, Callable[[dict[str, Any], date], tuple[int, Sized]]] = {
    "Query.metricSeries": series_sizes,
    "Company.priceSeries": price_series_sizes,
    "Company.prices": price_sizes,
}
