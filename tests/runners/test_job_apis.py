"""GET /api/jobs, GET /api/jobs/{id}, POST /api/jobs/{id}/cancel, POST /api/jobs/{id}/retry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.runners.models import Job
from apps.runners.services.jobs import job_claim
from apps.telemetry.models import AuditEvent

pytestmark = pytest.mark.django_db


def _job(**fields: Any) -> Job:
    defaults = {"type": "noop", "available_at": timezone.now(), "trace_id": "t"}
    return Job.objects.create(**{**defaults, **fields})


def test_a_viewer_lists_jobs_newest_first_with_limit_and_offset(token_client: Any) -> None:
    jobs = [_job(payload={"n": n}) for n in range(5)]
    client = token_client("viewer")
    first = client.get("/api/jobs", {"limit": 2}).json()
    assert first["count"] == 5
    assert [row["id"] for row in first["results"]] == [jobs[4].pk, jobs[3].pk]
    assert first["next"] is not None
    rest = client.get("/api/jobs", {"limit": 2, "offset": 4}).json()
    assert [row["id"] for row in rest["results"]] == [jobs[0].pk]
    row = first["results"][0]
    assert row["status"] == "QUEUED" and row["payload"] == {"n": 4} and row["trace_id"] == "t"


def test_the_list_filters_by_status_and_type(token_client: Any) -> None:
    dead_tick = _job(type="tick", status=Job.Status.DEAD)
    _job(type="noop", status=Job.Status.DEAD)
    _job(type="tick", status=Job.Status.QUEUED)
    body = token_client("viewer").get("/api/jobs", {"status": "DEAD", "type": "tick"}).json()
    assert [row["id"] for row in body["results"]] == [dead_tick.pk]


def test_an_unknown_status_filter_is_a_validation_error(token_client: Any) -> None:
    response = token_client("viewer").get("/api/jobs", {"status": "LOST"})
    body = response.json()
    assert response.status_code == 400 and body["error_code"] == "VALIDATION_ERROR"
    assert "status" in body["fields"] and body["trace_id"] == response["X-Trace-Id"]


def test_anonymous_gets_401_and_a_user_without_a_role_gets_403(api_client: Any, stranger: Any) -> None:
    assert api_client.get("/api/jobs").status_code == 401
    api_client.force_authenticate(stranger)
    assert api_client.get("/api/jobs").json()["error_code"] == "PERMISSION_DENIED"


def test_detail_answers_the_job_and_a_missing_one_is_404(token_client: Any) -> None:
    job = _job(idempotency_key="tick:1:2025-03-03T14:37:00Z")
    client = token_client("viewer")
    body = client.get(f"/api/jobs/{job.pk}").json()
    assert body["id"] == job.pk and body["idempotency_key"] == "tick:1:2025-03-03T14:37:00Z"
    missing = client.get("/api/jobs/987654321")
    assert missing.status_code == 404 and missing.json()["error_code"] == "NOT_FOUND"


def test_an_operator_cancels_a_queued_job_and_the_audit_carries_the_request_trace(token_client: Any) -> None:
    job = _job()
    response = token_client("operator").post(
        f"/api/jobs/{job.pk}/cancel", {"reason": "bad params"}, format="json", headers={"X-Trace-Id": "cancel-1"}
    )
    assert response.status_code == 200
    assert response.json()["status"] == "CANCELLED" and response.json()["trace_id"] == "cancel-1"
    event = AuditEvent.objects.get(action="job.cancel")
    assert event.trace_id == "cancel-1" and event.reason == "bad params"


def test_a_viewer_may_not_cancel_or_retry(token_client: Any) -> None:
    job = _job(status=Job.Status.DEAD)
    client = token_client("viewer")
    assert client.post(f"/api/jobs/{job.pk}/cancel", {}, format="json").status_code == 403
    assert client.post(f"/api/jobs/{job.pk}/retry", {}, format="json").status_code == 403
    assert Job.objects.get(pk=job.pk).status == Job.Status.DEAD


def test_cancelling_a_job_under_a_live_lease_answers_409_with_a_fix(token_client: Any) -> None:
    job = _job()
    job_claim(job_id=job.pk, worker="w", lease_seconds=60)
    response = token_client("operator").post(f"/api/jobs/{job.pk}/cancel", {}, format="json")
    body = response.json()
    assert response.status_code == 409 and body["error_code"] == "JOB_NOT_CANCELLABLE"
    assert "live lease" in body["message"] and body["suggested_fix"] and body["trace_id"]


def test_an_operator_retries_a_dead_job(token_client: Any) -> None:
    job = _job(status=Job.Status.DEAD, attempts=3, error="lease expired after 3 attempts (worker lost)")
    response = token_client("operator").post(f"/api/jobs/{job.pk}/retry", format="json")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["attempts"]) == ("QUEUED", 0)
    assert AuditEvent.objects.filter(action="job.retry", target_id=str(job.pk)).count() == 1


def test_retrying_a_succeeded_job_answers_409(token_client: Any) -> None:
    job = _job(status=Job.Status.SUCCEEDED, finished_at=timezone.now() - timedelta(minutes=1))
    response = token_client("operator").post(f"/api/jobs/{job.pk}/retry", format="json")
    assert response.status_code == 409 and response.json()["error_code"] == "JOB_NOT_RETRYABLE"


def test_cancel_or_retry_of_a_missing_job_is_404(token_client: Any) -> None:
    client = token_client("operator")
    assert client.post("/api/jobs/987654321/cancel", {}, format="json").status_code == 404
    assert client.post("/api/jobs/987654321/retry", format="json").status_code == 404
