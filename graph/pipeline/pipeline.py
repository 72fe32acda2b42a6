"""Parse, validate (valid documents cached by their text), cost, and execute one operation.

A document that is not in the cache is charged to its client before it is parsed: 1 point
per started `document_cost_chars` characters, refunded once it proves valid. Documents that
fail to parse, to pass a limit or to validate are paid for, and a client whose budget is
spent gets RATE_LIMITED before the server does that work again.
"""

import asyncio
import math
import time
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
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
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.execution.executor import Executor
from graphql.execution.values import VariableValues
from graphql.validation import NoSchemaIntrospectionCustomRule

from graph.bounded import BoundedByBytes
from graph.execution.compiled import CompiledExecutor
from graph.pipeline.cost import Costing, CostModel, ListSizeError
from graph.pipeline.errors import format_execution_error, format_request_errors, request_error
from graph.pipeline.gateway import GATEWAY_ONLY, root_field_names
from graph.pipeline.limits import limit_error
from graph.pipeline.prevalidation import DocumentBounds, prevalidation_errors
from graph.pipeline.ratelimit import RateLimiter, Throttle
from graph.pipeline.response_cache import UNCACHEABLE_FIELDS, ResponseCache
from graph.pipeline.text_inputs import NoNulInArguments, nul_in_variables
from graph.settings import Settings, Tier
from resolvers.context import Budget, Context, Viewer

# what a parsed document takes in memory, per token of its text (AST nodes, locations and
# the token list they keep), as measured with tracemalloc on token-dense documents
BYTES_PER_TOKEN = 640
# validation stops after this many errors (graphql-core's default, 100, doubles the work a
# document full of errors makes, and no one reads the hundredth)
MAX_VALIDATION_ERRORS = 20
CACHE_HIT_COST = 1
RETRY_AFTER_SECONDS = 1


class Refused(Enum):
    """Why an operation got no answer, said once for every transport: each says it its own way
    (HTTP statuses and headers, SSE's before its stream: graph/transports/http.py; WebSocket:
    the errors alone)."""

    REQUEST = "request"  # the document or its variables are wrong, or cost more than a request may
    PROTOCOL = "protocol"  # the request is not one the server takes (envelope, operation, kind)
    METHOD = "method"  # a mutation over a transport that takes queries only (HTTP GET)
    BUDGET = "budget"  # the client's budget, or its share of the server, is spent for now
    UNAVAILABLE = "unavailable"  # PostgreSQL is out of reach: retry shortly
    TIMEOUT = "timeout"  # past the request's deadline


@dataclass
class Outcome:
    """What to send back: the payload, and when it is a refusal, why (`refused`), with how
    long to wait before trying again when that is known."""

    payload: dict[str, Any]
    refused: Refused | None = None
    retry_after: int | None = None  # seconds
    status: int | None = None  # an HTTP refusal of the HTTP transport's own (413, 415, 401, ...)
    headers: dict[str, str] = field(default_factory=dict)  # HTTP headers, likewise
    # the answer of a query that reads no per-request state: HTTP caches may keep it
    shareable: bool = False
    settled: bool = False  # read wholly as of instants long past: caches may keep it longer
    operation_name: str | None = None  # of the operation that ran
    operation_type: str | None = None  # query, mutation
    cost: tuple[int, int] | None = None  # requested, actual; when costed


def refused(
    code: str, message: str, why: Refused | None = Refused.PROTOCOL, **extensions: Any
) -> Outcome:
    return Outcome({"errors": [request_error(message, code, **extensions)]}, why)


@dataclass(frozen=True)
class Prepared:
    document: DocumentNode | None
    errors: list[dict[str, Any]]
    # the costing of each operation (by name), which its requests' costings are made from
    # (Costing.with_variables)
    costings: dict[str | None, Costing] = field(default_factory=dict)


@dataclass(frozen=True)
class CostControl:
    model: CostModel
    limiter: RateLimiter


@dataclass(frozen=True)
class Debited:
    """An operation admitted by its requested cost, which its client's budget now owes."""

    costing: Costing
    requested: int
    throttle: Throttle


class Refusal:
    """Why cost control turns an operation away, before it runs."""

    def __init__(self, code: str, message: str, why: Refused, **extensions: Any) -> None:
        self.code, self.message, self.why, self.extensions = code, message, why, extensions


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
        self.rules = [*specified_rules, NoNulInArguments]
        if not settings.introspection_enabled:
            self.rules.append(NoSchemaIntrospectionCustomRule)
        self.bounds = DocumentBounds(
            settings.max_selections,
            settings.max_field_occurrences,
            settings.max_field_merges,
            settings.max_fragment_spreads,
            settings.max_directives,
            settings.max_aliases,
            settings.max_depth,
            settings.max_root_fields,
        )
        self._prepared: BoundedByBytes[str, Prepared] = BoundedByBytes(
            settings.document_cache_bytes
        )
        self.gateway_only = settings.gateway_secret is not None

    def prepare(self, query: str) -> Prepared:
        """The document parsed and validated; only valid ones are kept (bounded by bytes)."""
        prepared = self._prepared.get(query)
        if prepared is None:
            prepared = self._parse_and_validate(query)
            if prepared.document is not None and not prepared.errors:
                size = len(query) + BYTES_PER_TOKEN * token_count(prepared.document)
                self._prepared.put(query, prepared, size)
        return prepared

    async def prepare_charged(self, query: str, viewer: Viewer) -> Prepared | Outcome:
        """`prepare`, charging a document that is not cached for the work (refunded when it
        is valid); an invalid one is answered here, with the points it cost."""
        if self.cost_control is None or query in self._prepared:
            return self.prepare(query)
        points = math.ceil(len(query) / self.settings.document_cost_chars) or 1
        throttle, refusal = await self.admit(viewer, points)
        if refusal is not None:
            return refusal_outcome(refusal, throttle, points)
        prepared = self.prepare(query)
        if not prepared.errors:
            tier = self.settings.tiers[viewer.tier]
            await self.cost_control.limiter.refund(bucket_of(viewer), tier, points)
            return prepared
        outcome = Outcome({"errors": prepared.errors}, Refused.REQUEST)
        return with_cost(outcome, points, points, throttle)

    def _parse_and_validate(self, query: str) -> Prepared:
        settings = self.settings
        try:
            document = parse(
                query, max_tokens=settings.max_tokens, max_source_length=settings.max_document_chars
            )
        except GraphQLError as error:
            return Prepared(None, parse_errors(error, query, settings))
        errors = prevalidation_errors(document, self.bounds) or validate(
            self.schema,
            document,
            self.rules,
            max_errors=MAX_VALIDATION_ERRORS,
            hide_suggestions=settings.production,
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
        ready = await self.prepare_operation(query, operation_name, variables, context.viewer)
        if isinstance(ready, Outcome):
            return ready
        prepared, operation = ready
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
        if refusal is None and shareable and not outcome.settled:  # a hit says it itself
            outcome.settled = context.loaders.settled(self.settings.settled_after)
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
        executor = self.executor_for(prepared.document, variables, name_of(operation), context)
        if isinstance(executor, Outcome):
            return executor
        if self.cost_control is None:
            return await self._execute(executor, context)
        return await self._costed(prepared, operation, executor, context)

    def executor_for(
        self,
        document: DocumentNode,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Context,
    ) -> Executor[Any] | Outcome:
        """The operation's executor, its variables coerced (once: the costing reads them
        too); or, before anything is costed or run, why the variables do not fit."""
        built = self.executor_class.build(
            self.schema, document, None, context, variables, operation_name
        )
        if isinstance(built, list):
            return variables_refused(built)
        return built

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
            hit = await self._cache_hit(lookup.answer, context.viewer)
            hit.settled = lookup.settled
            return hit
        companies = context.loaders.track_companies()
        outcome = await self._answer(prepared, operation, variables, context)
        data = outcome.payload.get("data")
        if outcome.refused is None and data is not None and "errors" not in outcome.payload:
            answer = orjson.dumps(data)
            outcome.payload["data"] = orjson.Fragment(answer)  # encoded once
            outcome.settled = context.loaders.settled(self.settings.settled_after)
            await self.response_cache.keep(lookup, answer, companies, outcome.settled)
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

    async def prepare_operation(
        self,
        query: str,
        operation_name: str | None,
        variables: dict[str, Any] | None,
        viewer: Viewer,
    ) -> tuple[Prepared, OperationDefinitionNode] | Outcome:
        """The document, prepared and charged for (`prepare_charged`), and the operation to
        run; or why there is none. Every transport starts here."""
        prepared = await self.prepare_charged(query, viewer)
        if isinstance(prepared, Outcome):
            return prepared
        operation = self._operation_of(prepared, operation_name, variables)
        if isinstance(operation, Outcome):
            return operation
        return prepared, operation

    @staticmethod
    def _operation_of(
        prepared: Prepared, operation_name: str | None, variables: dict[str, Any] | None
    ) -> OperationDefinitionNode | Outcome:
        """The operation to run, or why there is none."""
        if prepared.document is None or prepared.errors:
            return Outcome({"errors": prepared.errors}, Refused.REQUEST)
        if (error := nul_in_variables(variables)) is not None:
            return Outcome({"errors": [error.formatted]}, Refused.REQUEST)
        operation = get_operation_ast(prepared.document, operation_name)
        if operation is not None:
            return operation
        if operation_name:
            return refused("BAD_REQUEST", f"Unknown operation named {operation_name!r}.")
        return refused("BAD_REQUEST", "Name the operation to run: the document has several.")

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
                return refused("FORBIDDEN", message, None)  # answered, with nothing in it
        if operation.operation == OperationType.SUBSCRIPTION:
            return refused(
                "BAD_REQUEST",
                "Subscriptions are served over WebSocket, or as Server-Sent Events "
                "(`Accept: text/event-stream`), on /graphql.",
            )
        if operation.operation == OperationType.MUTATION and not mutations_allowed:
            return refused("BAD_REQUEST", "Mutations are only accepted over POST.", Refused.METHOD)
        return None

    def costing(
        self,
        model: CostModel,
        prepared: Prepared,
        operation: OperationDefinitionNode,
        variables: VariableValues,
    ) -> Costing:
        """The operation's costing with these variables and today, made from the one kept for
        it."""
        assert prepared.document is not None
        name = name_of(operation)
        kept = prepared.costings.get(name)
        if kept is None:
            kept = prepared.costings[name] = Costing(model, prepared.document, operation, variables)
        return kept.with_variables(variables)

    async def _costed(
        self,
        prepared: Prepared,
        operation: OperationDefinitionNode,
        executor: Executor[Any],
        context: Context,
    ) -> Outcome:
        """Refused before execution when over the tier's ceiling or the client's budget;
        otherwise debited the requested cost, run, and settled at the actual cost."""
        assert self.cost_control is not None and prepared.document is not None
        variables = executor.variable_values
        debited = await self.debit_requested(prepared, operation, variables, context.viewer)
        if isinstance(debited, Outcome):
            return debited
        costing, requested, throttle = debited.costing, debited.requested, debited.throttle
        tier = self.settings.tiers[context.viewer.tier]
        context.budget = budget(tier, requested, throttle)
        outcome = await self._execute(executor, context)
        data = outcome.payload.get("data")
        actual = costing.actual(data)
        if data is not None and actual != requested:  # refunded, or charged the difference
            bucket = bucket_of(context.viewer)
            throttle = await self.cost_control.limiter.refund(bucket, tier, requested - actual)
        return with_cost(outcome, requested, actual, throttle)

    async def debit_requested(
        self,
        prepared: Prepared,
        operation: OperationDefinitionNode,
        variables: VariableValues,
        viewer: Viewer,
    ) -> Debited | Outcome:
        """The operation's requested cost with these (coerced) variables, debited from the
        viewer's budget; or why not (a list size out of range, over the tier's ceiling, the
        budget short)."""
        assert self.cost_control is not None
        costing = self.costing(self.cost_control.model, prepared, operation, variables)
        requested = requested_cost(costing)
        if isinstance(requested, Outcome):
            return requested
        throttle, refusal = await self.admit(viewer, requested)
        if refusal is not None:
            return refusal_outcome(refusal, throttle, requested)
        return Debited(costing, requested, throttle)

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
                "COST_LIMIT_EXCEEDED", message, Refused.REQUEST, cost=requested, limit=tier.ceiling
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
        return throttle, Refusal("RATE_LIMITED", message, Refused.BUDGET, retryAfter=wait)

    async def _execute(self, executor: Executor[Any], context: Context) -> Outcome:
        deadline = self.settings.request_timeout
        when = context.deadline or asyncio.get_running_loop().time() + deadline.total_seconds()
        try:
            async with asyncio.timeout_at(when):
                result = executor.execute_operation()
                if isawaitable(result):
                    result = await result
        except TimeoutError:
            return timed_out(deadline)
        assert isinstance(result, ExecutionResult)  # no @defer or @stream in the schema
        return shaped(result)


def token_count(document: DocumentNode) -> int:
    count: int = getattr(document, "token_count", 0)  # set by graphql-core's parser
    return count


def parse_errors(error: GraphQLError, query: str, settings: Settings) -> list[dict[str, Any]]:
    """A syntax error, or the parser's own limits (tokens, characters) as QUERY_LIMIT_EXCEEDED."""
    if "Document contains more than" in error.message:
        limit = settings.max_tokens
        return [dict(limit_error("tokens", limit, limit + 1).formatted)]
    if "Source contains more than" in error.message:
        limit = settings.max_document_chars
        return [dict(limit_error("characters", limit, len(query)).formatted)]
    return format_request_errors([error], "GRAPHQL_PARSE_FAILED")


def name_of(operation: OperationDefinitionNode) -> str | None:
    return operation.name.value if operation.name else None


def budget(tier: Tier, requested: int, throttle: Throttle) -> Budget:
    remaining = max(0, math.floor(throttle.available))
    return Budget(tier.capacity, requested, remaining, time.time() + throttle.seconds_to_full)


def requested_cost(costing: Costing) -> int | Outcome:
    """The operation's requested cost, or why it cannot be costed."""
    try:
        return costing.requested
    except ListSizeError as error:
        return Outcome({"errors": [error.formatted]}, Refused.REQUEST)


def refusal_outcome(refusal: Refusal, throttle: Throttle, requested: int) -> Outcome:
    outcome = refused(refusal.code, refusal.message, refusal.why, **refusal.extensions)
    if refusal.why is Refused.BUDGET:
        outcome.retry_after = throttle.retry_after
    return with_cost(outcome, requested, 0, throttle)


def with_cost(outcome: Outcome, requested: int, actual: int, throttle: Throttle) -> Outcome:
    extensions = outcome.payload.setdefault("extensions", {})
    extensions["cost"] = cost_extension(requested, actual, throttle)
    outcome.cost = (requested, actual)
    return outcome


def timed_out(deadline: timedelta) -> Outcome:
    message = f"The request exceeded its deadline of {deadline.total_seconds():g} s."
    return Outcome({"errors": [request_error(message, "TIMEOUT")]}, Refused.TIMEOUT)


def variables_refused(errors: list[GraphQLError]) -> Outcome:
    """Variables that do not fit their definitions: a request error, nothing run."""
    return Outcome({"errors": format_request_errors(errors, "BAD_USER_INPUT")}, Refused.REQUEST)


def shaped(result: ExecutionResult) -> Outcome:
    errors = result.errors or []
    if result.data is None and errors and all(error.path is None for error in errors):
        return variables_refused(errors)  # a subscription's variables: nothing ran
    payload: dict[str, Any] = {}
    if errors:
        payload["errors"] = [format_execution_error(error) for error in errors]
    payload["data"] = result.data
    codes = {error["extensions"]["code"] for error in payload.get("errors", [])}
    if result.data is not None or len(codes) != 1:
        return Outcome(payload)
    # nothing could be returned, for one reason only: say why, for the transport to say it too
    (code,) = codes
    if code == "BAD_USER_INPUT":  # a request error in all but name
        return Outcome(payload, Refused.REQUEST)
    if code == "SERVICE_UNAVAILABLE":
        return Outcome(payload, Refused.UNAVAILABLE, RETRY_AFTER_SECONDS)
    if code == "TIMEOUT":
        return Outcome(payload, Refused.TIMEOUT)
    return Outcome(payload)
