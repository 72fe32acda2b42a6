"""Daily prices written after the seed: a backfill of history, a correction of a bad bar.

Rows are upserted by (company, day) in one transaction; then, with TimescaleDB, the continuous
aggregates are refreshed over the buckets written (db/timescale.py), before this returns, so
that weekly and monthly bars never answer differently from the daily rows, however old.
"""

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from db.models import StockPrice, companies
from db.timescale import refresh_price_aggregates

FIELDS = ("ticker", "date", "open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class PriceInput:
    ticker: str
    date: date
    open: float
    high: float
    low: float
    close: float
    volume: float


class InvalidPrices(Exception):
    """What is wrong, by row (`line 3: ...`); nothing was written."""


def read_csv(path: Path) -> list[PriceInput]:
    """A CSV file with the header `ticker,date,open,high,low,close,volume`."""
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        if reader.fieldnames is None or tuple(reader.fieldnames) != FIELDS:
            raise InvalidPrices(f"{path}: the header must be {','.join(FIELDS)}")
        return [parsed(row, f"{path} line {index}") for index, row in enumerate(reader, 2)]


def parsed(row: dict[str, str], where: str) -> PriceInput:
    try:
        ticker, day, *numbers = (row[name] for name in FIELDS)
        values = [float(number) for number in numbers]
        bar = PriceInput(ticker.upper(), date.fromisoformat(day), *values)
    except (TypeError, ValueError) as error:
        raise InvalidPrices(f"{where}: {error}") from None
    if not all(math.isfinite(value) and value >= 0 for value in values):
        raise InvalidPrices(f"{where}: prices and volume must be finite and not negative")
    if not bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high:
        raise InvalidPrices(f"{where}: low <= open, close <= high does not hold")
    return bar


async def store_prices(engine: AsyncEngine, prices: Sequence[PriceInput]) -> int:
    """Upsert the bars, then refresh the aggregates over their days; the number stored.
    `engine`: a maintenance engine (db/engine.py): a refresh of much history takes long."""
    if not prices:
        return 0
    if len({(bar.ticker, bar.date) for bar in prices}) < len(prices):
        raise InvalidPrices("a ticker has two bars for the same day")
    async with engine.begin() as conn:
        tickers = sorted({bar.ticker for bar in prices})
        found = await conn.execute(
            select(companies.c.ticker, companies.c.id).where(companies.c.ticker.in_(tickers))
        )
        ids = dict(found.all())
        unknown = [ticker for ticker in tickers if ticker not in ids]
        if unknown:
            raise InvalidPrices(f"no company has the ticker {', '.join(unknown)}")
        await conn.execute(upsert(), list(rows(prices, ids)))
    days = [bar.date for bar in prices]
    await refresh_price_aggregates(engine, (min(days), max(days)))
    return len(prices)


def rows(prices: Iterable[PriceInput], ids: dict[str, int]) -> Iterable[dict[str, object]]:
    for bar in prices:
        _, day, *values = astuple(bar)
        yield {
            "company_id": ids[bar.ticker],
            "date": day,
            **dict(zip(FIELDS[2:], values, strict=True)),
        }


def upsert() -> Insert:
    statement = insert(StockPrice)
    changed = {name: statement.excluded[name] for name in FIELDS[2:]}
    return statement.on_conflict_do_update(index_elements=["company_id", "date"], set_=changed)
