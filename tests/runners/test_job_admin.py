"""The job admin shows the ledger read-only; cancel and retry go through the services."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.runners.models import Job
from apps.telemetry.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


def _job(**fields: Any) -> Job:
    return Job.objects.create(**{"type": "noop", "available_at": timezone.now(), "trace_id": "t", **fields})


def test_it_lists_jobs_and_shows_one_without_a_way_to_edit_it(staff: Client) -> None:
    job = _job(status=Job.Status.DEAD, error="lease expired after 3 attempts (worker lost)")
    listing = staff.get("/admin/runners/job/?status__exact=DEAD")
    assert listing.status_code == 200 and b"Dead-lettered" in listing.content
    page = staff.get(f"/admin/runners/job/{job.pk}/change/")
    assert page.status_code == 200 and b"lease expired after 3 attempts" in page.content
    assert b'name="_save"' not in page.content
    assert staff.get("/admin/runners/job/add/").status_code == 403


def test_the_retry_action_requeues_a_dead_job_through_the_service(staff: Client) -> None:
    dead = _job(status=Job.Status.DEAD, attempts=3)
    done = _job(status=Job.Status.SUCCEEDED, attempts=1)
    response = staff.post(
        "/admin/runners/job/",
        {"action": "retry_jobs", "_selected_action": [dead.pk, done.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert (Job.objects.get(pk=dead.pk).status, Job.objects.get(pk=dead.pk).attempts) == (Job.Status.QUEUED, 0)
    assert Job.objects.get(pk=done.pk).status == Job.Status.SUCCEEDED
    assert AuditEvent.objects.filter(action="job.retry").count() == 1
    assert b"only DEAD, FAILED or CANCELLED jobs can be retried" in response.content


def test_the_cancel_action_cancels_a_queued_job(staff: Client) -> None:
    job = _job()
    staff.post("/admin/runners/job/", {"action": "cancel_jobs", "_selected_action": [job.pk]})
    assert Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED
    assert AuditEvent.objects.get(action="job.cancel").reason == "cancelled in the admin"
