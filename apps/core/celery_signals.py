"""Trace ids of background work.

- A message published inside a request (or inside a task run) carries that trace id as a header:
  the task logs, audits and meters under the id of what caused it.
- A message published with nothing bound (beat's schedule, a shell) gets a new id of its own, and
  nothing is bound in the publishing process: beat's lines between tasks carry no trace id, and
  each run it sends has its own.
- A worker binds the message's id for the task run (task_prerun) and clears it after (task_postrun),
  so nothing leaks into the next run. An eager task (tests) restores the caller's binding instead.
- A job binds its own trace id while it runs (apps.runners.services.jobs.job_execute).
"""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun

from apps.core import context

HEADER = "trace_id"

# task id -> (the reset token of the trace id bound at prerun, whether the run was eager)
_bound: dict[str, tuple[Any, bool]] = {}


@before_task_publish.connect
def _add_trace_header(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    if headers is None:
        return
    if not headers.get(HEADER):
        # The bound id (a request's, a task run's), or a new one for this message only: never bound
        # here, or every later message of the process (beat's) would share it.
        headers[HEADER] = context.get_trace_id() or context.new_trace_id()
    # When it entered the broker: queue latency is measurable on the worker side.
    headers.setdefault("published_at", datetime.now(UTC).isoformat())


@task_prerun.connect
def _bind_trace(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    eager = bool(task is not None and task.request.is_eager)
    incoming = getattr(task.request, HEADER, None) if task is not None else None
    if incoming is None and eager:
        incoming = context.get_trace_id()  # eager: same process, same context
    _bound[task_id or ""] = (context.push_trace_id(incoming), eager)


@task_postrun.connect
def _unbind_trace(task_id: str | None = None, **kwargs: Any) -> None:
    token, eager = _bound.pop(task_id or "", (None, True))
    if token is not None:
        with suppress(ValueError):  # bound in another context: cannot happen in a pool worker
            context.pop_trace_id(token)
    if not eager:
        # A worker's run is over: nothing it bound may reach the next run's lines.
        context.clear_request_context()
