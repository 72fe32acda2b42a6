"""Subscriptions through the pipeline, whatever carries them (WebSocket, Server-Sent Events).

A subscription is admitted by the same chain as an HTTP operation (`Pipeline.prepare_operation`:
size and token limits before parsing, the document caches, shape limits, introspection and
suggestion rules; then the operation, its cost against the tier's ceiling and the budget).
Its events are then charged one by one, each its actual cost (a replay included), from the
client's budget; the requested cost taken at admission pays for the first ones and what is
left of it is given back when the subscription ends. An event the budget cannot pay for ends
the subscription with RATE_LIMITED, so a replay is bounded by the budget. Unexpected errors
are masked, like everywhere else. Each client runs at most so many subscriptions at once in
this process (graph/transports/client_slots.py). Each admission is traced and counted, and
each event and end counted, by transport (graph/observability/stream_telemetry.py).
"""

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import suppress
from inspect import isawaitable
from typing import Any

from graphql import ExecutionResult, GraphQLError, OperationType, subscribe

from graph.observability.stream_telemetry import CLOSED, COMPLETE, Admission, Transport
from graph.pipeline.cost import Costing, coerce_variables
from graph.pipeline.errors import format_execution_error, request_error
from graph.pipeline.pipeline import (
    Outcome,
    Pipeline,
    Prepared,
    Refused,
    bucket_of,
    name_of,
    refused,
    shaped,
    variables_refused,
)
from graph.transports.client_slots import ClientSlots
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
    transport: Transport,
) -> "Outcome | Subscription":
    """The events (response payloads) of one subscription, or why it may not run."""
    with transport.admission() as admission:
        admitted = await admit(
            pipeline, slots, query, variables, operation_name, context, admission
        )
        if isinstance(admitted, Outcome):
            admission.refused(admitted)
    return admitted


async def admit(
    pipeline: Pipeline,
    slots: ClientSlots,
    query: str,
    variables: dict[str, Any] | None,
    operation_name: str | None,
    context: Context,
    admission: Admission,
) -> "Outcome | Subscription":
    """The subscription, or why it may not run; `admission` notes its operation and cost."""
    ready = await pipeline.prepare_operation(query, operation_name, variables, context.viewer)
    if isinstance(ready, Outcome):
        return ready
    prepared, operation = ready
    admission.of(name_of(operation), operation.operation.value)
    if operation.operation != OperationType.SUBSCRIPTION:
        return refused("BAD_REQUEST", ONLY_SUBSCRIPTIONS)
    client = bucket_of(context.viewer)
    if not slots.take(client):
        return Outcome({"errors": [slots.refusal()]}, Refused.BUDGET)
    meter: Meter | None = None
    try:
        if pipeline.cost_control is not None:
            admitted = await admitted_meter(
                pipeline, prepared, operation, variables, context, admission.transport
            )
            if isinstance(admitted, Outcome):
                slots.give_back(client)
                return admitted
            meter = admitted
            admission.requested(meter.deposit)
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
    return Subscription(results, slots, client, meter, admission.transport)


async def admitted_meter(
    pipeline: Pipeline,
    prepared: Prepared,
    operation: Any,
    variables: dict[str, Any] | None,
    context: Context,
    transport: Transport,
) -> "Meter | Outcome":
    """The selection's requested cost, taken from the budget (a deposit for the first events),
    or why not (variables that do not fit, over the tier's ceiling, the budget short, a list
    size out of range)."""
    coerced = coerce_variables(pipeline.schema, operation, variables)
    if isinstance(coerced, list):
        return variables_refused(coerced)
    debited = await pipeline.debit_requested(prepared, operation, coerced, context.viewer)
    if isinstance(debited, Outcome):
        return debited
    return Meter(pipeline, context, debited.costing, debited.requested, transport)


class Meter:
    """Charges each event of one subscription its actual cost."""

    def __init__(
        self,
        pipeline: Pipeline,
        context: Context,
        costing: Costing,
        deposit: int,
        transport: Transport,
    ) -> None:
        self.pipeline, self.context, self.costing = pipeline, context, costing
        self.deposit, self.transport = deposit, transport

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
        self.transport.charged(cost)
        return None

    async def close(self) -> None:
        """Gives back what is left of the deposit."""
        deposit, self.deposit = self.deposit, 0
        if deposit > 0:
            assert self.pipeline.cost_control is not None
            viewer = self.context.viewer
            tier = self.pipeline.settings.tiers[viewer.tier]
            await self.pipeline.cost_control.limiter.refund(bucket_of(viewer), tier, deposit)


class Subscription:
    """The events of a running subscription, each result as a payload with its errors coded
    and masked: its slot and what is left of its deposit are given back when it ends, or is
    closed (even before its first event)."""

    def __init__(
        self,
        results: AsyncIterator[ExecutionResult],
        slots: ClientSlots,
        client: str,
        meter: Meter | None,
        transport: Transport,
    ) -> None:
        self.slots, self.client, self.meter, self.transport = slots, client, meter, transport
        self.payloads = self._payloads(results)
        self.reason = CLOSED  # until its source ends, or an error ends it
        self.done = False

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> dict[str, Any]:
        try:
            payload = await anext(self.payloads)
        except StopAsyncIteration:
            await self._end()
            raise
        self.transport.delivered(payload)
        return payload

    async def _payloads(
        self, results: AsyncIterator[ExecutionResult]
    ) -> AsyncGenerator[dict[str, Any], None]:
        """An error raised by the stream itself (a bad argument, a limit) is the last event."""
        try:
            async for result in results:
                payload = shaped(result).payload
                meter = self.meter
                if meter is not None and (ended := await meter.charge(payload.get("data"))):
                    yield self.last(ended)
                    return
                yield payload
            self.reason = COMPLETE
        except GraphQLError as error:
            yield self.last(format_execution_error(error))
        except Exception as error:
            yield self.last(format_execution_error(GraphQLError(str(error), original_error=error)))
        finally:
            if hasattr(results, "aclose"):
                with suppress(Exception):
                    await results.aclose()

    def last(self, error: dict[str, Any]) -> dict[str, Any]:
        """The payload of the error that ends the subscription: its code is why it ended."""
        self.reason = error["extensions"]["code"]
        return {"errors": [error]}

    async def aclose(self) -> None:
        try:
            await self.payloads.aclose()
        finally:
            await self._end()

    async def _end(self) -> None:
        if not self.done:
            self.done = True
            self.transport.ended(self.reason)
            await self.ended(self.slots, self.client, self.meter)

    @staticmethod
    async def ended(slots: ClientSlots, client: str, meter: "Meter | None") -> None:
        slots.give_back(client)
        if meter is not None:
            await meter.close()
