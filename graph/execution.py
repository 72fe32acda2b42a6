"""Parse, validate (both cached per document text) and execute one GraphQL operation."""

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from inspect import isawaitable
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationType,
    execute,
    get_operation_ast,
    parse,
    specified_rules,
    validate,
)
from graphql.execution.executor import Executor
from graphql.validation import NoSchemaIntrospectionCustomRule

from graph.errors import format_execution_error, format_request_errors, request_error
from graph.fast_path import FastExecutor
from graph.gateway import GATEWAY_ONLY, root_field_names
from graph.limits import limit_error, shape_limits
from graph.settings import Settings

CACHED_DOCUMENT_CHARS = 64_000
CACHED_DOCUMENTS = 1000
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


def refused(code: str, message: str, status: int = 400, **extensions: Any) -> Outcome:
    return Outcome({"errors": [request_error(message, code, **extensions)]}, status)


@dataclass(frozen=True)
class Prepared:
    document: DocumentNode | None
    errors: list[dict[str, Any]]


class Pipeline:
    """parse -> validate -> execute, with documents cached by their text."""

    def __init__(
        self,
        schema: GraphQLSchema,
        settings: Settings,
        executor_class: type[Executor[Any]] = FastExecutor,
    ) -> None:
        self.schema = schema
        self.executor_class = executor_class
        self.settings = settings
        self.rules = [
            *specified_rules,
            shape_limits(settings.max_depth, settings.max_aliases, settings.max_root_fields),
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
        context: Any,
        *,
        mutations_allowed: bool,
        from_gateway: bool = False,
    ) -> Outcome:
        prepared = self.prepare(query)
        if prepared.document is None or prepared.errors:
            return Outcome({"errors": prepared.errors}, 400, by_accept=True)
        refusal = self.refusal(prepared.document, operation_name, mutations_allowed, from_gateway)
        if refusal is not None:
            return refusal
        return await self._execute(prepared.document, variables, operation_name, context)

    def refusal(
        self,
        document: DocumentNode,
        operation_name: str | None,
        mutations_allowed: bool,
        from_gateway: bool,
    ) -> Outcome | None:
        """Why this request may not run the chosen operation, if it may not."""
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            if operation_name:
                return refused("BAD_REQUEST", f"Unknown operation named {operation_name!r}.")
            return refused("BAD_REQUEST", "Name the operation to run: the document has several.")
        if self.gateway_only and not from_gateway:
            gateway_fields = GATEWAY_ONLY & root_field_names(document, operation)
            if gateway_fields:
                message = f"{', '.join(sorted(gateway_fields))}: answered to the gateway only."
                return refused("FORBIDDEN", message, 200)
        if operation.operation == OperationType.SUBSCRIPTION:
            return refused("BAD_REQUEST", "Subscriptions are served over WebSocket on /graphql.")
        if operation.operation == OperationType.MUTATION and not mutations_allowed:
            outcome = refused("BAD_REQUEST", "Mutations are only accepted over POST.", 405)
            outcome.headers["Allow"] = "POST"
            return outcome
        return None

    async def _execute(
        self,
        document: DocumentNode,
        variables: dict[str, Any] | None,
        operation_name: str | None,
        context: Any,
    ) -> Outcome:
        deadline = self.settings.request_timeout
        try:
            async with asyncio.timeout(deadline.total_seconds()):
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
