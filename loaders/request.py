"""The DataLoaders of one request. Created fresh per request: caches never outlive it.

Loaders whose SQL depends on field arguments (page windows, filters) come in families: one
DataLoader per distinct argument value, so that each batch is still a single statement.
"""

from collections.abc import Awaitable, Callable, Hashable, Sequence
from datetime import date
from functools import partial
from typing import Any, TypeVar

from aiodataloader import DataLoader
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from loaders import companies, filings, metrics
from loaders.cache import EntityCache
from loaders.companies import CompanyRow
from loaders.filings import FilingFilter, FilingRow
from loaders.metrics import MetricFilter
from loaders.pagination import Page, Window

K = TypeVar("K")
V = TypeVar("V")
A = TypeVar("A", bound=Hashable)


def loader(batch: Callable[[Sequence[K]], Awaitable[list[V]]]) -> "DataLoader[K, V]":
    async def load(keys: list[K]) -> list[V]:
        return await batch(keys)

    return DataLoader(load)


class Family:
    """DataLoaders keyed by their extra argument, created on first use."""

    def __init__(self, make: Callable[[Any], "DataLoader[Any, Any]"]) -> None:
        self._make = make
        self._loaders: dict[Hashable, DataLoader[Any, Any]] = {}

    def __call__(self, argument: Hashable) -> "DataLoader[Any, Any]":
        if argument not in self._loaders:
            self._loaders[argument] = self._make(argument)
        return self._loaders[argument]


class Loaders:
    def __init__(self, db: AsyncEngine, cache: EntityCache | None) -> None:
        self.db = db
        self.company_by_id: DataLoader[int, CompanyRow | None] = loader(
            partial(companies.company_by_id, db)
        )
        self.company_by_ticker: DataLoader[str, CompanyRow | None] = loader(
            partial(companies.company_by_ticker, db, cache)
        )
        self.company_by_cik: DataLoader[str, CompanyRow | None] = loader(
            partial(companies.company_by_cik, db)
        )
        self.filing_by_id: DataLoader[int, FilingRow | None] = loader(
            partial(filings.filing_by_id, db)
        )
        self.filing_by_accession: DataLoader[str, FilingRow | None] = loader(
            partial(filings.filing_by_accession, db, cache)
        )
        self._filings_by_company = Family(
            lambda key: loader(partial(filings.filings_by_company, db, *key))
        )
        self._filing_count_by_company = Family(
            lambda where: loader(partial(filings.filing_count_by_company, db, where))
        )
        self._metrics_by_filing = Family(
            lambda names: loader(partial(metrics.metrics_by_filing, db, names))
        )
        self._metrics_by_company = Family(
            lambda where: loader(partial(metrics.metrics_by_company, db, where))
        )
        self._prices_by_company = Family(
            lambda span: loader(partial(metrics.prices_by_company, db, span))
        )

    def filings_by_company(
        self, window: Window, where: FilingFilter
    ) -> "DataLoader[int, Page[FilingRow]]":
        return self._filings_by_company((window, where))

    def filing_count_by_company(self, where: FilingFilter) -> "DataLoader[int, int]":
        return self._filing_count_by_company(where)

    def metrics_by_filing(self, names: tuple[str, ...] | None) -> "DataLoader[int, list[Row[Any]]]":
        return self._metrics_by_filing(names)

    def metrics_by_company(self, where: MetricFilter) -> "DataLoader[int, list[Row[Any]]]":
        return self._metrics_by_company(where)

    def prices_by_company(
        self, span: tuple[date | None, date | None]
    ) -> "DataLoader[int, list[Row[Any]]]":
        return self._prices_by_company(span)
