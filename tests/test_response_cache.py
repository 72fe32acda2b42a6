"""The response cache of persisted queries, and HTTP caching of GET answers: what is kept, for
whom, what a hit costs, and which ingested filings drop what (the API's and any other)."""

import asyncio
import gc
import logging
import signal
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from starlette.testclient import TestClient

from db.engine import create_engine
from db.ingest import FilingInput, ingest
from graph.app import create_app
from graph.pipeline.persisted import sha256
from graph.pipeline.response_cache import ResponseCache
from graph.services import services_of
from graph.settings import Settings
from loaders.cache import RETRY_SECONDS, EntityCache
from resolvers.context import Viewer
from tests.conftest import new_api_key
from tests.filings import INGEST, NUMBERS
from tests.servers import free_port, redis_server

pytestmark = pytest.mark.executors  # the HTTP answers are the same with both

PAGE = """query Page($ticker: String!) {
  company(ticker: $ticker) { name filings(first: 3) { nodes { accessionNumber } } } }"""
LATEST = "query Latest { filings(first: 3) { nodes { accessionNumber company { ticker } } } }"
BUDGET = 'query Budget { rateLimit { remaining } company(ticker: "AAPL") { name } }'
BROKEN = 'query Broken { company(ticker: "AAPL") { filings(first: 0) { totalCount } } }'


def persisted(client: TestClient, query: str, **variables: Any) -> dict[str, Any]:
    """A persisted query by its hash (registered with APQ first when unknown)."""
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha256(query)}}
    body = {"extensions": extensions, "variables": variables}
    answer: dict[str, Any] = client.post("/graphql", json=body).json()
    if answer.get("errors", [{}])[0].get("message") == "PersistedQueryNotFound":
        answer = client.post("/graphql", json={**body, "query": query}).json()
    return answer


def hit(answer: dict[str, Any]) -> bool | None:
    cache: dict[str, bool] | None = answer.get("extensions", {}).get("responseCache")
    return None if cache is None else cache["hit"]


def new_number() -> str:
    return f"0000320193-26-8{next(NUMBERS):05d}"


@pytest.fixture(scope="module")
def file_over_api(client: TestClient, writer: str) -> Callable[[str], str]:
    def file(ticker: str) -> str:
        number = new_number()
        filing = {"ticker": ticker, "accessionNumber": number, "formType": "8-K",
                  "filedAt": "2026-11-21T13:00:00Z", "title": f"8-K of {ticker}"}  # fmt: skip
        body = {"query": INGEST, "variables": {"input": filing}}
        answer = client.post("/graphql", json=body, headers={"authorization": f"Bearer {writer}"})
        assert "errors" not in answer.json(), answer.json()
        return number

    return file


def test_a_hit_is_the_same_answer_and_costs_1(client: TestClient) -> None:
    first = persisted(client, PAGE, ticker="AAPL")
    again = persisted(client, PAGE, ticker="AAPL")
    assert (hit(first), hit(again)) == (False, True)
    assert again["data"] == first["data"] and first["data"]["company"]["name"] == "Apple Inc."
    assert first["extensions"]["cost"]["requestedQueryCost"] > 1
    cost = again["extensions"]["cost"]
    assert (cost["requestedQueryCost"], cost["actualQueryCost"]) == (1, 1)


def test_answers_are_kept_per_variables_and_per_asker(
    client: TestClient, database_url: str
) -> None:
    persisted(client, PAGE, ticker="MSFT")
    assert hit(persisted(client, PAGE, ticker="MSFT"))
    assert not hit(persisted(client, PAGE, ticker="NVDA"))
    key = new_api_key(database_url, "pro", ("reports:read",))
    extensions = {"persistedQuery": {"version": 1, "sha256Hash": sha256(PAGE)}}
    body = {"extensions": extensions, "variables": {"ticker": "MSFT"}}
    as_pro = client.post("/graphql", json=body, headers={"authorization": f"Bearer {key}"})
    assert hit(as_pro.json()) is False  # another tier and scopes: its own entry


def test_a_filing_drops_the_answers_of_its_company_only(
    client: TestClient, file_over_api: Callable[[str], str]
) -> None:
    persisted(client, PAGE, ticker="AAPL")
    persisted(client, PAGE, ticker="JPM")
    number = file_over_api("JPM")
    assert hit(persisted(client, PAGE, ticker="AAPL"))
    fresh = persisted(client, PAGE, ticker="JPM")
    assert hit(fresh) is False
    numbers = [node["accessionNumber"] for node in fresh["data"]["company"]["filings"]["nodes"]]
    assert number in numbers


def test_a_list_of_all_filings_is_dropped_by_any_filing(
    client: TestClient, file_over_api: Callable[[str], str]
) -> None:
    persisted(client, LATEST)
    assert hit(persisted(client, LATEST))
    number = file_over_api("NVDA")
    fresh = persisted(client, LATEST)
    assert hit(fresh) is False
    assert fresh["data"]["filings"]["nodes"][0]["accessionNumber"] == number


def test_a_filing_ingested_elsewhere_drops_answers_too(
    client: TestClient, settings: Settings
) -> None:
    """`corpgraph ingest` (or another server) writes to the database: this server hears of
    the filing from its alert broker, and drops the company's answers."""
    persisted(client, PAGE, ticker="MSFT")
    assert hit(persisted(client, PAGE, ticker="MSFT"))
    filed_at = datetime.now(UTC) + timedelta(days=1)
    filing = FilingInput("MSFT", new_number(), "8-K", filed_at, title="8-K of MSFT")

    async def ingest_directly() -> None:
        engine = create_engine(settings.database_url.get_secret_value())  # type: ignore[union-attr]
        try:
            await ingest(engine, filing, None)
        finally:
            await engine.dispose()

    asyncio.run(ingest_directly())
    deadline = time.monotonic() + 10
    while hit(fresh := persisted(client, PAGE, ticker="MSFT")) and time.monotonic() < deadline:
        time.sleep(0.05)
    numbers = [node["accessionNumber"] for node in fresh["data"]["company"]["filings"]["nodes"]]
    assert filing.accession_number in numbers


HELD = timedelta(minutes=1)  # longer than any test: only a drop can end it


def mget_calls(settings: Settings) -> int:
    """How many MGETs the cache role's Redis has served (a lookup that reaches Redis)."""
    redis = Redis.from_url(settings.cache_redis_url or settings.redis_url or "")
    try:
        stats: dict[str, Any] = redis.info("commandstats")
        return int(stats.get("cmdstat_mget", {}).get("calls", 0))
    finally:
        redis.close()


def lookups(cache: str, result: str) -> float:
    labels = {"cache": cache, "result": result}
    return REGISTRY.get_sample_value("corpgraph_cache_lookups_total", labels) or 0.0


def test_a_popular_answer_skips_redis(settings: Settings) -> None:
    """Each process holds the answers it reads or makes for `response_cache_local`: hits on it
    meanwhile make no round trip to Redis, are the same answer, and are counted apart from
    Redis's hits (`response_held`)."""
    holding = settings.replace(response_cache_local=HELD)
    with TestClient(create_app(holding)) as client:
        first = persisted(client, PAGE, ticker="GS")
        before = mget_calls(settings)
        counted = [lookups(cache, "hit") for cache in ("response_held", "response")]
        hits = [persisted(client, PAGE, ticker="GS") for _ in range(5)]
        assert mget_calls(settings) == before
        held_hits, redis_hits = (lookups(cache, "hit") for cache in ("response_held", "response"))
    assert [hit(answer) for answer in hits] == [True] * 5
    assert all(answer["data"] == first["data"] for answer in hits)
    assert (held_hits - counted[0], redis_hits - counted[1]) == (5, 0)


def test_a_filing_drops_held_answers_in_every_process(settings: Settings, writer: str) -> None:
    """Two servers hold an answer; a filing ingested through one is heard by the other's
    alert broker, which drops what it holds with what Redis keeps."""
    holding = settings.replace(response_cache_local=HELD)
    with (
        TestClient(create_app(holding)) as one,
        TestClient(create_app(holding)) as other,
    ):
        persisted(other, PAGE, ticker="BAC")
        assert hit(persisted(other, PAGE, ticker="BAC"))
        number = new_number()
        filing = {"ticker": "BAC", "accessionNumber": number, "formType": "8-K",
                  "filedAt": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
                  "title": "8-K of BAC"}  # fmt: skip
        body = {"query": INGEST, "variables": {"input": filing}}
        ingested = one.post("/graphql", json=body, headers={"authorization": f"Bearer {writer}"})
        assert "errors" not in ingested.json(), ingested.json()
        deadline = time.monotonic() + 10
        while hit(fresh := persisted(other, PAGE, ticker="BAC")) and time.monotonic() < deadline:
            time.sleep(0.05)
    numbers = [node["accessionNumber"] for node in fresh["data"]["company"]["filings"]["nodes"]]
    assert number in numbers


def app_redis(client: TestClient) -> AsyncRedis:
    """The running app's cache-role Redis, on which tests make caches of their own."""
    cache = services_of(client.app).response_cache
    assert cache is not None
    return cache.redis


class DropWhileReading:
    """The cache's read of Redis, with a drop landing while it is under way."""

    def __init__(self, cache: ResponseCache) -> None:
        self.cache, self.read = cache, cache._read

    async def __call__(self, keys: list[str]) -> Any:
        found = await self.read(keys)
        await self.cache.drop([1])
        return found


def test_an_answer_read_before_a_drop_is_not_held(client: TestClient) -> None:
    redis = app_redis(client)
    cache = ResponseCache(redis, timedelta(seconds=60), local=HELD)
    key = cache.key(sha256("{ held }"), None, None, Viewer())

    async def race() -> tuple[Any, Any]:
        lookup = await cache.lookup(key)
        assert lookup is not None
        assert await cache.keep(lookup, b"{}", {"1"})  # held, and in Redis
        await cache.drop([1])
        lookup = await cache.lookup(key)
        assert lookup is not None
        assert await cache.keep(lookup, b"{}", {"1"})
        cache.forget_held()  # read from Redis next
        reading, cache._read = cache._read, DropWhileReading(cache)  # type: ignore[assignment]
        read_during = await cache.lookup(key)
        cache._read = reading
        after = await cache.lookup(key)
        assert read_during is not None and after is not None
        return read_during.answer, after.answer

    assert client.portal is not None
    assert client.portal.call(race) == (b"{}", None)  # answered once, as read; not held


def test_an_answer_is_never_held_longer_than_redis_keeps_it(client: TestClient) -> None:
    redis = app_redis(client)
    cache = ResponseCache(redis, timedelta(seconds=1), local=HELD)
    key = cache.key(sha256("{ brief }"), None, None, Viewer())

    async def kept_then_gone() -> tuple[Any, Any]:
        lookup = await cache.lookup(key)
        assert lookup is not None
        assert await cache.keep(lookup, b"{}", {"1"})
        soon = await cache.lookup(key)
        await asyncio.sleep(2.1)  # past the TTL of 1 s
        later = await cache.lookup(key)
        assert soon is not None and later is not None
        return soon.answer, later.answer

    assert client.portal is not None
    assert client.portal.call(kept_then_gone) == (b"{}", None)


def test_a_drop_redis_missed_is_sent_before_any_hit(tmp_path: Path) -> None:
    """Redis down while a filing is ingested, then back from its own file with the answers
    it had: the drop it missed reaches it before this process answers from it again, and an
    answer looked up before the drop is not kept."""
    port = free_port()
    server = redis_server(port, tmp_path, durable=True)
    address = f"redis://127.0.0.1:{port}"
    redis = AsyncRedis.from_url(address, socket_timeout=1, socket_connect_timeout=1)
    cache = ResponseCache(redis, timedelta(seconds=60), local=HELD)
    key = cache.key(sha256("{ missed }"), None, None, Viewer())

    async def missed_then_back() -> tuple[Any, ...]:
        lookup = await cache.lookup(key)
        assert lookup is not None and await cache.keep(lookup, b"{}", {"7"})
        before = await cache.lookup(key)  # looked up before the drop
        server.kill()
        server.wait()
        dropped = await cache.drop([7])  # Redis is away: nothing dropped there
        away = await cache.lookup(key)
        restarted = redis_server(port, tmp_path, durable=True)
        try:
            still_there = Redis.from_url(address).get(key)  # the answer came back with Redis
            await asyncio.sleep(RETRY_SECONDS)  # Redis failed: left alone meanwhile
            after = await cache.lookup(key)
            assert before is not None and after is not None
            kept = await cache.keep(before, b'{"stale": true}', {"7"})
            return dropped, away, still_there, after.answer, kept
        finally:
            await redis.aclose()
            restarted.terminate()
            restarted.wait()

    assert asyncio.run(missed_then_back()) == (0, None, b"{}", None, False)


def test_held_answers_take_the_memory_they_are_counted_for(client: TestClient) -> None:
    """The 16 MB bound counts each answer's length: what it holds must not be several times
    that (orjson's encoded answers, as the pipeline keeps them, each keep 4 KB allocated)."""
    redis = app_redis(client)
    cache = ResponseCache(redis, timedelta(seconds=60), local=HELD)
    answers = 300

    async def hold_many() -> int:
        keys = [cache.key(sha256("{ many }"), None, {"n": n}, Viewer()) for n in range(answers)]
        lookups = [await cache.lookup(key) for key in keys]
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            encoded = [orjson.dumps({"company": {"name": f"Company {n}"}}) for n in range(answers)]
            for lookup, answer in zip(lookups, encoded, strict=True):
                assert lookup is not None and await cache.keep(lookup, answer, {"1"})
            del encoded, answer, lookups, lookup
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        return sum(stat.size_diff for stat in after.compare_to(before, "filename"))

    assert client.portal is not None
    held = client.portal.call(hold_many)
    assert held < 2 * cache.held_bytes, (held, cache.held_bytes)


def test_an_answer_read_from_redis_is_held_no_longer_than_it_has_left(
    client: TestClient, settings: Settings
) -> None:
    """Another process made it a TTL ago, less a second: this one holds it for that second,
    not for `local` (the answer, and the links it hands out, would outlive their TTL)."""
    redis = app_redis(client)
    maker = ResponseCache(redis, timedelta(seconds=60))
    reader = ResponseCache(redis, timedelta(seconds=60), local=HELD)
    key = maker.key(sha256("{ nearly gone }"), None, None, Viewer())

    async def read_near_its_end() -> tuple[Any, Any]:
        lookup = await maker.lookup(key)
        assert lookup is not None and await maker.keep(lookup, b"{}", {"1"})
        await redis.pexpire(key, 1000)  # as if made 59 s ago
        soon = await reader.lookup(key)
        await asyncio.sleep(1.5)
        later = await reader.lookup(key)
        assert soon is not None and later is not None
        return soon.answer, later.answer

    assert client.portal is not None
    assert client.portal.call(read_near_its_end) == (b"{}", None)


def test_a_hung_redis_costs_one_timeout_a_second_not_one_a_request(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis stopped (SIGSTOP: nothing refuses the connection, nothing answers): the first
    lookup waits out the client's timeout and the caches on that Redis are away for
    RETRY_SECONDS; the lookups meanwhile do not wait. Redis back, the cache answers again."""
    port = free_port()
    server = redis_server(port, tmp_path)
    redis = AsyncRedis.from_url(f"redis://127.0.0.1:{port}", socket_timeout=0.5)
    cache = ResponseCache(redis, timedelta(seconds=60))
    entities = EntityCache(redis, timedelta(seconds=60), cache.breaker)
    key = cache.key(sha256("{ hung }"), None, None, Viewer())

    async def through_a_stop() -> tuple[list[Any], Any]:
        lookup = await cache.lookup(key)
        assert lookup is not None and await cache.keep(lookup, b"{}", {"1"})
        server.send_signal(signal.SIGSTOP)
        try:
            stopped: list[Any] = [await cache.lookup(key) for _ in range(10)]
            stopped.append(await entities.get_many("company", ["1"]))
        finally:
            server.send_signal(signal.SIGCONT)
        await asyncio.sleep(RETRY_SECONDS)
        back = await cache.lookup(key)
        await redis.aclose()
        return stopped, back and back.answer

    try:
        with caplog.at_level(logging.WARNING):
            stopped, back = asyncio.run(through_a_stop())
    finally:
        server.terminate()
        server.wait()
    assert stopped == [None] * 10 + [[None]] and back == b"{}"
    warned = [record.message.split(":")[0] for record in caplog.records]
    assert warned == ["response cache read failed"]


def test_what_is_never_kept(client: TestClient) -> None:
    for _ in range(2):
        with_budget = persisted(client, BUDGET)
        assert "responseCache" not in with_budget["extensions"]  # the asker's own, right now
        broken = persisted(client, BROKEN)
        assert broken["errors"] and hit(broken) is False
    plain = client.post("/graphql", json={"query": PAGE, "variables": {"ticker": "AAPL"}})
    assert "responseCache" not in plain.json()["extensions"]  # not persisted


def test_an_answer_read_during_an_ingestion_is_not_kept(client: TestClient) -> None:
    cache = services_of(client.app).response_cache
    assert cache is not None
    key = cache.key(sha256("{ x }"), None, None, Viewer())

    async def race() -> tuple[bool, bool]:
        lookup = await cache.lookup(key)
        assert lookup is not None and lookup.answer is None
        await cache.drop([1])  # a filing is ingested while the request runs
        kept_stale = await cache.keep(lookup, b"{}", {"1"})
        fresh = await cache.lookup(key)
        assert fresh is not None
        return kept_stale, await cache.keep(fresh, b"{}", {"1"})

    assert client.portal is not None
    assert client.portal.call(race) == (False, True)


def test_a_full_index_is_dropped_with_its_answers(client: TestClient) -> None:
    """An index lists at most `max_listed` answers: past that, they are all dropped (misses
    later), so members can never pile up behind answers that expired."""
    redis = app_redis(client)
    cache = ResponseCache(redis, timedelta(seconds=60), max_listed=2)
    keys = [cache.key(sha256(f"{{ n{n} }}"), None, None, Viewer()) for n in range(3)]

    async def fill() -> list[bool]:
        for key in keys:
            lookup = await cache.lookup(key)
            assert lookup is not None
            assert await cache.keep(lookup, b"{}", {"999"})
        found = [await cache.lookup(key) for key in keys]
        return [entry is not None and entry.answer is not None for entry in found]

    assert client.portal is not None
    assert client.portal.call(fill) == [False, False, True]


def test_without_redis_requests_run_uncached(settings: Settings) -> None:
    away = settings.replace(redis_url="redis://127.0.0.1:9/0")
    with TestClient(create_app(away)) as client:
        for _ in range(2):
            answer = persisted(client, PAGE, ticker="AAPL")
            assert answer["data"]["company"]["name"] == "Apple Inc."
            assert hit(answer) is None  # not consulted


# HTTP caching of GET answers


def get(client: TestClient, query: str, **headers: str) -> Any:
    extensions = f'{{"persistedQuery":{{"version":1,"sha256Hash":"{sha256(query)}"}}}}'
    persisted(client, query)  # registered
    return client.get("/graphql", params={"extensions": extensions}, headers=headers)


def test_a_get_answer_has_an_etag_and_304_when_unchanged(client: TestClient) -> None:
    first = get(client, LATEST)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "public, max-age=60"
    assert "Authorization" in first.headers["vary"]
    etag = first.headers["etag"]
    again = get(client, LATEST, **{"if-none-match": etag})
    assert (again.status_code, again.content) == (304, b"")
    assert again.headers["etag"] == etag
    other = get(client, LATEST, **{"if-none-match": 'W/"0000", "1111"'})
    assert other.status_code == 200 and other.json()["data"] == first.json()["data"]


def test_a_get_with_a_key_is_private(client: TestClient, database_url: str) -> None:
    key = new_api_key(database_url, "free")
    answer = get(client, LATEST, authorization=f"Bearer {key}")
    assert answer.headers["cache-control"] == "private, max-age=60"


def test_gets_that_must_not_be_kept(client: TestClient) -> None:
    assert get(client, BUDGET).headers["cache-control"] == "no-store"
    broken = get(client, BROKEN)
    assert broken.headers["cache-control"] == "no-store" and "etag" not in broken.headers


def test_cache_lifetimes_stay_below_document_links(settings: Settings) -> None:
    with pytest.raises(ValueError, match="document_url_ttl"):
        settings.replace(document_url_ttl=timedelta(seconds=30))
    with pytest.raises(ValueError, match="document_url_ttl"):  # as old as both, at worst
        settings.replace(document_url_ttl=timedelta(seconds=100))
    settings.replace(document_url_ttl=timedelta(seconds=121))
