"""Trace ids cross the broker as a message header: a task started from a request (or from another
task) logs, audits and meters under the trace id of the request that caused it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun

from apps.core import context

HEADER = "trace_id"

# task id -> the reset callable for the trace id bound at prerun
_bound: dict[str, Any] = {}


@before_task_publish.connect
def _add_trace_header(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    if headers is None:
        return
    if not headers.get(HEADER):
        headers[HEADER] = context.ensure_trace_id()
    # When it entered the broker: queue latency is measurable on the worker side.
    headers.setdefault("published_at", datetime.now(UTC).isoformat())


@task_prerun.connect
def _bind_trace(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    incoming = getattr(task.request, HEADER, None) if task is not None else None
    if incoming is None and task is not None and task.request.is_eager:
        incoming = context.get_trace_id()  # eager: same process, same context
    _bound[task_id or ""] = context.push_trace_id(incoming)


@task_postrun.connect
def _unbind_trace(task_id: str | None = None, **kwargs: Any) -> None:
    token = _bound.pop(task_id or "", None)
    if token is not None:
        context.pop_trace_id(token)
