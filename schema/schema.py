"""The federation `Schema` object."""

from collections.abc import Callable, Sequence
from pathlib import Path

import strawberry
from graphql import GraphQLObjectType, graphql_sync
from strawberry.extensions import SchemaExtension
from strawberry.federation.schema import FederationAny
from strawberry.printer import print_schema
from strawberry.schema.config import StrawberryConfig

from schema.companies import Company
from schema.direct_resolvers import install_direct_resolvers
from schema.entities import resolve_entity
from schema.filings import Filing
from schema.mutation import Mutation
from schema.naming import MemoizedNameConverter
from schema.query import Query
from schema.scalars import SCALAR_OVERRIDES
from schema.subscription import Subscription

SDL_PATH = Path(__file__).parent / "schema.graphql"


class FederatedSchema(strawberry.federation.Schema):
    def entities_resolver(
        self, info: strawberry.Info, representations: list[FederationAny]
    ) -> list[FederationAny]:
        """Per representation: an error at its index, or its entity (see schema.entities)."""
        return [
            resolve_entity(info, index, representation)  # type: ignore[misc]
            for index, representation in enumerate(representations)
        ]


def build_schema(
    direct: bool = True, extensions: Sequence[Callable[[], SchemaExtension]] = ()
) -> strawberry.federation.Schema:
    """The schema; `direct=False` keeps Strawberry's resolver wrapper on every field (the
    conformance guard compares the two)."""
    schema = FederatedSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        types=[Company, Filing],
        scalar_overrides=SCALAR_OVERRIDES,  # type: ignore[arg-type]
        federation_version="2.11",
        config=StrawberryConfig(name_converter=MemoizedNameConverter()),
        extensions=extensions,  # Strawberry's own execution: WebSocket only
    )
    if direct:
        install_direct_resolvers(schema)
    printed = print_schema(schema)  # Strawberry's resolver printed it anew for each request
    service = schema._schema.type_map["_Service"]
    assert isinstance(service, GraphQLObjectType)
    service.fields["sdl"].resolve = lambda *_: printed
    return schema


def sdl(schema: strawberry.federation.Schema) -> str:
    """The subgraph SDL exactly as `_service { sdl }` serves it (over HTTP)."""
    result = graphql_sync(schema._schema, "{ _service { sdl } }")
    assert result.data is not None, result.errors
    return str(result.data["_service"]["sdl"]) + "\n"
