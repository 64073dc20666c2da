"""Celery interfaces of the job ledger (R12): each takes an id or nothing and calls one service.
Services are imported inside the tasks because apps.runners.services.jobs imports this module."""

from __future__ import annotations

import os
from typing import Any

from celery import shared_task
from celery.signals import task_prerun
from django.conf import settings
from django.db import connection

# A periodic message older than this is dropped: when workers come back after an outage, one
# run of each catches up; a backlog of identical runs would only repeat it.
PERIODIC_EXPIRES_SECONDS = 60


@task_prerun.connect
def _replace_a_lost_database_connection(**kwargs: Any) -> None:
    """Before every task of the worker (they share the process's connection): a worker keeps its
    database connection across tasks (CELERY_DB_REUSE_MAX), and Django checks it only around web
    requests. A connection that a database restart or a network failure broke fails the task that
    finds it so (psycopg then marks it closed); without this, every later task would fail on it
    too, until the Django fixup recycles the connection (CELERY_DB_REUSE_MAX tasks later). No
    round trip: psycopg's own flag. An eager task inside a caller's transaction is left alone."""
    raw = connection.connection
    if raw is not None and raw.closed and not connection.in_atomic_block:
        connection.close()


# acks_late is safe here (R14): job_execute claims the row first, so a redelivered or duplicate
# message finds it RUNNING or closed and does nothing. reject_on_worker_lost stays off: a worker
# killed mid-job is the watchdog's to requeue, counted against max_attempts, not the broker's to
# redeliver forever (RELIABILITY J4/J6). The time limits end a job before its lease does, so a
# lease never expires under a live worker (prefork pool; the solo pool cannot enforce them).
@shared_task(
    bind=True,
    acks_late=True,
    ignore_result=True,
    time_limit=settings.JOB_LEASE_SECONDS,
    soft_time_limit=settings.JOB_LEASE_SECONDS * 0.8,
)
def job_run(self: Any, job_id: int) -> None:
    from apps.runners.services.jobs import job_execute

    job_execute(job_id=job_id, worker=f"{self.request.hostname or 'worker'}:{os.getpid()}")


@shared_task(ignore_result=True, expires=PERIODIC_EXPIRES_SECONDS)
def job_watchdog() -> None:
    from apps.runners.services.jobs import job_watchdog as watchdog

    watchdog()


@shared_task(ignore_result=True, expires=PERIODIC_EXPIRES_SECONDS)
def tick_dispatch() -> None:
    from apps.runners.services.jobs import tick_dispatch as dispatch

    dispatch()


@shared_task(ignore_result=True, expires=PERIODIC_EXPIRES_SECONDS)
def reconcile_sweep() -> None:
    from apps.runners.services.runners import reconcile_sweep as sweep

    sweep()
