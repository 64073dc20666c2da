"""Reads of the job ledger."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet

from apps.runners.models import Job, Runner

# Jobs that can still move on their own: queued, leased, or failed with a retry to come.
PENDING_STATUSES = (Job.Status.QUEUED, Job.Status.RUNNING, Job.Status.FAILED)


def job_list(
    *,
    status: str | None = None,
    type: str | None = None,
    runner_id: int | None = None,
    bot_id: int | None = None,
) -> QuerySet[Job]:
    """Newest first, with a stable order for pagination (id breaks created_at ties)."""
    jobs = Job.objects.order_by("-created_at", "-id")
    if status:
        jobs = jobs.filter(status=status)
    if type:
        jobs = jobs.filter(type=type)
    if runner_id:
        jobs = jobs.filter(runner_id=runner_id)
    if bot_id:
        jobs = jobs.filter(runner__bot_id=bot_id)
    return jobs


def job_get(*, job_id: int) -> Job | None:
    return Job.objects.filter(pk=job_id).first()


@dataclass
class JobPage:
    jobs: list[Job]
    number: int
    has_next: bool

    @property
    def has_previous(self) -> bool:
        return self.number > 1


def job_page(
    *,
    page: int = 1,
    per_page: int = 50,
    status: str | None = None,
    type: str | None = None,
    runner_id: int | None = None,
    bot_id: int | None = None,
) -> JobPage:
    """One page of job_list (with each job's runner and bot). No COUNT(*): the ledger grows by a
    tick per runner per bar, and a page only needs to know whether an older page exists."""
    number = max(page, 1)
    start = (number - 1) * per_page
    rows = list(
        job_list(status=status, type=type, runner_id=runner_id, bot_id=bot_id).select_related("runner__bot")[
            start : start + per_page + 1
        ]
    )
    return JobPage(jobs=rows[:per_page], number=number, has_next=len(rows) > per_page)


def job_activity(*, runner_id: int | None = None, bot_id: int | None = None) -> bool:
    """Whether the ledger (or one runner's or bot's part of it) can change without anyone acting:
    a job is queued, leased or due for a retry, or a runner is active (it dispatches ticks)."""
    jobs = Job.objects.filter(status__in=PENDING_STATUSES)
    runners = Runner.objects.filter(status__in=[Runner.Status.STARTING, Runner.Status.RUNNING, Runner.Status.STOPPING])
    if runner_id:
        jobs, runners = jobs.filter(runner_id=runner_id), runners.filter(pk=runner_id)
    if bot_id:
        jobs, runners = jobs.filter(runner__bot_id=bot_id), runners.filter(bot_id=bot_id)
    return runners.exists() or jobs.exists()
