"""Celery interfaces of the job ledger (R12): each takes an id or nothing and calls one service.
Services are imported inside the tasks because apps.runners.services.jobs imports this module."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from celery import current_app, shared_task
from celery.signals import task_prerun, worker_process_init, worker_process_shutdown
from django.conf import settings
from django.db import connection

# A periodic message older than this is dropped: when workers come back after an outage, one
# run of each catches up; a backlog of identical runs would only repeat it.
PERIODIC_EXPIRES_SECONDS = 60
logger = logging.getLogger(__name__)


@worker_process_init.connect
def _warm_up_market_hours(**kwargs: Any) -> None:
    """Each pool process builds the trading calendars once when it starts (about a second with the
    pandas import), so the first tick of a bar does not pay for it."""
    from apps.market import hours

    hours.warm_up()


def _consumes(queues: set[str]) -> bool:
    """Whether this worker consumes any of `queues` (its -Q, set before its pool processes start)."""
    consume_from = current_app.amqp.queues.consume_from
    return bool(consume_from) and bool(queues & set(consume_from))


@worker_process_init.connect
def _warm_up_the_engine_kernel(**kwargs: Any) -> None:
    """A pool process of the worker that runs backtests (the `backtests` queue: the Procfile's
    backtests worker) loads the compiled engine kernel when it starts (about 1.5 s from var/numba; a
    first compile 15-40 s), so its first backtest does not pay for it inside its time limit. In a
    thread: the process reports itself up at once (prefork waits only a few seconds for that), and a
    backtest that comes meanwhile waits for the same compile (numba compiles under one lock)."""
    from apps.runners.services.jobs import JOB_QUEUES

    if not _consumes(set(JOB_QUEUES.values())):
        return
    threading.Thread(target=_engine_kernel_warm, name="engine-kernel-warm", daemon=True).start()


def _engine_kernel_warm() -> None:
    began = time.monotonic()
    try:
        from apps.trading import engine_kernel

        engine_kernel.warm()
    except Exception:  # the first backtest compiles it then, as without a warm-up
        logger.exception("the engine kernel could not be warmed up")
        return
    logger.info("engine kernel ready in %.1f s", time.monotonic() - began)


@worker_process_shutdown.connect
def _send_the_held_close(**kwargs: Any) -> None:
    """A pool process that ends sends the close it holds for its next claim first (and waits for it)."""
    from apps.runners.services.jobs import job_closes_flush

    job_closes_flush()


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


# Early ack (Celery's default), deliberately: the message only nudges a worker; the job row is the
# truth. A message lost with its worker (acked, never claimed) leaves the row QUEUED, and the
# watchdog republishes it after STALE_QUEUED_AFTER (5 minutes); a worker killed mid-job leaves a
# lease the watchdog requeues, counted against max_attempts (RELIABILITY J4/J6). acks_late would
# add only the broker's own redelivery, after its visibility_timeout (1 hour: later than the
# watchdog), and it costs throughput (a worker takes its next message only after the ack). A
# duplicate or redelivered message finds the row RUNNING or closed and does nothing either way.
# The time limits end a job before its lease does, so a lease never expires under a live worker
# (prefork pool; the solo pool cannot enforce them).
@shared_task(
    bind=True,
    ignore_result=True,
    time_limit=settings.JOB_LEASE_SECONDS,
    soft_time_limit=settings.JOB_LEASE_SECONDS * 0.8,
)
def job_run(self: Any, job_id: int) -> None:
    from apps.runners.services.jobs import job_execute

    # A worker holds the close for its next claim (job_execute's hold_close); an eager run (tests, a
    # shell) is followed by its caller's queries, so it closes at once, as before.
    job_execute(
        job_id=job_id,
        worker=f"{self.request.hostname or 'worker'}:{os.getpid()}",
        hold_close=not self.request.is_eager,
    )


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
