"""Traces and metrics of subscriptions, whatever carries them (graph/transports/streams.py
calls this).

As for an operation over HTTP (graph/transports/http.py, graph/observability/metrics.py), a
subscription's admission is
one span, `subscription <name>`, under the span of its request or WebSocket connection, with
the operation's name and type, the transport, its requested cost and, when refused, its error
codes (then its status is ERROR); and it is counted by transport, operation name and outcome,
a refusal also by its code. Its events are counted per transport only (no series per event or
per operation): those delivered, the points charged for them, and how subscriptions ended.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.trace import Span, StatusCode
from prometheus_client import Counter, Histogram

from graph.observability.metrics import OperationNames, count_errors
from graph.pipeline.pipeline import Outcome
from loaders.tracing import child_span

TransportName = Literal["graphql-transport-ws", "graphql-ws", "sse"]
TRANSPORTS: tuple[TransportName, ...] = ("graphql-transport-ws", "graphql-ws", "sse")
COMPLETE, CLOSED = "complete", "closed"  # the reasons a subscription ends without an error
TRACER = trace.get_tracer(__name__)

SUBSCRIPTIONS = Counter(
    "corpgraph_subscriptions",
    "Subscriptions asked for, by transport, operation name and outcome (admitted, refused)",
    ["transport", "operation", "outcome"],
)
REFUSED = Counter(
    "corpgraph_subscriptions_refused",
    "Subscriptions refused before their first event, by transport and extensions.code",
    ["transport", "code"],
)
ADMISSION = Histogram(
    "corpgraph_subscription_admission_duration_seconds",
    "Time to admit or refuse a subscription, by transport",
    ["transport"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVENTS = Counter(
    "corpgraph_subscription_events",
    "Subscription events delivered (the error that ends one included), by transport",
    ["transport"],
)
CHARGED = Counter(
    "corpgraph_subscription_charged_points",
    "Points charged for subscription events, each its actual cost, by transport",
    ["transport"],
)
ENDED = Counter(
    "corpgraph_subscriptions_ended",
    "Subscriptions ended, by transport and reason (complete: its source ended; closed: the "
    "client stopped it or left, or the server hung up; else the code of the error that ended it)",
    ["transport", "reason"],
)
for name in TRANSPORTS:  # exposed at 0 from the start, so that rates work
    EVENTS.labels(name)
    CHARGED.labels(name)


@dataclass(frozen=True)
class Transport:
    """What carries a subscription, as its span and metrics name it; `names` bounds the
    operation-name labels (None: metrics are off)."""

    name: TransportName
    names: OperationNames | None

    @contextmanager
    def admission(self) -> Iterator["Admission"]:
        """The span and the metrics of one subscription's admission."""
        started = time.perf_counter()
        attributes: dict[str, str | int] = {"graphql.transport": self.name}
        with child_span(TRACER, "graphql.operation", attributes) as span:
            admission = Admission(self, span)
            yield admission
        if self.names is not None:
            admission.count(time.perf_counter() - started)

    def delivered(self, payload: dict[str, Any]) -> None:
        EVENTS.labels(self.name).inc()
        if "errors" in payload:
            count_errors(payload["errors"])

    def charged(self, points: int) -> None:
        CHARGED.labels(self.name).inc(points)

    def ended(self, reason: str) -> None:
        ENDED.labels(self.name, reason).inc()


class Admission:
    """What one subscription's admission found out: its operation, then admitted or why not."""

    def __init__(self, transport: Transport, span: Span) -> None:
        self.transport, self.span = transport, span
        self.operation: str | None = None
        self.refusal: Outcome | None = None

    def of(self, name: str | None, kind: str) -> None:
        """The operation chosen in the document (a query, when one is sent instead)."""
        self.operation = name
        if self.span.is_recording():
            self.span.update_name(f"{kind} {name}" if name else kind)
            self.span.set_attribute("graphql.operation.type", kind)
            if name is not None:
                self.span.set_attribute("graphql.operation.name", name)

    def requested(self, cost: int) -> None:
        self.span.set_attribute("graphql.cost.requested", cost)

    def refused(self, outcome: Outcome) -> None:
        self.refusal = outcome
        if self.span.is_recording():
            codes = [error["extensions"]["code"] for error in outcome.payload["errors"]]
            self.span.set_attribute("graphql.error.codes", codes)
            self.span.set_status(StatusCode.ERROR, codes[0])

    def count(self, seconds: float) -> None:
        assert self.transport.names is not None
        transport = self.transport.name
        ADMISSION.labels(transport).observe(seconds)
        outcome = "admitted" if self.refusal is None else "refused"
        operation = self.transport.names.label(self.operation)
        SUBSCRIPTIONS.labels(transport, operation, outcome).inc()
        if self.refusal is not None:
            errors = self.refusal.payload["errors"]
            REFUSED.labels(transport, errors[0]["extensions"]["code"]).inc()
            count_errors(errors)
