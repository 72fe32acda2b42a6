"""The federation `Schema` object."""

from pathlib import Path

import strawberry
from graphql import GraphQLError
from strawberry.federation.schema import FederationAny
from strawberry.schema.config import StrawberryConfig

from schema.companies import Company
from schema.direct_resolvers import install_direct_resolvers
from schema.filings import Filing
from schema.naming import MemoizedNameConverter
from schema.query import Query
from schema.scalars import SCALAR_OVERRIDES

SDL_PATH = Path(__file__).parent / "schema.graphql"
ENTITY_TYPES = {"Company": Company, "Filing": Filing}


class FederatedSchema(strawberry.federation.Schema):
    def entities_resolver(
        self, info: strawberry.Info, representations: list[FederationAny]
    ) -> list[FederationAny]:
        """Refuse malformed representations with BAD_USER_INPUT instead of a masked error."""
        for index, representation in enumerate(representations):
            typename = (
                representation.get("__typename") if isinstance(representation, dict) else None
            )
            if typename not in ENTITY_TYPES:
                raise GraphQLError(
                    f"representations[{index}] needs `__typename` of "
                    f"{sorted(ENTITY_TYPES)}, received {str(typename)[:64]!r}.",
                    extensions={"code": "BAD_USER_INPUT"},
                )
        return super().entities_resolver(info, representations)


def build_schema(direct: bool = True) -> strawberry.federation.Schema:
    """The schema; `direct=False` keeps Strawberry's resolver wrapper on every field (the
    conformance guard compares the two)."""
    schema = FederatedSchema(
        query=Query,
        types=[Company, Filing],
        scalar_overrides=SCALAR_OVERRIDES,  # type: ignore[arg-type]
        federation_version="2.11",
        config=StrawberryConfig(name_converter=MemoizedNameConverter()),
    )
    if direct:
        install_direct_resolvers(schema)
    return schema


def sdl(schema: strawberry.federation.Schema) -> str:
    """The subgraph SDL exactly as `_service { sdl }` serves it."""
    result = schema.execute_sync("{ _service { sdl } }")
    assert result.data is not None, result.errors
    return str(result.data["_service"]["sdl"]) + "\n"
