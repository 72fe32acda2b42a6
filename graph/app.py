"""`create_app(settings)`: routes, middleware and the lifespan that owns every connection."""

import asyncio
import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from db.embeddings import check_embeddings, embedder_named
from db.engine import POOL_SIZE, create_engine
from db.reader import create_reader
from graph.execution.compiled import EXECUTORS
from graph.observability import health
from graph.observability.metrics import OperationNames, metrics_endpoint, operation_names_in
from graph.observability.telemetry import RequestSpans, start_tracing
from graph.pipeline.cost import CostModel, directives_in
from graph.pipeline.persisted import PersistedDocuments, load_manifests
from graph.pipeline.pipeline import CostControl, Pipeline
from graph.pipeline.ratelimit import RateLimiter
from graph.pipeline.response_cache import ResponseCache
from graph.redis_client import redis_client
from graph.services import Services, services_of, started
from graph.settings import Settings
from graph.transports.broker import FilingBroker
from graph.transports.client_slots import ClientSlots
from graph.transports.connections import RESTART_REASON, RESTARTING, OpenConnections
from graph.transports.documents import document, document_store
from graph.transports.graphiql import ASSETS_PATH, graphiql_assets
from graph.transports.http import GraphQLEndpoint, InFlight
from graph.transports.websocket import SubscriptionsOverWebSocket
from loaders.cache import Breaker, CompanyMemory, EntityCache
from loaders.filings import FilingRow
from schema.schema import build_schema, sdl


def tune_garbage_collector(threshold: int) -> None:
    """Move what start-up built out of the collector's sight, and collect less often."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(threshold, older, oldest)


def create_app(settings: Settings) -> Starlette:
    if settings.database_url is None:
        raise ValueError(
            "CORPGRAPH_DATABASE_URL is not set: run `corpgraph serve`, which starts embedded "
            "servers, or point the setting at PostgreSQL."
        )
    database_url = settings.database_url.get_secret_value()
    schema = build_schema()
    cost_model = CostModel(
        schema._schema,
        directives_in(sdl(schema)),
        settings.default_list_size,
        settings.mutation_cost,
        settings.introspection_cost,
        settings.fetch_cost,
    )

    manifest = load_manifests(settings.persisted_manifests)
    subscriptions = SubscriptionsOverWebSocket(schema, settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        embedder = await asyncio.to_thread(embedder_named, settings.embedder)  # a model loads
        db = create_engine(
            database_url,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
            statement_timeout=settings.statement_timeout,
            pgbouncer=settings.db_pgbouncer,
        )
        try:
            await check_embeddings(db, embedder)
        except BaseException:
            await db.dispose()  # not starting
            raise
        connections = settings.db_pool_size + settings.db_max_overflow  # per pool
        reader = await create_reader(
            database_url,
            size=connections,
            acquire_timeout=settings.db_pool_timeout,
            statement_timeout=settings.statement_timeout,
            pgbouncer=settings.db_pgbouncer,
        )
        redis = redis_client(settings.redis_url)
        cache_redis = redis_client(settings.cache_redis_url) if settings.cache_redis_url else redis
        cache_breaker = Breaker()  # the caches on the cache role's Redis
        response_cache = (
            ResponseCache(
                cache_redis,
                settings.response_cache_ttl,
                settings.settled_max_age,
                local=settings.response_cache_local,
                breaker=cache_breaker,
            )
            if cache_redis and settings.response_cache
            else None
        )
        state_breaker = Breaker()  # the budgets and persisted documents on the state role's Redis
        limiter = RateLimiter(redis, breaker=state_breaker)
        memory_ttl = settings.company_memory_ttl
        POOL_SIZE.labels("write").set(connections)
        POOL_SIZE.labels("read").set(connections)
        assert settings.listen_url is not None
        services = Services(
            settings=settings,
            db=db,
            reader=reader,
            embedder=embedder,
            redis=redis,
            cache_redis=cache_redis,
            operation_names=OperationNames(
                operation_names_in(manifest.values()), settings.metrics_operations
            )
            if settings.metrics
            else None,
            entity_cache=EntityCache(cache_redis, settings.entity_cache_ttl, cache_breaker)
            if cache_redis and settings.entity_cache
            else None,
            company_memory=CompanyMemory(memory_ttl) if memory_ttl else None,
            documents=document_store(settings),
            in_flight=InFlight(settings.max_in_flight),
            persisted=PersistedDocuments(
                settings.persisted_mode,
                manifest,
                redis,
                settings.apq_ttl,
                settings.apq_max_bytes,
                settings.apq_client_bytes,
                state_breaker,
            ),
            limiter=limiter,
            response_cache=response_cache,
            pipeline=Pipeline(
                schema._schema,
                settings,
                executor_class=EXECUTORS[settings.executor],
                cost_control=CostControl(cost_model, limiter) if settings.cost_control else None,
                response_cache=response_cache,
            ),
            subscription_slots=ClientSlots("subscriptions", settings.max_subscriptions_per_client),
            connection_slots=ClientSlots("connections", settings.max_connections_per_client),
            broker=FilingBroker(
                settings.listen_url,
                settings.subscriber_backlog,
                on_ingested=forget_answers_of(response_cache),
            ),
            connections=OpenConnections(),
        )
        app.state.services = subscriptions.started = services
        await services.broker.start()
        tune_garbage_collector(settings.gc_threshold)
        try:
            yield
        finally:
            await services.broker.stop()
            for client in {redis, cache_redis} - {None}:
                await client.aclose()  # type: ignore[union-attr]
            await reader.pool.close()
            await db.dispose()

    middleware = []
    if settings.cors_origins:
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=settings.cors_origins,
                allow_methods=["GET", "POST"],
                allow_headers=[
                    "authorization",
                    "content-type",
                    "x-api-key",
                    "apollo-require-preflight",
                    "x-apollo-operation-name",
                ],
                max_age=600,
            )
        )
    routes: list[BaseRoute] = [
        Route("/graphql", GraphQLEndpoint()),  # every method: the endpoint refuses with a code
        WebSocketRoute("/graphql", subscriptions),
        Route("/documents/{key:path}", document, methods=["GET"]),
        Route("/health/live", health.live, methods=["GET"]),
        Route("/health/ready", health.ready, methods=["GET"]),
    ]
    if settings.graphiql and not settings.graphiql_assets_url:
        routes.append(Mount(ASSETS_PATH, graphiql_assets()))
    if settings.metrics:
        routes.append(Route("/metrics", metrics_endpoint, methods=["GET"]))
    if settings.tracing:
        start_tracing()
        middleware.insert(0, Middleware(RequestSpans))
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


def forget_answers_of(
    cache: ResponseCache | None,
) -> Callable[[list[FilingRow]], Awaitable[object]] | None:
    """Each new filing, wherever it was ingested (the API, `corpgraph ingest`), drops the
    cached answers read from its company."""
    if cache is None:
        return None
    return lambda filings: cache.drop(filing.company_id for filing in filings)


async def close_subscriptions(app: Starlette) -> None:
    """Before the server stops: flush the alerts already committed, then close every
    subscription's connection with 1012 so that clients reconnect and resume."""
    if started(app):
        services = services_of(app)
        await services.broker.drain(services.settings.drain_timeout.total_seconds())
        await services.connections.hang_up(RESTARTING, RESTART_REASON)
