"""Subscriptions through the pipeline, whatever carries them (WebSocket, Server-Sent Events).

A subscription is admitted by the same chain as an HTTP operation (`Pipeline.prepare_charged`:
size and token limits before parsing, the document caches, shape limits, introspection and
suggestion rules; then the operation, its cost against the tier's ceiling and the budget).
Its events are then charged one by one, each its actual cost (a replay included), from the
client's budget; the requested cost taken at admission pays for the first ones and what is
left of it is given back when the subscription ends. An event the budget cannot pay for ends
the subscription with RATE_LIMITED, so a replay is bounded by the budget. Unexpected errors
are masked, like everywhere else. Each client runs at most so many subscriptions at once in
this process (graph/client_slots.py).
"""

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import suppress
from inspect import isawaitable
from typing import Any

from graphql import ExecutionResult, GraphQLError, OperationType, subscribe

from graph.client_slots import ClientSlots
from graph.cost import Costing
from graph.errors import format_execution_error, request_error
from graph.execution import (
    Outcome,
    Pipeline,
    Prepared,
    bucket_of,
    name_of,
    refusal_outcome,
    refused,
    requested_cost,
    shaped,
)
from resolvers.context import Context

ONLY_SUBSCRIPTIONS = (
    "Only subscriptions run over WebSocket and as Server-Sent Events: send queries and "
    "mutations over HTTP."
)


async def subscription(
    pipeline: Pipeline,
    slots: ClientSlots,
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    context: Context,
) -> "Outcome | Subscription":
    """The events (response payloads) of one subscription, or why it may not run."""
    prepared = await pipeline.prepare_charged(query, context.viewer)
    if isinstance(prepared, Outcome):
        return prepared
    operation = pipeline.operation_of(prepared, operation_name, variables)
    if isinstance(operation, Outcome):
        return operation
    if operation.operation != OperationType.SUBSCRIPTION:
        return refused("BAD_REQUEST", ONLY_SUBSCRIPTIONS)
    client = bucket_of(context.viewer)
    if not slots.take(client):
        return Outcome({"errors": [slots.refusal()]}, 429)
    meter: Meter | None = None
    try:
        if pipeline.cost_control is not None:
            admitted = await admitted_meter(pipeline, prepared, operation, variables, context)
            if isinstance(admitted, Outcome):
                slots.give_back(client)
                return admitted
            meter = admitted
        assert prepared.document is not None
        name = name_of(operation)
        results = subscribe(pipeline.schema, prepared.document, None, context, variables, name)
        if isawaitable(results):
            results = await results
    except BaseException:
        await Subscription.ended(slots, client, meter)
        raise
    if isinstance(results, ExecutionResult):  # e.g. variables that do not fit: nothing ran
        await Subscription.ended(slots, client, meter)
        return shaped(results)
    return Subscription(events(results, meter), slots, client, meter)


async def admitted_meter(
    pipeline: Pipeline,
    prepared: Prepared,
    operation: Any,
    variables: dict[str, Any] | None,
    context: Context,
) -> "Meter | Outcome":
    """The selection's requested cost, taken from the budget (a deposit for the first events),
    or why not (over the tier's ceiling, the budget short, a list size out of range)."""
    assert pipeline.cost_control is not None
    costing = pipeline.costing(pipeline.cost_control.model, prepared, operation, variables)
    requested = requested_cost(costing)
    if isinstance(requested, Outcome):
        return requested
    throttle, refusal = await pipeline.admit(context.viewer, requested)
    if refusal is not None:
        return refusal_outcome(refusal, throttle, requested)
    return Meter(pipeline, context, costing, requested)


class Meter:
    """Charges each event of one subscription its actual cost."""

    def __init__(self, pipeline: Pipeline, context: Context, costing: Costing, deposit: int):
        self.pipeline, self.context, self.costing = pipeline, context, costing
        self.deposit = deposit

    async def charge(self, data: dict[str, Any] | None) -> dict[str, Any] | None:
        """Takes the event's cost (from the deposit first); the error that ends the
        subscription when the budget cannot pay for it."""
        cost = self.costing.actual(data)
        from_deposit = min(cost, self.deposit)
        self.deposit -= from_deposit
        owed = cost - from_deposit
        if owed > 0:
            throttle, refusal = await self.pipeline.admit(self.context.viewer, owed)
            if refusal is not None:
                wait = throttle.retry_after
                message = (
                    f"The budget cannot pay for the next event ({cost} points): the "
                    f"subscription ends. Resume with `since` in {wait} s."
                )
                return request_error(message, refusal.code, retryAfter=wait, cost=cost)
        return None

    async def close(self) -> None:
        """Gives back what is left of the deposit."""
        deposit, self.deposit = self.deposit, 0
        if deposit > 0:
            assert self.pipeline.cost_control is not None
            viewer = self.context.viewer
            tier = self.pipeline.settings.tiers[viewer.tier]
            await self.pipeline.cost_control.limiter.refund(bucket_of(viewer), tier, deposit)


async def events(
    results: AsyncIterator[ExecutionResult], meter: Meter | None
) -> AsyncGenerator[dict[str, Any], None]:
    """Each result as a payload, errors coded and masked; an error raised by the stream
    itself (a bad argument, a limit) is the last event."""
    try:
        async for result in results:
            payload = shaped(result).payload
            if meter is not None and (ended := await meter.charge(payload.get("data"))):
                yield {"errors": [ended]}
                return
            yield payload
    except GraphQLError as error:
        yield {"errors": [format_execution_error(error)]}
    except Exception as error:
        masked = GraphQLError(str(error), original_error=error)
        yield {"errors": [format_execution_error(masked)]}
    finally:
        if hasattr(results, "aclose"):
            with suppress(Exception):
                await results.aclose()


class Subscription:
    """The events of a running subscription: its slot and what is left of its deposit are
    given back when it ends, or is closed (even before its first event)."""

    def __init__(
        self,
        payloads: AsyncGenerator[dict[str, Any], None],
        slots: ClientSlots,
        client: str,
        meter: Meter | None,
    ) -> None:
        self.payloads, self.slots, self.client, self.meter = payloads, slots, client, meter
        self.done = False

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            return await anext(self.payloads)
        except StopAsyncIteration:
            await self._end()
            raise

    async def aclose(self) -> None:
        try:
            await self.payloads.aclose()
        finally:
            await self._end()

    async def _end(self) -> None:
        if not self.done:
            self.done = True
            await self.ended(self.slots, self.client, self.meter)

    @staticmethod
    async def ended(slots: ClientSlots, client: str, meter: "Meter | None") -> None:
        slots.give_back(client)
        if meter is not None:
            await meter.close()
