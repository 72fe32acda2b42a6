"""`Query.rateLimit`: the viewer's cost budget, as this request left it."""

from datetime import datetime

import strawberry
from graphql import GraphQLError

from resolvers.context import Info


@strawberry.type(description="Your cost budget (see `extensions.cost` on every response).")
class RateLimit:
    limit: int = strawberry.field(description="Points the budget holds when full.")
    cost: int = strawberry.field(description="What this request was charged before it ran.")
    remaining: int = strawberry.field(description="Points left after this request's charge.")
    used: int = strawberry.field(description="Points spent and not yet restored.")
    reset_at: datetime = strawberry.field(description="When the budget will be full again.")


def rate_limit(info: Info) -> RateLimit:
    budget = info.context.budget
    if budget is None:
        raise GraphQLError(
            "Cost control is off on this server.", extensions={"code": "BAD_REQUEST"}
        )
    return RateLimit(
        limit=budget.limit,
        cost=budget.cost,
        remaining=budget.remaining,
        used=budget.limit - budget.remaining,
        reset_at=budget.reset_at,
    )
