"""Parse, validate (both cached per document text), cost, and execute one GraphQL operation."""

import asyncio
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from inspect import isawaitable
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.execution.executor import Executor
from graphql.validation import NoSchemaIntrospectionCustomRule

from graph.compiled import CompiledExecutor
from graph.cost import Costing, CostModel, ListSizeError
from graph.errors import format_execution_error, format_request_errors, request_error
from graph.gateway import GATEWAY_ONLY, root_field_names
from graph.limits import limit_error, shape_limits
from graph.ratelimit import RateLimiter, Throttle
from graph.response_cache import UNCACHEABLE_FIELDS, ResponseCache
from graph.settings import Settings, Tier
from graph.text_inputs import NoNulInArguments, nul_in_variables
from resolvers.context import Budget, Context, Viewer

CACHED_DOCUMENT_CHARS = 64_000
CACHED_DOCUMENTS = 1000
CACHE_HIT_COST = 1
RETRY_AFTER_SECONDS = 1


@dataclass
class Outcome:
    """What to send back. A GraphQL request error (`by_accept`) gets `status` only under
    application/graphql-response+json and 200 under legacy application/json (GraphQL over
    HTTP); protocol refusals (bad envelope, 401, 405, 413, 415, ...) always get `status`."""

    payload: dict[str, Any]
    status: int = 200
    by_accept: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    # the answer of a query that reads no per-request state: HTTP caches may keep it
    shareable: bool = False
    operation_name: str | None = None  # of the operation that ran
    operation_type: str | None = None  # query, mutation
    cost: tuple[int, int] | None = None  # requested, actual; when costed


def refused(code: str, message: str, status: int = 400, **extensions: Any) -> Outcome:
    return Outcome({"errors": [request_error(message, code, **extensions)]}, status)


@dataclass(frozen=True)
class Prepared:
    document: DocumentNode | None
    errors: list[dict[str, Any]]
    # the costing of each operation (by name) that has no variables: valid for every request
    costings: dict[str | None, Costing] = field(default_factory=dict)


@dataclass(frozen=True)
class CostControl:
    model: CostModel
    limiter: RateLimiter


class Refusal:
    """Why cost control turns an operation away, before it runs."""

    def __init__(self, code: str, message: str, status: int, **extensions: Any) -> None:
        self.code, self.message, self.status, self.extensions = code, message, status, extensions


def bucket_of(viewer: Viewer) -> str:
    return f"key:{viewer.key_id}" if viewer.key_id is not None else f"ip:{viewer.client_ip}"


def cost_extension(requested: int, actual: int, throttle: Throttle) -> dict[str, Any]:
    return {
        "requestedQueryCost": requested,
        "actualQueryCost": actual,
        "throttleStatus": {
            "maximumAvailable": throttle.tier.capacity,
            "currentlyAvailable": max(0, math.floor(throttle.available)),
            "restoreRate": throttle.tier.restore_rate,
        },
    }


class Pipeline:
    """parse -> validate -> execute, with documents cached by their text."""

    def __init__(
        self,
        schema: GraphQLSchema,
        settings: Settings,
        executor_class: type[Executor[Any]] = CompiledExecutor,
        cost_control: CostControl | None = None,
        response_cache: ResponseCache | None = None,
    ) -> None:
        self.schema = schema
        self.cost_control = cost_control
        self.response_cache = response_cache
        self.executor_class = executor_class
        self.settings = settings
        self.rules = [
            *specified_rules,
            shape_limits(settings.max_depth, settings.max_aliases, settings.max_root_fields),
            NoNulInArguments,
        ]
        if not settings.introspection_enabled:
            self.rules.append(NoSchemaIntrospectionCustomRule)
        self._prepared: OrderedDict[str, Prepared] = OrderedDict()
        self.gateway_only = settings.gateway_secret is not None

    def prepare(self, query: str) -> Prepared:
        prepared = self._prepared.get(query)
        if prepared is None:
            prepared = self._parse_and_validate(query)
            if len(query) <= CACHED_DOCUMENT_CHARS:
                self._prepared[query] = prepared
                if len(self._prepared) > CACHED_DOCUMENTS:
                    self._prepared.popitem(last=False)
        else:
            self._prepared.move_to_end(query)
        return prepared

    def _parse_and_validate(self, query: str) -> Prepared:
        limit = self.settings.max_tokens
        try:
            document = parse(query, no_location=False, max_tokens=limit)
        except GraphQLError as error:
            if "Document contains more than" in error.message:
                return Prepared(None, [dict(limit_error("tokens", limit, limit + 1).formatted)])
            return Prepared(None, format_request_errors([error], "GRAPHQL_PARSE_FAILED"))
        errors = validate(
            self.schema, document, self.rules, hide_suggestions=self.settings.production
        )
        return Prepared(document, format_request_errors(errors, "GRAPHQL_VALIDATION_FAILED"))

    async def run(
        self,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Context,
        *,
        mutations_allowed: bool,
        document_hash: str | None = None,
    ) -> Outcome:
        """`document_hash` names a persisted document: its query's answers may be cached."""
        prepared = self.prepare(query)
        operation = self.operation_of(prepared, operation_name, variables)
        if isinstance(operation, Outcome):
            return operation
        assert prepared.document is not None
        refusal = self.refusal(
            prepared.document, operation, mutations_allowed, context.viewer.via_gateway
        )
        shareable = self.shareable(prepared.document, operation)
        if refusal is not None:
            outcome = refusal
        elif shareable and document_hash is not None and self.response_cache is not None:
            key = self.response_cache.key(
                document_hash, name_of(operation), variables, context.viewer
            )
            outcome = await self._through_cache(key, prepared, operation, variables, context)
        else:
            outcome = await self._answer(prepared, operation, variables, context)
        outcome.shareable = shareable and refusal is None
        outcome.operation_name = name_of(operation)
        outcome.operation_type = operation.operation.value
        return outcome

    async def _answer(
        self,
        prepared: Prepared,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
        context: Context,
    ) -> Outcome:
        assert prepared.document is not None
        name = name_of(operation)
        if self.cost_control is None:
            return await self._execute(prepared.document, variables, name, context)
        return await self._costed(prepared, operation, variables, name, context)

    @staticmethod
    def shareable(document: DocumentNode, operation: OperationDefinitionNode) -> bool:
        return operation.operation == OperationType.QUERY and not (
            UNCACHEABLE_FIELDS & root_field_names(document, operation)
        )

    async def _through_cache(
        self,
        key: str,
        prepared: Prepared,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
        context: Context,
    ) -> Outcome:
        """A cached answer, charged a cost of 1; or the answer, kept when it has no errors."""
        assert self.response_cache is not None
        lookup = await self.response_cache.lookup(key)
        if lookup is None:  # Redis is away
            return await self._answer(prepared, operation, variables, context)
        if lookup.answer is not None:
            return await self._cache_hit(lookup.answer, context.viewer)
        companies = context.loaders.track_companies()
        outcome = await self._answer(prepared, operation, variables, context)
        data = outcome.payload.get("data")
        if outcome.status == 200 and data is not None and "errors" not in outcome.payload:
            answer = orjson.dumps(data)
            outcome.payload["data"] = orjson.Fragment(answer)  # encoded once
            await self.response_cache.keep(lookup, answer, companies)
        outcome.payload.setdefault("extensions", {})["responseCache"] = {"hit": False}
        return outcome

    async def _cache_hit(self, answer: bytes | str, viewer: Viewer) -> Outcome:
        outcome = Outcome({"data": orjson.Fragment(answer)})
        if self.cost_control is not None:
            throttle, refusal = await self.admit(viewer, CACHE_HIT_COST)
            if refusal is not None:
                return refusal_outcome(refusal, throttle, CACHE_HIT_COST)
            with_cost(outcome, CACHE_HIT_COST, CACHE_HIT_COST, throttle)
        outcome.payload.setdefault("extensions", {})["responseCache"] = {"hit": True}
        return outcome

    def operation_of(
        self, prepared: Prepared, operation_name: str | None, variables: dict[str, Any] | None
    ) -> OperationDefinitionNode | Outcome:
        """The operation to run, or why there is none."""
        if prepared.document is None or prepared.errors:
            return Outcome({"errors": prepared.errors}, 400, by_accept=True)
        if (error := nul_in_variables(variables)) is not None:
            return Outcome({"errors": [error.formatted]}, 400, by_accept=True)
        operation = get_operation_ast(prepared.document, operation_name)
        if operation is not None:
            return operation
        if operation_name:
            return refused("BAD_REQUEST", f"Unknown operation named {operation_name!r}.")
        return refused("BAD_REQUEST", "Name the operation to run: the document has several.")

    async def admit_stream(
        self,
        query: str,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        viewer: Viewer,
    ) -> DocumentNode | Outcome:
        """A subscription to stream (SSE), charged its requested cost once; or why not."""
        prepared = self.prepare(query)
        operation = self.operation_of(prepared, operation_name, variables)
        if isinstance(operation, Outcome):
            return operation
        assert prepared.document is not None
        if operation.operation != OperationType.SUBSCRIPTION:
            return refused(
                "BAD_REQUEST",
                "Only subscriptions stream as Server-Sent Events: send queries and mutations "
                "without `Accept: text/event-stream`.",
            )
        if self.cost_control is not None:
            costing = self.costing(self.cost_control.model, prepared, operation, variables)
            requested = requested_cost(costing)
            if isinstance(requested, Outcome):
                return requested
            throttle, refusal = await self.admit(viewer, requested)
            if refusal is not None:
                return refusal_outcome(refusal, throttle, requested)
        return prepared.document

    def refusal(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        mutations_allowed: bool,
        from_gateway: bool,
    ) -> Outcome | None:
        """Why this request may not run the chosen operation, if it may not."""
        if self.gateway_only and not from_gateway:
            gateway_fields = GATEWAY_ONLY & root_field_names(document, operation)
            if gateway_fields:
                message = f"{', '.join(sorted(gateway_fields))}: answered to the gateway only."
                return refused("FORBIDDEN", message, 200)
        if operation.operation == OperationType.SUBSCRIPTION:
            return refused(
                "BAD_REQUEST",
                "Subscriptions are served over WebSocket, or as Server-Sent Events "
                "(`Accept: text/event-stream`), on /graphql.",
            )
        if operation.operation == OperationType.MUTATION and not mutations_allowed:
            outcome = refused("BAD_REQUEST", "Mutations are only accepted over POST.", 405)
            outcome.headers["Allow"] = "POST"
            return outcome
        return None

    def costing(
        self,
        model: CostModel,
        prepared: Prepared,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
    ) -> Costing:
        assert prepared.document is not None
        if operation.variable_definitions:
            return model.costing(prepared.document, operation, variables)
        name = name_of(operation)
        costing = prepared.costings.get(name)
        if costing is None:
            costing = prepared.costings[name] = model.costing(prepared.document, operation, None)
        return costing

    async def _costed(
        self,
        prepared: Prepared,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Context,
    ) -> Outcome:
        """Refused before execution when over the tier's ceiling or the client's budget;
        otherwise debited the requested cost, run, and settled at the actual cost."""
        assert self.cost_control is not None and prepared.document is not None
        costing = self.costing(self.cost_control.model, prepared, operation, variables)
        requested = requested_cost(costing)
        if isinstance(requested, Outcome):
            return requested
        throttle, refusal = await self.admit(context.viewer, requested)
        if refusal is not None:
            return refusal_outcome(refusal, throttle, requested)
        tier = self.settings.tiers[context.viewer.tier]
        context.budget = budget(tier, requested, throttle)
        outcome = await self._execute(prepared.document, variables, operation_name, context)
        data = outcome.payload.get("data")
        actual = costing.actual(data)
        if data is not None and actual != requested:  # refunded, or charged the difference
            bucket = bucket_of(context.viewer)
            throttle = await self.cost_control.limiter.refund(bucket, tier, requested - actual)
        return with_cost(outcome, requested, actual, throttle)

    async def admit(self, viewer: Viewer, requested: int) -> tuple[Throttle, Refusal | None]:
        """Debits `requested` from the viewer's budget, or says why not (debiting nothing)."""
        assert self.cost_control is not None
        limiter = self.cost_control.limiter
        tier = self.settings.tiers[viewer.tier]
        if requested > tier.ceiling:
            message = (
                f"This operation may cost {requested} points; the {viewer.tier} tier allows "
                f"{tier.ceiling} per request. Ask for fewer items (first/last) or fewer fields."
            )
            throttle = await limiter.debit(bucket_of(viewer), tier, 0)
            refusal = Refusal(
                "COST_LIMIT_EXCEEDED", message, 400, cost=requested, limit=tier.ceiling
            )
            return throttle, refusal
        throttle = await limiter.debit(bucket_of(viewer), tier, requested)
        if throttle.admitted:
            return throttle, None
        wait = throttle.retry_after
        message = (
            f"Rate limited: this operation costs {requested} points and the budget holds "
            f"{max(0, math.floor(throttle.available + requested))}; retry in {wait} s."
        )
        return throttle, Refusal("RATE_LIMITED", message, 429, retryAfter=wait)

    async def charge_subscription(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: dict[str, Any] | None,
        viewer: Viewer,
    ) -> None:
        """A subscription is charged its requested cost once, when it starts (WebSocket;
        SSE is charged by `admit_stream`)."""
        if self.cost_control is None:
            return
        requested = self.cost_control.model.costing(document, operation, variables).requested
        _, refusal = await self.admit(viewer, requested)
        if refusal is not None:
            extensions = {"code": refusal.code, **refusal.extensions}
            raise GraphQLError(refusal.message, extensions=extensions)

    async def _execute(
        self,
        document: DocumentNode,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Any,
    ) -> Outcome:
        deadline = self.settings.request_timeout
        when = context.deadline or asyncio.get_running_loop().time() + deadline.total_seconds()
        try:
            async with asyncio.timeout_at(when):
                result = execute(
                    self.schema,
                    document,
                    None,
                    context,
                    variables,
                    operation_name,
                    executor_class=self.executor_class,
                )
                if isawaitable(result):
                    result = await result
        except TimeoutError:
            return timed_out(deadline)
        return shaped(result)


def name_of(operation: OperationDefinitionNode) -> str | None:
    return operation.name.value if operation.name else None


def budget(tier: Tier, requested: int, throttle: Throttle) -> Budget:
    remaining = max(0, math.floor(throttle.available))
    reset_at = datetime.now(UTC) + timedelta(seconds=throttle.seconds_to_full)
    return Budget(tier.capacity, requested, remaining, reset_at)


def requested_cost(costing: Costing) -> int | Outcome:
    """The operation's requested cost, or why it cannot be costed."""
    try:
        return costing.requested
    except ListSizeError as error:
        return Outcome({"errors": [error.formatted]}, 400, by_accept=True)


def refusal_outcome(refusal: Refusal, throttle: Throttle, requested: int) -> Outcome:
    outcome = refused(refusal.code, refusal.message, refusal.status, **refusal.extensions)
    outcome.by_accept = refusal.status == 400
    if refusal.code == "RATE_LIMITED":
        outcome.headers["Retry-After"] = str(throttle.retry_after)
    return with_cost(outcome, requested, 0, throttle)


def with_cost(outcome: Outcome, requested: int, actual: int, throttle: Throttle) -> Outcome:
    extensions = outcome.payload.setdefault("extensions", {})
    extensions["cost"] = cost_extension(requested, actual, throttle)
    outcome.cost = (requested, actual)
    return outcome


def timed_out(deadline: timedelta) -> Outcome:
    message = f"The request exceeded its deadline of {deadline.total_seconds():g} s."
    return Outcome({"errors": [request_error(message, "TIMEOUT")]}, 504)


def shaped(result: ExecutionResult) -> Outcome:
    errors = result.errors or []
    if result.data is None and errors and all(error.path is None for error in errors):
        # variable coercion failed: nothing ran
        return Outcome(
            {"errors": format_request_errors(errors, "BAD_USER_INPUT")}, 400, by_accept=True
        )
    payload: dict[str, Any] = {}
    if errors:
        payload["errors"] = [format_execution_error(error) for error in errors]
    payload["data"] = result.data
    codes = {error["extensions"]["code"] for error in payload.get("errors", [])}
    if result.data is not None or len(codes) != 1:
        return Outcome(payload)
    # nothing could be returned, for one reason only: say it in the status too
    (code,) = codes
    if code == "BAD_USER_INPUT":  # a request error in all but name
        return Outcome(payload, 400, by_accept=True)
    if code == "SERVICE_UNAVAILABLE":
        return Outcome(payload, 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    if code == "TIMEOUT":
        return Outcome(payload, 504)
    return Outcome(payload)
