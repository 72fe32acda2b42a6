"""The DataLoaders of one request. Created fresh per request: caches never outlive it.

Loaders whose SQL depends on field arguments (page windows, filters) are kept per argument
value: one DataLoader per distinct value, so that each batch is still a single statement.
Every read goes through them, root lists and counts too (one statement per filter): what a
request reads once, it reads again from the cache, as when a compiled run is given up and
the standard executor answers from the start.

When asked (`track_companies`), the loaders note which companies the request read from: the
response cache drops an answer when a filing of one of them is ingested.

They also note the instants a request read as of (`settled`): an answer read wholly as of
instants long past, or from what never changes (a filing and what it reported, a company), is
the same tomorrow, and caches may keep it longer. Any other read is of "now".
"""

import asyncio
from collections.abc import (
    Awaitable,
    Callable,
    Coroutine,
    Hashable,
    Iterable,
    Mapping,
    Sequence,
)
from datetime import UTC, date, datetime, timedelta
from functools import cache, partial
from typing import Any, TypeVar, cast

import orjson
from aiodataloader import DataLoader, Loader, dispatch_queue
from opentelemetry import trace
from prometheus_client import Histogram

from db.embeddings import Embedder, HashingEmbedder
from db.reader import Reader
from loaders import companies, filings, metrics, search, series
from loaders.cache import MEMORY_HITS, MEMORY_MISSES, CompanyMemory, EntityCache
from loaders.companies import CompanyFilter, CompanyRow
from loaders.filings import FilingFilter, FilingRow
from loaders.json_lists import Selection
from loaders.metrics import MetricFilter, MetricRow, PeriodKey, PriceRow
from loaders.pagination import Page, Window
from loaders.search import FilingHit, SearchRequest
from loaders.series import Interval, SeriesRequest, TickerSeries
from loaders.tracing import child_span

K = TypeVar("K")
V = TypeVar("V")
EVERY_COMPANY = "*"  # read from a list that any company's new filing changes
CompaniesOf = Callable[[Sequence[Any], Sequence[Any]], Iterable[int | str]]

TRACER = trace.get_tracer(__name__)
BATCH_SIZE = Histogram(
    "corpgraph_dataloader_batch_size",
    "Keys per DataLoader batch (each batch is one SQL statement), by loader",
    ["loader"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000),
)


class BatchLoader(DataLoader[K, V]):
    """aiodataloader starts each batch from a task whose only work is to start the batch's
    own task; a callback starts it one loop turn sooner, and one task fewer per batch."""

    def do_resolve_reject(self, key: K, future: "asyncio.Future[V]") -> None:
        self._queue.append(Loader(key=key, future=future))
        if len(self._queue) == 1:
            self.loop.call_soon(dispatch_queue, self)


class Remembering(BatchLoader[K, V]):
    """Answers a key that the worker's `memory` holds at once, with no batch; `noted` is
    told of it as `read` is of a batch's rows (the response cache's company tracking)."""

    def __init__(
        self,
        load: Callable[[list[K]], Coroutine[Any, Any, list[V]]],
        memory: Mapping[K, V],
        noted: Callable[[Sequence[K], list[V]], None],
    ) -> None:
        super().__init__(load)
        self.memory = memory
        self.noted = noted

    def do_resolve_reject(self, key: K, future: "asyncio.Future[V]") -> None:
        value = self.memory.get(key)
        if value is None:
            MEMORY_MISSES.inc()
            super().do_resolve_reject(key, future)
            return
        MEMORY_HITS.inc()
        future.set_result(value)
        self.noted([key], [value])


def watched_batch(
    name: str,
    batch: Callable[[Sequence[K]], Awaitable[list[V]]],
    running: "set[asyncio.Task[Any]]",
    read: Callable[[Sequence[K], list[V]], None],
) -> Callable[[list[K]], Coroutine[Any, Any, list[V]]]:
    """A DataLoader's batch function whose batches (each a task of its own, and a span) are
    listed in `running` while they run, so that an abandoned request can cancel them and
    their SQL; `read` is told what each batch returned. A batch that fails answers each of
    its keys with its error: DataLoader forgets the keys of a batch that raises, and a second
    read of them in the request (the standard executor answering a compiled run it gave up,
    graph/execution/compiled.py) would send the failed statement again, a slow one twice as long."""
    sizes = batch_sizes(name)
    span_name = f"dataloader {name}"

    async def load(keys: list[K]) -> list[V]:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        sizes.observe(len(keys))
        attributes: dict[str, str | int] = {
            "dataloader.name": name,
            "dataloader.batch.size": len(keys),
        }
        try:
            with child_span(TRACER, span_name, attributes):
                values = await batch(keys)
        except Exception as error:  # not CancelledError: a cancelled request reads no more
            return cast("list[V]", [error] * len(keys))  # DataLoader fails each key's future
        finally:
            running.discard(task)
        read(keys, values)
        return values

    return load


@cache  # one histogram per loader name, not a label lookup per request
def batch_sizes(name: str) -> Histogram:
    return BATCH_SIZE.labels(name)


# what a filing and the rows it reported are never changes (an accession number is ingested
# once); companies neither, as far as answers go (no filing adds one); the root filing lists
# are keyed by their filter, whose instant their resolver notes
FIXED: frozenset[Callable[..., Any]] = frozenset(
    {
        companies.company_by_id,
        companies.company_by_ticker,
        companies.company_by_cik,
        companies.company_page_by_filter,
        companies.company_count_by_filter,
        filings.filing_by_id,
        filings.filing_by_accession,
        filings.filing_page_by_filter,
        filings.filing_count_by_filter,
        metrics.metrics_by_filing,
        metrics.metrics_json_by_filing,
    }
)


def instant_of(batch: Callable[..., Any], arguments: tuple[Hashable, ...]) -> datetime | None:
    """The instant a loader reads as of: None for now (answers that change as filings come)."""
    for argument in arguments:
        if isinstance(argument, MetricFilter):
            return argument.as_of
        if isinstance(argument, FilingFilter):
            return argument.filed_before
        if isinstance(argument, SeriesRequest):
            return argument.as_of
        if isinstance(argument, datetime) and batch is metrics.revisions_by_period:
            return argument
    return None


def aware(instant: datetime) -> datetime:
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def keyed_by_company(keys: Sequence[int], _: Sequence[Any]) -> Iterable[int]:
    return keys


def companies_of(_: Sequence[Any], rows: Sequence[CompanyRow | None]) -> Iterable[int]:
    return (row.id for row in rows if row is not None)


def companies_in_pages(_: Sequence[Any], pages: Sequence[Page[CompanyRow]]) -> Iterable[int]:
    return (row.id for listed in pages for row in listed.rows)


def company_of_rows(
    _: Sequence[Any], rows: Sequence[FilingRow | TickerSeries | None]
) -> Iterable[int]:
    return (row.company_id for row in rows if row is not None)


def any_company(_: Sequence[Any], __: Sequence[Any]) -> Iterable[str]:
    return (EVERY_COMPANY,)  # a ranking that any company's new filing may enter


def nothing_new(_: Sequence[Any], __: Sequence[Any]) -> Iterable[int]:
    return ()  # read through a filing, whose company is noted already


class Loaders:
    """Each DataLoader is made on first use: a request pays only for the paths it takes."""

    def __init__(
        self,
        db: Reader,
        cache: EntityCache | None,
        embedder: Embedder | None = None,
        memory: CompanyMemory | None = None,
    ) -> None:
        self.db = db
        self.cache = cache
        self.memory = memory  # the worker's, shared by its requests
        self.embedder = embedder or HashingEmbedder()  # of search queries
        self._loaders: dict[tuple[Any, ...], DataLoader[Any, Any]] = {}
        self._running: set[asyncio.Task[Any]] = set()
        self.companies_read: set[str] | None = None
        self.instants: set[datetime | None] = set()  # read as of; None: now

    def track_companies(self) -> set[str]:
        """From now on, note the companies read from (ids, or EVERY_COMPANY)."""
        self.companies_read = set()
        return self.companies_read

    def note(self, companies: Iterable[int | str]) -> None:
        if self.companies_read is not None:
            self.companies_read.update(str(company) for company in companies)

    def note_instant(self, instant: datetime | None) -> None:
        """For reads outside a DataLoader: as of `instant`, or of now (None)."""
        self.instants.add(instant)

    def settled(self, lag: timedelta, now: datetime | None = None) -> bool:
        """Whether everything read was as of instants at least `lag` ago (and something was):
        filings filed since cannot change the answer, unless backdated (docs/api.md)."""
        if not self.instants or None in self.instants:
            return False
        latest = max(aware(instant) for instant in self.instants if instant is not None)
        return latest <= (now or datetime.now(UTC)) - lag

    def clear(self) -> None:
        """Drop every loader and its cached rows, and cancel batches still running (their
        request was abandoned: a timeout, or a client that left). graphql-core's executor
        references itself (and through the context, these loaders), so without this a
        response's rows would wait for the cycle collector instead of dying with the request."""
        for task in self._running:
            task.cancel()
        self.forget()

    def forget(self) -> None:
        """Drop every loader and its cached rows, so that what is read next is read afresh.
        Batches still running finish for whoever waits on them: on a WebSocket connection
        that may be another subscription's event (a cancelled batch would leave it waiting
        for ever)."""
        self._loaders.clear()

    def _loader(
        self, batch: Callable[..., Awaitable[list[Any]]], read: CompaniesOf, *arguments: Hashable
    ) -> DataLoader[Any, Any]:
        """One DataLoader per batch function and argument values (page window, filters)."""
        key = (batch, *arguments)
        found = self._loaders.get(key)
        if found is None:
            if batch not in FIXED:
                self.instants.add(instant_of(batch, arguments))
            load = partial(batch, self.db, *arguments)
            found = self._loaders[key] = BatchLoader(
                watched_batch(batch.__name__, load, self._running, partial(self._read, read))
            )
        return found

    def _read(self, companies: CompaniesOf, keys: Sequence[Any], values: Sequence[Any]) -> None:
        self.note(companies(keys, values))  # lazily: read only when tracking

    def _company_loader(
        self,
        batch: Callable[..., Awaitable[list[CompanyRow | None]]],
        memory: Mapping[Any, CompanyRow] | None,
        *arguments: Hashable,
    ) -> DataLoader[Any, CompanyRow | None]:
        """A company loader that asks the worker's memory first, and fills it."""
        if memory is None:
            return self._loader(batch, companies_of, *arguments)
        key = (batch, *arguments)
        found = self._loaders.get(key)
        if found is None:
            load = partial(batch, self.db, *arguments)
            found = self._loaders[key] = Remembering(
                watched_batch(batch.__name__, load, self._running, self._read_companies),
                memory,
                partial(self._read, companies_of),
            )
        return found

    def _read_companies(self, keys: Sequence[Any], rows: Sequence[CompanyRow | None]) -> None:
        self._read(companies_of, keys, rows)
        assert self.memory is not None
        self.memory.remember(row for row in rows if row is not None)

    @property
    def company_by_id(self) -> "DataLoader[int, CompanyRow | None]":
        memory = self.memory.by_id if self.memory else None
        return self._company_loader(companies.company_by_id, memory)

    @property
    def company_by_ticker(self) -> "DataLoader[str, CompanyRow | None]":
        memory = self.memory.by_ticker if self.memory else None
        return self._company_loader(companies.company_by_ticker, memory, self.cache)

    @property
    def company_by_cik(self) -> "DataLoader[str, CompanyRow | None]":
        memory = self.memory.by_cik if self.memory else None
        return self._company_loader(companies.company_by_cik, memory)

    def company_page_by_filter(
        self, window: Window
    ) -> "DataLoader[CompanyFilter, Page[CompanyRow]]":
        return self._loader(companies.company_page_by_filter, companies_in_pages, window)

    @property
    def company_count_by_filter(self) -> "DataLoader[CompanyFilter, int]":
        return self._loader(companies.company_count_by_filter, nothing_new)  # no filing moves it

    @property
    def filing_by_id(self) -> "DataLoader[int, FilingRow | None]":
        return self._loader(filings.filing_by_id, company_of_rows)

    @property
    def filing_by_accession(self) -> "DataLoader[str, FilingRow | None]":
        return self._loader(filings.filing_by_accession, company_of_rows, self.cache)

    def filing_page_by_filter(self, window: Window) -> "DataLoader[FilingFilter, Page[FilingRow]]":
        return self._loader(filings.filing_page_by_filter, any_company, window)

    @property
    def filing_count_by_filter(self) -> "DataLoader[FilingFilter, int]":
        return self._loader(filings.filing_count_by_filter, any_company)

    def filings_by_company(
        self, window: Window, where: FilingFilter
    ) -> "DataLoader[int, Page[FilingRow]]":
        return self._loader(filings.filings_by_company, keyed_by_company, window, where)

    def filing_count_by_company(self, where: FilingFilter) -> "DataLoader[int, int]":
        return self._loader(filings.filing_count_by_company, keyed_by_company, where)

    def metrics_by_filing(
        self, names: tuple[str, ...] | None
    ) -> "DataLoader[int, list[MetricRow]]":
        return self._loader(metrics.metrics_by_filing, nothing_new, names)

    def metrics_json_by_filing(
        self, names: tuple[str, ...] | None, selection: Selection
    ) -> "DataLoader[int, list[orjson.Fragment] | None]":
        return self._loader(metrics.metrics_json_by_filing, nothing_new, names, selection)

    def metrics_by_company(self, where: MetricFilter) -> "DataLoader[int, list[MetricRow]]":
        return self._loader(metrics.metrics_by_company, keyed_by_company, where)

    def revisions_by_period(
        self, as_of: datetime | None
    ) -> "DataLoader[PeriodKey, list[MetricRow]]":
        return self._loader(metrics.revisions_by_period, nothing_new, as_of)

    def prices_by_company(
        self, span: tuple[date | None, date | None]
    ) -> "DataLoader[int, list[PriceRow]]":
        return self._loader(metrics.prices_by_company, keyed_by_company, span)

    def metric_series(self, request: SeriesRequest) -> "DataLoader[str, TickerSeries | None]":
        return self._loader(series.metric_series, company_of_rows, request)

    def price_bars(
        self, interval: Interval, span: tuple[date | None, date | None]
    ) -> "DataLoader[int, list[PriceRow]]":
        return self._loader(series.price_bars, keyed_by_company, interval, span)

    def search_filings(self, request: SearchRequest) -> "DataLoader[str, list[FilingHit]]":
        return self._loader(search.search_filings, any_company, self.embedder, request)

    def similar_filings(self, first: int) -> "DataLoader[int, list[FilingHit]]":
        return self._loader(search.similar_filings, any_company, first)

    def similar_companies(self, first: int) -> "DataLoader[int, list[CompanyRow]]":
        return self._loader(search.similar_companies, any_company, first)
