"""A task started from a request runs under the request's trace id, through the real broker."""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun, task_prerun
from django.db import transaction

from apps.core import context
from apps.telemetry.models import AuditEvent
from tests.core.views_for_tests import audit_from_task

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls("tests.core.urls")]


def _wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.fixture
def worker(real_celery: Any) -> Any:
    real_celery.control.purge()
    with start_worker(real_celery, pool="solo", perform_ping_check=False, shutdown_timeout=10) as w:
        yield w


def test_the_request_trace_id_reaches_the_task(worker: Any, token_client: Any) -> None:
    client = token_client("operator")
    response = client.post("/api/test/enqueue", headers={"X-Trace-Id": "req-to-task-7"})
    assert response.status_code == 202
    _wait_for(lambda: AuditEvent.objects.filter(action="test.enqueued").exists())
    assert AuditEvent.objects.get(action="test.enqueued").trace_id == "req-to-task-7"


def test_a_task_enqueued_in_a_rolled_back_transaction_never_runs(worker: Any) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        audit_from_task.delay_on_commit("test.rolled-back")
        raise RuntimeError("roll back")
    audit_from_task.delay_on_commit("test.after")
    _wait_for(lambda: AuditEvent.objects.filter(action="test.after").exists())
    assert not AuditEvent.objects.filter(action="test.rolled-back").exists()


def test_a_task_started_outside_a_request_gets_its_own_trace_id(worker: Any) -> None:
    audit_from_task.delay("test.no-request")
    _wait_for(lambda: AuditEvent.objects.filter(action="test.no-request").exists())
    assert len(AuditEvent.objects.get(action="test.no-request").trace_id) == 32


def test_runs_sent_with_nothing_bound_each_get_their_own_trace_id(worker: Any) -> None:
    """As beat sends them: two consecutive runs never share a trace id, and sending binds nothing in
    the sender (beat's own lines between tasks carry none)."""
    context.clear_request_context()
    audit_from_task.delay("test.beat-run-1")
    audit_from_task.delay("test.beat-run-2")
    assert context.get_trace_id() is None
    _wait_for(lambda: AuditEvent.objects.filter(action__startswith="test.beat-run-").count() == 2)
    first, second = (AuditEvent.objects.get(action=f"test.beat-run-{n}").trace_id for n in (1, 2))
    assert len(first) == 32 and len(second) == 32 and first != second


def test_a_worker_run_binds_its_message_s_id_and_clears_it_after(worker: Any) -> None:
    audit_from_task.apply_async(("test.header-a",), headers={"trace_id": "header-a"})
    audit_from_task.apply_async(("test.header-b",), headers={"trace_id": "header-b"})
    _wait_for(lambda: AuditEvent.objects.filter(action__startswith="test.header-").count() == 2)
    assert AuditEvent.objects.get(action="test.header-a").trace_id == "header-a"
    assert AuditEvent.objects.get(action="test.header-b").trace_id == "header-b"


def test_after_a_worker_run_nothing_is_bound_not_even_what_was_bound_before() -> None:
    """task_postrun clears: a worker's lines between runs carry no trace id, whatever was bound."""
    context.set_request_context(trace_id="stale-id", client_ip=None)
    seen: list[str | None] = []
    audit_from_task.push_request(id="t-1", trace_id="message-id", is_eager=False)
    try:
        task_prerun.send(sender=audit_from_task, task_id="t-1", task=audit_from_task, args=(), kwargs={})
        seen.append(context.get_trace_id())
        task_postrun.send(sender=audit_from_task, task_id="t-1", task=audit_from_task, args=(), kwargs={})
    finally:
        audit_from_task.pop_request()
    assert seen == ["message-id"]
    assert context.get_trace_id() is None


def test_eager_runs_outside_a_request_differ_and_inside_one_keep_its_id() -> None:
    context.clear_request_context()
    audit_from_task.apply(("test.eager-1",))
    audit_from_task.apply(("test.eager-2",))
    first, second = (AuditEvent.objects.get(action=f"test.eager-{n}").trace_id for n in (1, 2))
    assert first != second and context.get_trace_id() is None
    with context.bind(trace_id="request-id"):
        audit_from_task.apply(("test.eager-3",))
        assert context.get_trace_id() == "request-id"
    assert AuditEvent.objects.get(action="test.eager-3").trace_id == "request-id"
