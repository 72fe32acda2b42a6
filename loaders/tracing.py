"""Spans for a request's work below the HTTP span (graph/observability/telemetry.py makes
that one)."""

from contextlib import AbstractContextManager, nullcontext

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, Tracer


def child_span(
    tracer: Tracer, name: str, attributes: dict[str, str | int] | None = None
) -> AbstractContextManager[Span]:
    """A span under the current one; nothing when that one is not recorded (tracing off, or
    a request the sampler left out), since its children would not be either."""
    if not trace.get_current_span().is_recording():
        return nullcontext(INVALID_SPAN)
    return tracer.start_as_current_span(name, attributes=attributes)
