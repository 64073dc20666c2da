"""Reads of the job ledger."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.runners.models import Job


def job_list(*, status: str | None = None, type: str | None = None) -> QuerySet[Job]:
    """Newest first, with a stable order for pagination (id breaks created_at ties)."""
    jobs = Job.objects.order_by("-created_at", "-id")
    if status:
        jobs = jobs.filter(status=status)
    if type:
        jobs = jobs.filter(type=type)
    return jobs


def job_get(*, job_id: int) -> Job | None:
    return Job.objects.filter(pk=job_id).first()
