"""What the app builds at start and every endpoint shares, as one typed, frozen object; and
the one place a request's context is made from it."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.types import ASGIApp

from db.documents import DocumentStore
from db.embeddings import Embedder
from db.reader import Reader
from graph.observability.metrics import OperationNames
from graph.pipeline.persisted import PersistedDocuments
from graph.pipeline.pipeline import Pipeline
from graph.pipeline.ratelimit import RateLimiter
from graph.pipeline.response_cache import ResponseCache
from graph.settings import Settings
from graph.transports.broker import FilingBroker
from graph.transports.client_slots import ClientSlots
from graph.transports.connections import OpenConnections
from loaders.cache import CompanyMemory, EntityCache
from loaders.request import Loaders
from resolvers.context import Context, Viewer

if TYPE_CHECKING:
    from graph.transports.http import (
        InFlight,  # graph/transports/http.py reads the services: no import at run time
    )


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: AsyncEngine  # writes, health
    reader: Reader  # every loader, API keys
    embedder: Embedder  # search queries, ingested filings
    redis: Redis | None  # state: budgets, APQ documents
    cache_redis: Redis | None  # caches (the state Redis when no other is set)
    operation_names: OperationNames | None  # metrics' operation label; None: metrics off
    entity_cache: EntityCache | None
    company_memory: CompanyMemory | None
    documents: DocumentStore  # filing documents
    in_flight: "InFlight"
    persisted: PersistedDocuments
    limiter: RateLimiter
    response_cache: ResponseCache | None
    pipeline: Pipeline
    subscription_slots: ClientSlots
    connection_slots: ClientSlots
    broker: FilingBroker
    connections: OpenConnections  # WebSockets and SSE streams, hung up when stopping


def services_of(app: ASGIApp) -> Services:
    """The services of an app that `create_app` made (a Starlette) and its lifespan started."""
    assert isinstance(app, Starlette)
    services: Services = app.state.services
    return services


def started(app: Starlette) -> bool:
    return hasattr(app.state, "services")


def new_context(services: Services, viewer: Viewer, **extra: Any) -> Context:
    """A request's (or WebSocket connection's) context: fresh loaders, the app's stores."""
    loaders = Loaders(
        services.reader, services.entity_cache, services.embedder, services.company_memory
    )
    response_cache = services.response_cache
    return Context(
        loaders,
        viewer,
        writer=services.db,
        documents=services.documents,
        forget_answers=response_cache.drop if response_cache else None,
        **extra,
    )
