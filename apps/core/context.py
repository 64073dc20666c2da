"""Per-request / per-task context: the trace id and the client IP.

contextvars rather than thread locals: correct under threads, asyncio and Celery's pools alike.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

TRACE_ID_HEADER = "X-Trace-Id"
_VALID_TRACE_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")

_trace_id: ContextVar[str | None] = ContextVar("trace_id", default=None)
_client_ip: ContextVar[str | None] = ContextVar("client_ip", default=None)


def new_trace_id() -> str:
    return uuid.uuid4().hex


def is_valid_trace_id(value: str | None) -> bool:
    return bool(value) and bool(_VALID_TRACE_ID.match(value or ""))


def get_trace_id() -> str | None:
    return _trace_id.get()


def ensure_trace_id() -> str:
    """The bound trace id, or a new one bound now (for work that starts outside a request)."""
    current = _trace_id.get()
    if current is None:
        current = new_trace_id()
        _trace_id.set(current)
    return current


def get_client_ip() -> str | None:
    return _client_ip.get()


def set_request_context(*, trace_id: str | None, client_ip: str | None) -> str:
    """Bind for the rest of this request (cleared by clear_request_context when it finishes)."""
    value = trace_id if is_valid_trace_id(trace_id) else new_trace_id()
    _trace_id.set(value)
    _client_ip.set(client_ip)
    return value


def clear_request_context() -> None:
    _trace_id.set(None)
    _client_ip.set(None)


def push_trace_id(trace_id: str | None) -> Token[str | None]:
    """Bind a trace id (a new one when missing or invalid); pop_trace_id(token) restores."""
    return _trace_id.set(trace_id if is_valid_trace_id(trace_id) else new_trace_id())


def pop_trace_id(token: Token[str | None]) -> None:
    _trace_id.reset(token)


@contextmanager
def bind(*, trace_id: str | None, client_ip: str | None = None) -> Iterator[str]:
    """Bind a trace id (a new one when missing or invalid) for the duration of the block."""
    value = trace_id if is_valid_trace_id(trace_id) else new_trace_id()
    t1 = _trace_id.set(value)
    t2 = _client_ip.set(client_ip)
    try:
        yield value
    finally:
        _trace_id.reset(t1)
        _client_ip.reset(t2)
