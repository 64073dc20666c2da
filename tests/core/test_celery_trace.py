"""A task started from a request runs under the request's trace id, through the real broker."""

from __future__ import annotations

import time
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import transaction

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
