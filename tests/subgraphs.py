"""Two small subgraphs that share the supergraph with corpgraph in the federation tests.

- `watchlists` belongs to another team: it extends corpgraph's `Company @key(fields: "ticker")`
  with `watchlists`, returns Company references, has its own `Node` interface (implemented
  by `Watchlist`) and its own Relay `PageInfo`.
- `nodes` is the node router Federation leaves to us: `Query.node` must be resolved by one
  subgraph for every `Node` type, so it takes the field over from corpgraph
  (`@override(from: "corpgraph")`), reads the type name out of the global ID and returns a
  reference keyed by `id`; the owner of the type resolves the rest through `_entities`.
"""

import base64
import binascii
from dataclasses import dataclass, field

import strawberry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from strawberry.asgi import GraphQL
from strawberry.federation.schema_directives import Key
from strawberry.federation.types import FieldSet


def global_id(type_name: str, key: str) -> strawberry.ID:
    return strawberry.ID(base64.urlsafe_b64encode(f"{type_name}:{key}".encode()).decode())


def type_of(id: str) -> str | None:
    try:
        type_name, separator, _ = base64.urlsafe_b64decode(id).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return type_name if separator else None


@dataclass
class Store:
    """Watchlists by key: (name, tickers)."""

    lists: dict[str, tuple[str, list[str]]] = field(default_factory=dict)

    def watching(self, ticker: str) -> list[str]:
        return [key for key, (_, tickers) in self.lists.items() if ticker in tickers]


STORE = Store()


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.federation.type(keys=["ticker"])
class Company:
    ticker: str

    @strawberry.field
    def watchlists(self) -> list["Watchlist"]:
        return [Watchlist.of(key) for key in STORE.watching(self.ticker)]

    @strawberry.field
    def watcher_count(self) -> int:
        return len(STORE.watching(self.ticker))

    @classmethod
    def resolve_reference(cls, ticker: str) -> "Company":
        return cls(ticker=ticker)


@strawberry.federation.type(keys=["id"])
class Watchlist(Node):
    key: strawberry.Private[str]

    @classmethod
    def of(cls, key: str) -> "Watchlist":
        return cls(id=global_id("Watchlist", key), key=key)

    @strawberry.field
    def name(self) -> str:
        return STORE.lists[self.key][0]

    @strawberry.field
    def companies(self) -> list[Company]:
        return [Company(ticker=ticker) for ticker in STORE.lists[self.key][1]]

    @classmethod
    def resolve_reference(cls, id: strawberry.ID) -> "Watchlist | None":
        key = base64.urlsafe_b64decode(id).decode().partition(":")[2]
        return cls.of(key) if key in STORE.lists else None


@strawberry.federation.type(shareable=True)
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type
class WatchlistConnection:
    nodes: list[Watchlist]
    page_info: PageInfo
    total_count: int


@strawberry.type
class WatchlistsQuery:
    @strawberry.field
    def watchlists(self, first: int = 10) -> WatchlistConnection:
        keys = list(STORE.lists)
        page = [Watchlist.of(key) for key in keys[:first]]
        info = PageInfo(
            has_next_page=len(keys) > first,
            has_previous_page=False,
            start_cursor=page[0].key if page else None,
            end_cursor=page[-1].key if page else None,
        )
        return WatchlistConnection(nodes=page, page_info=info, total_count=len(keys))

    @strawberry.field
    def watchlist(self, id: strawberry.ID) -> Watchlist | None:
        return Watchlist.resolve_reference(id) if type_of(id) == "Watchlist" else None


# The node router's stubs: it knows every Node type by name, and nothing else about them.
ID_REFERENCE = Key(fields=FieldSet("id"), resolvable=False)


@strawberry.federation.type(name="Company", keys=[ID_REFERENCE])
class CompanyRef(Node):
    pass


@strawberry.federation.type(name="Filing", keys=[ID_REFERENCE])
class FilingRef(Node):
    pass


@strawberry.federation.type(name="Watchlist", keys=[ID_REFERENCE])
class WatchlistRef(Node):
    pass


REFERENCES: dict[str, type[Node]] = {"Company": CompanyRef, "Filing": FilingRef,
                                     "Watchlist": WatchlistRef}  # fmt: skip


@strawberry.type
class NodesQuery:
    @strawberry.federation.field(override="corpgraph")
    def node(self, id: strawberry.ID) -> Node | None:
        reference = REFERENCES.get(type_of(id) or "")
        return None if reference is None else reference(id=id)


def schema(query: type, types: list[type]) -> strawberry.federation.Schema:
    return strawberry.federation.Schema(query=query, types=types, federation_version="2.11")


WATCHLISTS = schema(WatchlistsQuery, [Watchlist, Company])
NODES = schema(NodesQuery, [CompanyRef, FilingRef, WatchlistRef])


def sdl(subgraph: strawberry.federation.Schema) -> str:
    result = subgraph.execute_sync("{ _service { sdl } }")
    assert result.data is not None, result.errors
    return str(result.data["_service"]["sdl"])


def app() -> Starlette:
    """Both subgraphs: /watchlists/graphql and /nodes/graphql (and /health)."""

    async def health(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/health", health),
            Mount("/watchlists", GraphQL(WATCHLISTS, graphql_ide=None)),
            Mount("/nodes", GraphQL(NODES, graphql_ide=None)),
        ]
    )
