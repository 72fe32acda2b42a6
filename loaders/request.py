"""The DataLoaders of one request. Created fresh per request: caches never outlive it.

Loaders whose SQL depends on field arguments (page windows, filters) are kept per argument
value: one DataLoader per distinct value, so that each batch is still a single statement.
"""

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from datetime import date
from functools import partial
from typing import Any, TypeVar

from aiodataloader import DataLoader

from db.reader import Reader
from loaders import companies, filings, metrics
from loaders.cache import EntityCache
from loaders.companies import CompanyRow
from loaders.filings import FilingFilter, FilingRow
from loaders.metrics import MetricFilter, MetricRow, PriceRow
from loaders.pagination import Page, Window

K = TypeVar("K")
V = TypeVar("V")


def loader(
    batch: Callable[[Sequence[K]], Awaitable[list[V]]], running: "set[asyncio.Task[Any]]"
) -> "DataLoader[K, V]":
    """A DataLoader whose batches (each a task of its own) are listed in `running` while
    they run, so that an abandoned request can cancel them and their SQL."""

    async def load(keys: list[K]) -> list[V]:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            return await batch(keys)
        finally:
            running.discard(task)

    return DataLoader(load)


class Loaders:
    """Each DataLoader is made on first use: a request pays only for the paths it takes."""

    def __init__(self, db: Reader, cache: EntityCache | None) -> None:
        self.db = db
        self.cache = cache
        self._loaders: dict[tuple[Any, ...], DataLoader[Any, Any]] = {}
        self._running: set[asyncio.Task[Any]] = set()

    def clear(self) -> None:
        """Drop every loader and its cached rows, and cancel batches still running (their
        request was abandoned: a timeout, or a client that left). graphql-core's executor
        references itself (and through the context, these loaders), so without this a
        response's rows would wait for the cycle collector instead of dying with the request."""
        for task in self._running:
            task.cancel()
        self._loaders.clear()

    def _loader(
        self, batch: Callable[..., Awaitable[list[Any]]], *arguments: Hashable
    ) -> DataLoader[Any, Any]:
        """One DataLoader per batch function and argument values (page window, filters)."""
        key = (batch, *arguments)
        found = self._loaders.get(key)
        if found is None:
            found = self._loaders[key] = loader(partial(batch, self.db, *arguments), self._running)
        return found

    @property
    def company_by_id(self) -> "DataLoader[int, CompanyRow | None]":
        return self._loader(companies.company_by_id)

    @property
    def company_by_ticker(self) -> "DataLoader[str, CompanyRow | None]":
        return self._loader(companies.company_by_ticker, self.cache)

    @property
    def company_by_cik(self) -> "DataLoader[str, CompanyRow | None]":
        return self._loader(companies.company_by_cik)

    @property
    def filing_by_id(self) -> "DataLoader[int, FilingRow | None]":
        return self._loader(filings.filing_by_id)

    @property
    def filing_by_accession(self) -> "DataLoader[str, FilingRow | None]":
        return self._loader(filings.filing_by_accession, self.cache)

    def filings_by_company(
        self, window: Window, where: FilingFilter
    ) -> "DataLoader[int, Page[FilingRow]]":
        return self._loader(filings.filings_by_company, window, where)

    def filing_count_by_company(self, where: FilingFilter) -> "DataLoader[int, int]":
        return self._loader(filings.filing_count_by_company, where)

    def metrics_by_filing(
        self, names: tuple[str, ...] | None
    ) -> "DataLoader[int, list[MetricRow]]":
        return self._loader(metrics.metrics_by_filing, names)

    def metrics_by_company(self, where: MetricFilter) -> "DataLoader[int, list[MetricRow]]":
        return self._loader(metrics.metrics_by_company, where)

    def prices_by_company(
        self, span: tuple[date | None, date | None]
    ) -> "DataLoader[int, list[PriceRow]]":
        return self._loader(metrics.prices_by_company, span)
