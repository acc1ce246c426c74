"""Structured JSON logs in Cloud Logging's format, with trace and tenant from the current request.

Cloud Run and Cloud Functions parse one JSON object per stdout line: `severity`, `message` and
`logging.googleapis.com/trace` are special fields. Anything that looks like a credential is masked
before it is written, so a careless `extra={...}` cannot leak a secret.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("trace_id", default=None)
span_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("span_id", default=None)
tenant_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("tenant_id", default=None)

_SENSITIVE = ("authorization", "token", "secret", "password", "signing_key", "credential", "api_key")
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def _mask(key: str, value: Any) -> Any:
    if any(word in key.lower() for word in _SENSITIVE):
        return "[redacted]"
    if isinstance(value, dict):
        return {k: _mask(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(key, item) for item in value]
    return value


class CloudLoggingFormatter(logging.Formatter):
    def __init__(self, project_id: str) -> None:
        super().__init__()
        self.project_id = project_id

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "logger": record.name,
        }
        if (trace := trace_id.get()) is not None:
            entry["logging.googleapis.com/trace"] = f"projects/{self.project_id}/traces/{trace}"
            if (span := span_id.get()) is not None:
                entry["logging.googleapis.com/spanId"] = span
        if (tenant := tenant_id.get()) is not None:
            entry["tenant_id"] = tenant
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = _mask(key, value)
        if record.exc_info:
            entry["stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


_configured = False


def configure_logging(project_id: str, level: str = "INFO") -> None:
    """Idempotent: every function entry point calls it on its first request."""
    global _configured
    if _configured:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(CloudLoggingFormatter(project_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _configured = True


def bind_trace(header: str | None) -> None:
    """Take the trace from `traceparent` (W3C) or `X-Cloud-Trace-Context` (TRACE/SPAN;o=1)."""
    if not header:
        trace_id.set(None)
        span_id.set(None)
        return
    span: str | None
    if header.count("-") == 3:  # traceparent: version-trace-span-flags
        _, trace, span, _ = header.split("-")
    else:
        trace, _, rest = header.partition("/")
        span = rest.split(";")[0] or None
    trace_id.set(trace or None)
    span_id.set(span)


def current_traceparent() -> str | None:
    trace = trace_id.get()
    if not trace or len(trace) != 32:
        return None
    span = span_id.get()
    span_hex = span if span and len(span) == 16 else "0000000000000001"
    return f"00-{trace}-{span_hex}-01"
