"""Relay connections: edges, nodes, page info and a lazily counted total."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Generic, TypeVar

import strawberry

from loaders.pagination import Page
from resolvers.pagination import MAX_PAGE_SIZE
from schema.costs import Cost

T = TypeVar("T")
R = TypeVar("R")

# Relay arguments shared by every connection field (`first` says its own default)
After = Annotated[str | None, strawberry.argument(description="Return items after this cursor.")]
Last = Annotated[
    int | None, strawberry.argument(description=f"Page size backward (1-{MAX_PAGE_SIZE}).")
]
Before = Annotated[str | None, strawberry.argument(description="Return items before this cursor.")]


# Shareable: every Relay-style subgraph defines the same PageInfo.
@strawberry.federation.type(shareable=True, description="Where a page sits in its connection.")
class PageInfo:
    has_next_page: bool = strawberry.field(description="More items follow this page.")
    has_previous_page: bool = strawberry.field(description="More items precede this page.")
    start_cursor: str | None = strawberry.field(description="Cursor of the first item, if any.")
    end_cursor: str | None = strawberry.field(description="Cursor of the last item, if any.")

    @classmethod
    def of(cls, page: Page[R], cursors: list[str]) -> "PageInfo":
        # a cursor given on the side we come from means items exist on that side
        forward = page.window.forward
        before_side = page.window.cursor is not None
        return cls(
            has_next_page=page.more if forward else before_side,
            has_previous_page=before_side if forward else page.more,
            start_cursor=cursors[0] if cursors else None,
            end_cursor=cursors[-1] if cursors else None,
        )


@strawberry.type(description="An item of a connection with its cursor.")
class Edge(Generic[T]):
    cursor: str = strawberry.field(description="Pass to `after` or `before` to page from here.")
    node: T = strawberry.field(description="The item.")


@strawberry.type(description="A page of items, paginated with cursors (Relay connections).")
class Connection(Generic[T]):
    nodes: list[T] = strawberry.field(description="Items of this page, without cursors.")
    page: strawberry.Private[Page[Any]]
    cursor_of: strawberry.Private[Callable[[Any], str]]
    count: strawberry.Private[Callable[[], Awaitable[int]]]

    # edges and pageInfo are built on demand: a cursor costs an encoding, and most clients
    # select `nodes` alone

    @strawberry.field(description="How to page further.")
    def page_info(self) -> PageInfo:
        rows = self.page.rows
        return PageInfo.of(
            self.page, [self.cursor_of(rows[0]), self.cursor_of(rows[-1])] if rows else []
        )

    @strawberry.field(description="Items with their cursors.")
    def edges(self) -> list[Edge[T]]:
        cursors = [self.cursor_of(row) for row in self.page.rows]
        return [Edge(cursor=c, node=n) for c, n in zip(cursors, self.nodes, strict=True)]

    @strawberry.field(
        description="Number of items in the whole connection, over all pages.",
        directives=[Cost(weight=5)],  # a COUNT over the whole filter
    )
    async def total_count(self) -> int:
        return await self.count()

    @classmethod
    def build(
        cls,
        page: Page[R],
        count: Callable[[], Awaitable[int]],
        node: Callable[[R], T],
        cursor: Callable[[R], str],
    ) -> "Connection[T]":
        return cls(nodes=[node(row) for row in page.rows], page=page, cursor_of=cursor, count=count)
