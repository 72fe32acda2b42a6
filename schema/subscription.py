"""The root Subscription type: alerts for new filings (served over WebSocket)."""

from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry

from resolvers import subscriptions
from resolvers.context import Info
from schema.filings import Filing


@strawberry.type(description="Live alerts, over WebSocket (graphql-transport-ws or graphql-ws).")
class Subscription:
    @strawberry.subscription(
        description="Each new filing that matches, in ingestion order. With `since` (an "
        "`ingestCursor`), first every matching filing ingested after it, then live ones; none "
        "twice."
    )
    async def filing_added(
        self,
        info: Info,
        tickers: Annotated[
            list[str] | None, strawberry.argument(description="Only these companies.")
        ] = None,
        form_types: Annotated[
            list[str] | None, strawberry.argument(description='Only these, e.g. `["8-K"]`.')
        ] = None,
        since: Annotated[
            str | None, strawberry.argument(description="Resume after this `ingestCursor`.")
        ] = None,
    ) -> AsyncGenerator[Filing, None]:
        async for row in subscriptions.filing_added(info, tickers, form_types, since):
            yield Filing.from_row(row)
