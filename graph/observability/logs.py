"""Logging: JSON lines (in production) or text, with the ids of the current trace, and with
anything shaped like a credential masked on the way out."""

import logging
import re
import sys

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

from db.apikeys import KEY_PREFIX, SHOWN_PREFIX_CHARS

SHOWN = SHOWN_PREFIX_CHARS - len(KEY_PREFIX)
SECRETS = [
    # an API key keeps the prefix `corpgraph apikey list` shows
    (re.compile(rf"\b({re.escape(KEY_PREFIX)}[\w-]{{{SHOWN}}})[\w-]+"), r"\1…"),
    (re.compile(r"(?i)\b(bearer\s+)[\w.~+/-]+=*"), r"\1[redacted]"),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), r"\1[redacted]@"),  # a password in a URL
]


def redact(text: str) -> str:
    for pattern, replacement in SECRETS:
        text = pattern.sub(replacement, text)
    return text


class WithTraceIds(logging.Filter):
    """Adds trace_id and span_id (W3C hex) when a span is current."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format(context.trace_id, "032x")
            record.span_id = format(context.span_id, "016x")
        return True


class JsonLines(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure_logging(json: bool, level: str) -> None:
    """The root logger's one handler, on stderr; the libraries' loggers propagate to it."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(WithTraceIds())
    if json:
        handler.setFormatter(
            JsonLines(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(Text("{asctime} {levelname} {name}: {message}", style="{"))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    logging.captureWarnings(True)
