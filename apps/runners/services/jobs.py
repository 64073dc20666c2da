"""The job ledger (ARCHITECTURE "State and jobs"). Postgres holds every job; Celery carries only
its id. Delivery is at least once; execution is at most once per lease:

- job_enqueue inserts the row (a second enqueue with the same idempotency key returns the first
  job) and publishes the id only after commit.
- job_claim leases one due row with UPDATE … (SELECT … FOR UPDATE SKIP LOCKED) in its own,
  committed transaction. A duplicate or redelivered message finds the row RUNNING or closed and
  does nothing. Its commit does not wait for the disk (see _CLAIM_SQL: what that changes is only
  the attempt count of a claim a database crash loses).
- job_complete and job_fail are fenced by (leased_by, attempts): a worker whose lease was taken
  over closes nothing. job_execute runs the handler and job_complete in one transaction, so a
  fenced-out worker's database writes roll back with its completion. Effects outside Postgres
  (a broker order) need their own idempotency key (client_order_id) and reconciliation.
- A worker holds a close that is a statement of its own for its next claim, which sends both in
  one statement; a thread sends it alone if no claim comes within JOB_CLOSE_HOLD_SECONDS
  (_hold_close: what that changes after a database crash is said there).
- job_watchdog requeues expired leases, or dead-letters them after max_attempts. A job that kills
  its worker every time ends DEAD instead of looping, which Celery's reject_on_worker_lost would
  do (RELIABILITY J6).

Lease and back-off times use the database clock, so workers on machines whose clocks
disagree still agree on when a lease expired.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import psycopg
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.module_loading import import_string
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb

from apps.core import context
from apps.core.audit import audit_record
from apps.core.db import execute_prepared, fetch_prepared, instance_from_values
from apps.core.exceptions import ApplicationError, StateConflict
from apps.runners.models import Job, Runner
from apps.runners.tasks import job_run as job_run_task

logger = logging.getLogger("tradeops.jobs")

# type -> handler, as dotted paths imported on first use (like the integrations registry).
# A handler takes the claimed Job and returns a JSON-serialisable result; it runs in the same
# transaction as the job's completion, except the types in OWN_TRANSACTIONS.
JOB_HANDLERS: dict[str, str] = {
    "noop": "apps.runners.services.jobs.job_handle_noop",
    "tick": "apps.runners.services.tick.job_handle_tick",
    "reconcile": "apps.runners.services.runners.job_handle_reconcile",
    "backtest.run": "apps.backtests.services.backtest_run",
    "strategylab.run": "apps.strategylab.services.experiment_backtest_run",
}
# Handlers that commit their own work as they go, and so run outside the job's transaction: the
# tick must commit an order row before it sends the order (a send inside an open transaction that
# a crash rolls back would leave an order at the broker with no row). They are idempotent by
# their own keys (one trace per runner and bar, one order per intent), so a lost lease or a second
# run changes nothing; the close is then one fenced statement.
# A backtest commits its progress as it goes (an operator watches it, and its cancel is read from
# the row) and its result at the end, fenced by the job's lease (apps/backtests/services.py).
OWN_TRANSACTIONS: frozenset[str] = frozenset({"tick", "reconcile", "backtest.run", "strategylab.run"})
# type -> the Celery queue its messages go to. Types not listed go to the default queue ("celery"),
# which the `worker` process consumes: ticks stay there, latency first. CPU-heavy work has its own
# queue and its own worker process (Procfile), so a backtest never delays a tick.
JOB_QUEUES: dict[str, str] = {"backtest.run": "backtests", "strategylab.run": "backtests"}
# type -> (setting naming the job's hard time limit in seconds). The default limits of `job_run`
# end a job before its lease (JOB_LEASE_SECONDS) does; a type listed here may run longer because
# its handler extends its own lease while it works (fenced: apps/backtests/services.py).
JOB_TIME_LIMIT_SETTINGS: dict[str, str] = {
    "backtest.run": "BACKTEST_JOB_TIME_LIMIT_SECONDS",
    "strategylab.run": "BACKTEST_JOB_TIME_LIMIT_SECONDS",
}
# type -> a function(job) told when the ledger closes a job of that type without its handler:
# dead-lettered (the watchdog, or attempts used up) or cancelled by an operator. The app that owns
# the work keeps its own rows true (a backtest whose job died is FAILED, not RUNNING for ever).
JOB_CLOSED_HOOKS: dict[str, str] = {
    "backtest.run": "apps.backtests.services.backtest_job_closed",
    "strategylab.run": "apps.strategylab.services.experiment_job_closed",
}

RETRY_BACKOFF_BASE_SECONDS = 2
# Far below the broker's visibility_timeout, so a retry's delayed message is never redelivered
# early by the broker (RELIABILITY J5).
RETRY_BACKOFF_MAX_SECONDS = 300
# The watchdog republishes a due FAILED job that its delayed message has not picked up by then.
RETRY_REPUBLISH_GRACE = timedelta(seconds=30)
# ... and a QUEUED job nobody claimed for this long: its message may be lost (a Redis restart, a
# publish that failed after commit). At most once per period per job; a duplicate is a no-op.
STALE_QUEUED_AFTER = timedelta(minutes=5)
WATCHDOG_BATCH = 500

_TIMEFRAME = re.compile(r"^([1-9][0-9]*)([mhd])$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}


class JobPermanentError(Exception):
    """Raised by a handler for a failure that no retry can fix: the job is dead-lettered at once."""


class JobRetryLater(Exception):
    """Raised by a handler that should run again later (e.g. a tick whose bar the provider does not
    have yet): not an error, no stack trace; it counts as an attempt. `after_seconds` overrides the
    exponential back-off."""

    def __init__(self, message: str, *, after_seconds: float | None = None) -> None:
        super().__init__(message)
        self.after_seconds = after_seconds


class UnknownJobType(ApplicationError):
    status_code = 400
    error_code = "VALIDATION_ERROR"
    default_suggested_fix = "Use one of the registered job types."


class IdempotencyKeyReused(ApplicationError):
    status_code = 422
    error_code = "IDEMPOTENCY_KEY_REUSED"
    default_suggested_fix = "Use a new idempotency key for a different job."


class JobNotCancellable(StateConflict):
    error_code = "JOB_NOT_CANCELLABLE"


class JobNotRetryable(StateConflict):
    error_code = "JOB_NOT_RETRYABLE"


class _LeaseLost(Exception):
    """The completion was fenced out: another worker holds the job now (or it was cancelled)."""


# ---------------------------------------------------------------------------------------------
# Enqueue and publish
# ---------------------------------------------------------------------------------------------
def _publish(job_id: int, *, type: str, countdown: float | None = None) -> None:
    # Only the id crosses the broker, and only once the row is committed (R13, RELIABILITY J4).
    # The type picks the queue (and, for long jobs, the time limits); the worker reads the rest.
    options: dict[str, Any] = {"countdown": countdown} if countdown else {}
    queue = JOB_QUEUES.get(type)
    if queue is not None:
        options["queue"] = queue
    limit_setting = JOB_TIME_LIMIT_SETTINGS.get(type)
    if limit_setting is not None:
        limit = getattr(settings, limit_setting)
        options.update(time_limit=limit, soft_time_limit=limit * 0.9)
    job_run_task.apply_async_on_commit(args=[job_id], **options)


def _closed_outside_handler(job: Job) -> None:
    """Tell the owning app that the ledger closed this job without its handler (JOB_CLOSED_HOOKS)."""
    dotted = JOB_CLOSED_HOOKS.get(job.type)
    if dotted is not None:
        import_string(dotted)(job)


def job_enqueue(
    *,
    type: str,
    payload: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    runner: Runner | None = None,
    max_attempts: int = 3,
) -> Job:
    job, _ = _job_enqueue(
        type=type, payload=payload, idempotency_key=idempotency_key, runner=runner, max_attempts=max_attempts
    )
    return job


@transaction.atomic
def _job_enqueue(
    *,
    type: str,
    payload: dict[str, Any] | None,
    idempotency_key: str | None,
    runner: Runner | None,
    max_attempts: int,
) -> tuple[Job, bool]:
    """(job, created). An existing idempotency key returns the existing job and publishes nothing."""
    if type not in JOB_HANDLERS:
        known = ", ".join(sorted(JOB_HANDLERS))
        raise UnknownJobType(f"No handler is registered for job type {type!r} (known: {known}).")
    if max_attempts < 1:
        raise ApplicationError(
            "max_attempts must be at least 1.",
            error_code="VALIDATION_ERROR",
            status_code=400,
            extra={"fields": {"max_attempts": ["Ensure this value is greater than or equal to 1."]}},
        )
    if idempotency_key is not None:
        # Looked up first so the common repeat (tick dispatch every few seconds in the same bar)
        # costs a read, not a unique violation in the server log.
        existing = Job.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return _same_job(existing, type), False
    try:
        with transaction.atomic():  # a savepoint: a concurrent insert of the same key loses here
            job = Job.objects.create(
                type=type,
                payload=payload or {},
                idempotency_key=idempotency_key,
                runner=runner,
                max_attempts=max_attempts,
                available_at=timezone.now(),
                trace_id=context.ensure_trace_id(),
            )
    except IntegrityError:
        if idempotency_key is None:
            raise
        return _same_job(Job.objects.get(idempotency_key=idempotency_key), type), False
    _publish(job.pk, type=job.type)
    return job, True


@transaction.atomic
def job_enqueue_many(*, type: str, items: Sequence[tuple[dict[str, Any], str]], max_attempts: int = 3) -> list[Job]:
    """Many new jobs of one type in bulk INSERTs (a backtest matrix's runs), in the order given, each
    published after commit. `items` are (payload, idempotency key); every key must be new (the
    caller creates the rows they name in the same transaction): a key already taken raises
    IntegrityError and nothing is enqueued."""
    if type not in JOB_HANDLERS:
        known = ", ".join(sorted(JOB_HANDLERS))
        raise UnknownJobType(f"No handler is registered for job type {type!r} (known: {known}).")
    now = timezone.now()
    trace_id = context.ensure_trace_id()
    jobs = Job.objects.bulk_create(
        [
            Job(
                type=type,
                payload=payload,
                idempotency_key=key,
                max_attempts=max_attempts,
                available_at=now,
                trace_id=trace_id,
            )
            for payload, key in items
        ],
        batch_size=2000,
    )
    for job in jobs:
        _publish(job.pk, type=type)
    return jobs


def _same_job(existing: Job, type: str) -> Job:
    if existing.type != type:
        raise IdempotencyKeyReused(
            f"Idempotency key {existing.idempotency_key!r} already belongs to job {existing.pk} of type "
            f"{existing.type!r}, not {type!r}."
        )
    return existing


# ---------------------------------------------------------------------------------------------
# Claim, complete, fail
# ---------------------------------------------------------------------------------------------
# statement_timestamp(): the clock Django's Now() reads on PostgreSQL, so every lease and back-off
# comparison uses one clock (the database's).
_DUE = "(status = 'QUEUED' OR (status = 'FAILED' AND available_at <= statement_timestamp()))"
# What a worker needs of the job it claimed; the other fields load on access.
_CLAIMED = ("id", "type", "status", "attempts", "max_attempts", "leased_by", "lease_expires_at", "runner_id")
_CLAIMED += ("payload", "trace_id", "idempotency_key", "available_at", "created_at", "started_at")

_CANDIDATE = f"""
    SELECT id FROM {Job._meta.db_table}
    WHERE {_DUE} {{only_id}}
    ORDER BY available_at, id
    LIMIT 1
    FOR UPDATE SKIP LOCKED
"""
_LEASE = f"""
UPDATE {Job._meta.db_table} AS job
SET status = 'RUNNING',
    attempts = job.attempts + 1,
    lease_expires_at = statement_timestamp() + make_interval(secs => %(lease_seconds)s),
    leased_by = %(worker)s,
    started_at = statement_timestamp(),
    finished_at = NULL,
    updated_at = statement_timestamp()
FROM candidate{{unflushed}}
WHERE job.id = candidate.id
RETURNING {", ".join(f"job.{column}" for column in _CLAIMED)}
"""
_UNFLUSHED = "(SELECT set_config('synchronous_commit', 'off', true)) AS unflushed"
_CLAIM_SQL = f"WITH candidate AS ({_CANDIDATE}){_LEASE.format(unflushed=', ' + _UNFLUSHED)}"
# `unflushed`: this transaction's commit does not wait for its WAL to reach the disk (SET LOCAL
# synchronous_commit = off, for the claim's own transaction only; the handler's commits stay
# synchronous, and so does a close sent alone; a close that goes with a claim: see _hold_close).
# The lease is committed, and so visible to every other worker and the watchdog, when the
# statement returns, exactly as before; what changes is only when it becomes durable: at the WAL
# writer's next flush (wal_writer_delay, 200 ms by default, at most three times that), or at once
# with any later synchronous commit (the handler's first write, a close sent alone), which flushes
# the WAL up to and including the claim. A database crash inside that window
# loses the claim: the job is QUEUED again, as if its message had been lost, and the watchdog
# republishes it (STALE_QUEUED_AFTER). Nothing runs twice that would not have anyway: the crash
# broke the worker's connection, so that execution can neither write nor close (a claim that did
# not survive can never be closed: the row is no longer RUNNING), and a job in flight at a crash is
# run again in both cases. The one difference: that attempt is not counted toward max_attempts.
# Why: a synchronous commit costs a flush and the wake-ups around it, which on a box whose CPUs
# are saturated take milliseconds (bench/job_ledger.py, loaded rounds: the claim's flush was the
# largest single cost of a job there).
_CLAIM_ONE_SQL = _CLAIM_SQL.format(only_id="AND id = %(job_id)s")
_CLAIM_NEXT_SQL = _CLAIM_SQL.format(only_id="")

_COMPLETE_SQL = f"""
UPDATE {Job._meta.db_table}
SET status = 'SUCCEEDED', result = %(result)s, lease_expires_at = NULL,
    finished_at = statement_timestamp() - make_interval(secs => %(held_seconds)s),
    updated_at = statement_timestamp()
WHERE id = %(id)s AND status = 'RUNNING' AND leased_by = %(leased_by)s AND attempts = %(attempts)s
"""


# A worker's close held for its next claim (_hold_close), and that claim, in one statement: one
# round trip and one transaction for the two (its commit does not wait for the flush either: see
# _hold_close for what that changes). `closed` is a data-modifying CTE, so it runs whether or not a
# job is claimed; the two UPDATEs never touch the same row (the closed row is RUNNING, never due).
_CLOSE_THEN_CLAIM_SQL = f"""
WITH closed AS (
    UPDATE {Job._meta.db_table}
    SET status = 'SUCCEEDED', result = %(close_result)s, lease_expires_at = NULL,
        finished_at = statement_timestamp() - make_interval(secs => %(close_held_seconds)s),
        updated_at = statement_timestamp()
    WHERE id = %(close_id)s AND status = 'RUNNING' AND leased_by = %(close_leased_by)s
        AND attempts = %(close_attempts)s
    RETURNING id
),
candidate AS ({_CANDIDATE.format(only_id="AND id = %(job_id)s")}),
claimed AS ({_LEASE.format(unflushed="")})
SELECT (SELECT count(*) FROM closed), claimed.*
FROM {_UNFLUSHED} LEFT JOIN claimed ON true
"""


def job_claim(*, job_id: int | None = None, worker: str, lease_seconds: float) -> Job | None:
    """Lease one due job (QUEUED, or FAILED whose back-off has passed): the given one, else the
    oldest. Returns None when there is nothing to claim: the job is running under another lease,
    closed, cancelled, not due yet, or locked by a concurrent claimer (SKIP LOCKED never waits).

    Its own transaction: the lease is committed before any work starts (one statement, one round
    trip). Called inside a caller's transaction it raises (durable), rather than take a lease that
    nobody else can see until that transaction commits."""
    sql = _CLAIM_ONE_SQL if job_id is not None else _CLAIM_NEXT_SQL
    params: dict[str, Any] = {"job_id": job_id, "lease_seconds": lease_seconds, "worker": worker}
    if connection.get_autocommit():
        # One statement in autocommit: committed when it returns. This worker's held close goes with it.
        held = _held_close.take() if job_id is not None else None
        rows = _close_then_claim(held, params) if held is not None else fetch_prepared(sql, params)
    else:
        with transaction.atomic(durable=True):  # raises inside a caller's transaction
            rows = fetch_prepared(sql, params)
    if not rows:
        return None
    values = dict(zip(_CLAIMED, rows[0], strict=True))
    if isinstance(values["payload"], str):  # Django's connection loads jsonb as text
        values["payload"] = json.loads(values["payload"])
    return instance_from_values(Job, values)


def _fenced(job: Job) -> QuerySet[Job]:
    """The job as its lease holder claimed it. attempts is the fencing token: it grows on every
    claim, so even the same worker name on a later claim does not match."""
    return Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, leased_by=job.leased_by, attempts=job.attempts)


def job_complete(*, job: Job, result: dict[str, Any] | None = None) -> bool:
    """Close a claimed job as SUCCEEDED. False (and nothing written) when the caller no longer
    holds the lease (the same condition as _fenced, as one prepared statement: it runs per job)."""
    closed = execute_prepared(
        _COMPLETE_SQL,
        {
            "result": Jsonb(result) if result is not None else None,
            "id": job.pk,
            "leased_by": job.leased_by,
            "attempts": job.attempts,
            "held_seconds": 0.0,
        },
    )
    if closed:
        job.status, job.result, job.lease_expires_at = Job.Status.SUCCEEDED, result, None
    return closed == 1


def retry_backoff_seconds(attempts: int) -> int:
    return min(RETRY_BACKOFF_BASE_SECONDS * 2 ** max(attempts - 1, 0), RETRY_BACKOFF_MAX_SECONDS)


@transaction.atomic
def job_fail(*, job: Job, error: str, permanent: bool = False, backoff: float | None = None) -> str | None:
    """Close a claimed attempt as failed: FAILED with exponential back-off while attempts remain
    (and republished for then), else DEAD. Returns the new status, or None when the caller no
    longer holds the lease (nothing written)."""
    error = error[:10_000]
    if permanent or job.attempts >= job.max_attempts:
        status = Job.Status.DEAD
        closed = _fenced(job).update(
            status=status, error=error, finished_at=Now(), lease_expires_at=None, updated_at=Now()
        )
    else:
        status = Job.Status.FAILED
        backoff = retry_backoff_seconds(job.attempts) if backoff is None else backoff
        closed = _fenced(job).update(
            status=status,
            error=error,
            available_at=Now() + timedelta(seconds=backoff),
            lease_expires_at=None,
            updated_at=Now(),
        )
    if not closed:
        return None
    job.status, job.error, job.lease_expires_at = status, error, None
    if status == Job.Status.DEAD:
        _dead_lettered(job, by="system:jobs")
    else:
        # A second late: the retry is due by the database's clock, which the worker's may trail.
        _publish(job.pk, type=job.type, countdown=backoff + 1)
    return status


def _dead_lettered(job: Job, *, by: str) -> None:
    # The alert: an operator sees it in the audit trail and the job list (status=DEAD).
    logger.error("job %s (%s) dead-lettered after %s attempts: %s", job.pk, job.type, job.attempts, job.error)
    audit_record(
        action="job.dead_lettered",
        actor_label=by,
        target=job,
        after={"status": Job.Status.DEAD, "attempts": job.attempts, "type": job.type, "error": job.error},
    )
    _closed_outside_handler(job)


# ---------------------------------------------------------------------------------------------
# Execute
# ---------------------------------------------------------------------------------------------
def _handler_for(type: str) -> Callable[[Job], dict[str, Any] | None] | None:
    dotted = JOB_HANDLERS.get(type)
    return import_string(dotted) if dotted else None


def _nothing_to_commit() -> bool:
    """True inside an atomic block that no statement has reached yet (psycopg sends BEGIN with
    the first one) and that holds no on_commit callback: its commit or rollback would change
    nothing."""
    raw = connection.connection
    return raw is not None and raw.info.transaction_status == TransactionStatus.IDLE and not connection.run_on_commit


class _HeldClose(NamedTuple):
    job_id: int
    leased_by: str
    attempts: int
    result: dict[str, Any] | None
    since: float  # time.monotonic() when it was held


class _CloseHolder:
    """A worker process's close held for the claim of its next job (at most one: a claim takes it),
    and the thread that sends it alone, on a connection of its own, when no claim took it within
    JOB_CLOSE_HOLD_SECONDS. While closes keep coming the thread wakes about once per
    JOB_CLOSE_HOLD_SECONDS, not once per job; after a quiet period it sleeps until the next one."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.sending = threading.Lock()  # the sender connection, between the thread and job_closes_flush
        self.held: _HeldClose | None = None
        self.pid = 0
        self.idle = False  # the thread waits without a deadline: a new held close must wake it
        self.holds = 0
        self.params: dict[str, Any] = {}
        self.conn: psycopg.Connection[Any] | None = None

    def hold(self, close: _HeldClose) -> None:
        if self.pid != os.getpid():  # first use in this process, or in a forked child: nothing of the parent's
            self.cond, self.sending = threading.Condition(), threading.Lock()
            self.held, self.conn, self.idle, self.pid = None, None, False, os.getpid()
            self.params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
            threading.Thread(target=self._watch, name="tradeops-held-close", daemon=True).start()
        with self.cond:
            previous, self.held = self.held, close
            self.holds += 1
            if self.idle:
                self.cond.notify()
        if previous is not None:  # not taken by a claim (job_execute claims before it holds): sent now
            self.send(previous)

    def take(self) -> _HeldClose | None:
        if self.held is None or self.pid != os.getpid():  # the common miss, without the lock
            return None
        with self.cond:
            close, self.held = self.held, None
        return close

    def put_back(self, close: _HeldClose) -> None:
        """A close whose statement failed (it may or may not have committed): the thread sends it
        again, fenced, so it closes nothing if it had."""
        with self.cond:
            if self.held is None:
                self.held = close
                if self.idle:
                    self.cond.notify()
                return
        self.send(close)

    def _watch(self) -> None:
        while True:
            with self.cond:
                while True:
                    bound = settings.JOB_CLOSE_HOLD_SECONDS
                    close = self.held
                    if close is not None:
                        left = close.since + bound - time.monotonic()
                        if left <= 0:
                            self.held = None
                            break
                        self.cond.wait(left)
                        continue
                    # Nothing held now, which while jobs keep coming is most of the time (a claim took
                    # it): the thread looks again a period later, and sleeps until hold() wakes it only
                    # after a whole period in which nothing was held, so a busy worker never wakes it.
                    seen = self.holds
                    self.cond.wait(bound)
                    if self.held is None and self.holds == seen:
                        self.idle = True
                        while self.held is None:
                            self.cond.wait()
                        self.idle = False
            try:
                self.send(close)
            except Exception:  # the thread must outlive any one close; the watchdog recovers that job
                logger.exception("job %s: its held close could not be sent", close.job_id)

    def send(self, close: _HeldClose) -> None:
        """The close alone, fenced, in a transaction of its own whose commit waits for the flush."""
        with self.sending:
            for attempt in (1, 2):
                try:
                    if self.conn is None or self.conn.closed:
                        self.conn = psycopg.connect(**self.params, autocommit=True)
                    closed = self.conn.execute(_COMPLETE_SQL, _complete_params(close)).rowcount
                    break
                except psycopg.OperationalError as exc:  # a restart, or the server ended it: once more, anew
                    if self.conn is not None:
                        self.conn.close()
                    self.conn = None
                    if attempt == 2:
                        logger.warning(
                            "job %s: the close of attempt %s could not be sent (%s); the job stays RUNNING until "
                            "its lease expires, then the watchdog runs it again",
                            close.job_id,
                            close.attempts,
                            exc,
                        )
                        return
        if closed != 1:
            logger.warning("job %s: lease lost on attempt %s; nothing was closed", close.job_id, close.attempts)


_held_close = _CloseHolder()


def _complete_params(close: _HeldClose) -> dict[str, Any]:
    return {
        "result": Jsonb(close.result) if close.result is not None else None,
        "id": close.job_id,
        "leased_by": close.leased_by,
        "attempts": close.attempts,
        # finished_at is when the handler returned: the database's clock at the close, less how long
        # the close was held (a duration on the worker's clock, so the two clocks need not agree).
        "held_seconds": max(time.monotonic() - close.since, 0.0),
    }


def _close_then_claim(close: _HeldClose, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The held close and the claim in one statement (_CLOSE_THEN_CLAIM_SQL): the claim's row, if
    any. The close's outcome is known at once: one the lease fenced out is logged."""
    try:
        rows = fetch_prepared(
            _CLOSE_THEN_CLAIM_SQL,
            {**params, **{f"close_{k}": v for k, v in _complete_params(close).items()}},
        )
    except Exception:
        _held_close.put_back(close)
        raise
    closed, *claimed = rows[0]
    if closed != 1:
        logger.warning("job %s: lease lost on attempt %s; nothing was closed", close.job_id, close.attempts)
    return [tuple(claimed)] if claimed[0] is not None else []


def _hold_close(job: Job, result: dict[str, Any] | None) -> bool:
    """Hold the fenced close of a job that succeeded for this worker's next claim, which sends both
    in one statement (_close_then_claim); the thread of _CloseHolder sends it alone if no claim
    comes within JOB_CLOSE_HOLD_SECONDS. False, with nothing held (the caller closes now, waiting
    for it), when the close must be part of an open transaction (Django's connection is not in
    autocommit, or what the handler did is not committed yet), when holding is off
    (JOB_CLOSE_HOLD_SECONDS = 0), on the job's last attempt, and for the types with a queue of their
    own (JOB_QUEUES: a backtest), which run for long, so one round trip is nothing to them, and
    whose page an operator watches: their job reads SUCCEEDED as soon as their own row does.

    Why: on a box whose CPUs are saturated, every process a job wakes waits for a CPU, and a commit
    that waits for the WAL flush waits for the disk and the wake-ups around it too
    (bench/job_ledger.py, loaded rounds). A close of its own was one more statement, one more
    backend woken and one more flush per job; held, it costs none of them.

    What changes: the row reads RUNNING until the next claim (at most JOB_CLOSE_HOLD_SECONDS after
    the handler returned), and the close that went with a claim commits without waiting for the
    flush, like the claim: durable at the WAL writer's next flush (within 3 × wal_writer_delay,
    600 ms by default) or at any later synchronous commit. A database crash inside that window
    loses it: the job is RUNNING again under its old lease (or QUEUED, if its claim was lost too),
    and when the lease expires the watchdog requeues it and it runs again, one more attempt counted,
    as a job whose worker died just before its close does. Its handler's own work is not lost (it
    committed, and flushed, before the close was held), and handlers are idempotent by their own
    keys (one trace per runner and bar, one order per intent, a backtest's result fenced by its
    lease). Not on a job's last attempt: there a lost close would dead-letter a job that succeeded,
    so that close is sent at once and waits for the flush. A close sent by the thread waits for the
    flush too. A worker process that ends sends its held close first (job_closes_flush); one killed
    between jobs (SIGKILL, out of memory) loses it, and the watchdog runs that job again as above."""
    if settings.JOB_CLOSE_HOLD_SECONDS <= 0 or job.attempts >= job.max_attempts or job.type in JOB_QUEUES:
        return False
    if connection.in_atomic_block or not connection.get_autocommit():
        return False
    raw = connection.connection
    if raw is not None and raw.info.transaction_status != TransactionStatus.IDLE:
        return False
    _held_close.hold(_HeldClose(job.pk, job.leased_by, job.attempts, result, time.monotonic()))
    return True


def job_closes_flush() -> None:
    """Send this process's held close now, and wait for it (and for one the thread is sending):
    when the worker process ends, and in tests."""
    close = _held_close.take()
    if close is not None:
        _held_close.send(close)
    with _held_close.sending:
        pass


def job_execute(*, job_id: int, worker: str, hold_close: bool = False) -> Job | None:
    """Claim → handler → complete or fail. Returns the job as this worker left it, or None when
    it was not claimable (a duplicate delivery, a cancelled or finished job): nothing happens.

    `hold_close` (a worker's job_run): when the close is a statement of its own (the handler
    committed its own work, or left nothing to commit), it is held for the worker's next claim
    (_hold_close); the job is then returned still marked RUNNING in memory."""
    job = job_claim(job_id=job_id, worker=worker, lease_seconds=settings.JOB_LEASE_SECONDS)
    if job is None:
        logger.info("job %s not claimable (running elsewhere, closed or not due): nothing to do", job_id)
        return None
    with context.bind(trace_id=job.trace_id):
        handler = _handler_for(job.type)
        if handler is None:
            job_fail(
                job=job,
                error=f"unknown job type {job.type!r}: no handler is registered "
                f"(known: {', '.join(sorted(JOB_HANDLERS))})",
                permanent=True,
            )
            return job
        try:
            if job.type in OWN_TRANSACTIONS:
                result = handler(job)
                if hold_close and _hold_close(job, result):
                    return job
                if not job_complete(job=job, result=result):
                    raise _LeaseLost
                return job
            with transaction.atomic():
                result = handler(job)
                untouched = _nothing_to_commit()
                if not untouched and not job_complete(job=job, result=result):
                    raise _LeaseLost
            # A handler that sent nothing to the database and left nothing to run on commit has
            # nothing to roll back if the lease was lost: the close alone is the transaction, one
            # statement in autocommit (one round trip instead of BEGIN, UPDATE and COMMIT).
            if untouched and hold_close and _hold_close(job, result):
                return job
            if untouched and not job_complete(job=job, result=result):
                raise _LeaseLost
        except _LeaseLost:
            logger.warning("job %s: lease lost on attempt %s; its writes rolled back", job.pk, job.attempts)
        except JobPermanentError as exc:
            job_fail(job=job, error=f"{type(exc).__name__}: {exc}", permanent=True)
        except JobRetryLater as exc:
            logger.info("job %s (%s) will run again after its back-off: %s", job.pk, job.type, exc)
            job_fail(job=job, error=f"retry later: {exc}", backoff=exc.after_seconds)
        except Exception as exc:
            logger.exception("job %s (%s) failed on attempt %s", job.pk, job.type, job.attempts)
            job_fail(job=job, error=f"{type(exc).__name__}: {exc}")
    return job


# ---------------------------------------------------------------------------------------------
# Watchdog
# ---------------------------------------------------------------------------------------------
@transaction.atomic
def job_watchdog(*, now: datetime | None = None) -> dict[str, list[int]]:
    """Expired leases: requeued (and republished) while attempts remain, else DEAD. Due jobs that
    their message has not run (a FAILED job past its back-off plus a grace, a QUEUED job unclaimed
    for STALE_QUEUED_AFTER): republished. `now` defaults to the database clock. Safe to run
    concurrently: rows another watchdog holds are skipped."""
    clock: Any = now if now is not None else Now()
    expired = list(
        Job.objects.select_for_update(skip_locked=True)
        .filter(status=Job.Status.RUNNING, lease_expires_at__lt=clock)
        .order_by("lease_expires_at")
        .only("id", "type", "attempts", "max_attempts", "leased_by", "lease_expires_at")[:WATCHDOG_BATCH]
    )
    report: dict[str, list[int]] = {"requeued": [], "dead": [], "republished": []}
    for job in expired:
        lost = {"leased_by": job.leased_by, "attempts": job.attempts, "lease_expired_at": job.lease_expires_at}
        if job.attempts < job.max_attempts:
            Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
                status=Job.Status.QUEUED,
                leased_by="",
                lease_expires_at=None,
                available_at=clock,
                error=f"lease expired on attempt {job.attempts} (worker {job.leased_by} lost)",
                updated_at=Now(),
            )
            audit_record(action="job.requeued", actor_label="system:watchdog", target=job, after=_jsonable(lost))
            _publish(job.pk, type=job.type)
            report["requeued"].append(job.pk)
        else:
            job.error = f"lease expired after {job.attempts} attempts (worker lost); last worker {job.leased_by}"
            Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
                status=Job.Status.DEAD, lease_expires_at=None, error=job.error, finished_at=Now(), updated_at=Now()
            )
            _dead_lettered(job, by="system:watchdog")
            report["dead"].append(job.pk)

    # The broker is only transport: a due job whose message was lost is published again.
    overdue = list(
        Job.objects.select_for_update(skip_locked=True)
        .filter(
            Q(status=Job.Status.FAILED, available_at__lt=clock - RETRY_REPUBLISH_GRACE)
            | Q(status=Job.Status.QUEUED, available_at__lt=clock - STALE_QUEUED_AFTER)
        )
        .values_list("id", "type")[:WATCHDOG_BATCH]
    )
    if overdue:
        ids = [job_id for job_id, _ in overdue]
        # available_at moves to now: the next republish of the same job is a period away.
        Job.objects.filter(pk__in=ids).update(status=Job.Status.QUEUED, available_at=clock, updated_at=Now())
        for job_id, job_type in overdue:
            _publish(job_id, type=job_type)
        report["republished"] = ids
    if report["requeued"] or report["dead"]:
        logger.warning("job watchdog: requeued %s, dead-lettered %s", report["requeued"], report["dead"])
    return report


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in values.items()}


# ---------------------------------------------------------------------------------------------
# Operator actions
# ---------------------------------------------------------------------------------------------
def _snapshot(job: Job) -> dict[str, Any]:
    return {"status": job.status, "attempts": job.attempts, "error": job.error}


@transaction.atomic
def job_cancel(*, job: Job, actor: Any, reason: str = "") -> Job:
    """QUEUED or FAILED → CANCELLED; its message, when delivered, finds nothing to claim. A RUNNING
    job is refused while its lease is live (a tick cannot be stopped halfway; stopping or killing
    the bot is how its trading stops). Once the lease has expired, its worker is gone and the job
    may be cancelled; a late completion from that worker is fenced out."""
    locked = Job.objects.select_for_update().get(pk=job.pk)
    before = _snapshot(locked)
    cancellable = Q(status__in=[Job.Status.QUEUED, Job.Status.FAILED]) | Q(
        status=Job.Status.RUNNING, lease_expires_at__lt=Now()
    )
    moved = Job.objects.filter(cancellable, pk=job.pk).update(
        status=Job.Status.CANCELLED, lease_expires_at=None, finished_at=Now(), updated_at=Now()
    )
    if not moved:
        if locked.status == Job.Status.RUNNING:
            raise JobNotCancellable(
                f"Job {job.pk} is running under a live lease (held by {locked.leased_by} until "
                f"{locked.lease_expires_at:%Y-%m-%dT%H:%M:%SZ}).",
                suggested_fix="Wait for it to finish, or stop or kill the bot to stop its ticks. A job whose "
                "worker is lost can be cancelled once its lease expires.",
            )
        raise JobNotCancellable(
            f"Job {job.pk} is {locked.status}; only QUEUED or FAILED jobs can be cancelled.",
            suggested_fix="Nothing to cancel. A DEAD or CANCELLED job can be retried instead.",
        )
    job.refresh_from_db()
    audit_record(action="job.cancel", actor=actor, target=job, before=before, after=_snapshot(job), reason=reason)
    _closed_outside_handler(job)
    return job


_CANCEL_QUEUED_SQL = f"""
UPDATE {Job._meta.db_table}
SET status = 'CANCELLED', lease_expires_at = NULL, finished_at = statement_timestamp(),
    updated_at = statement_timestamp()
WHERE id = ANY(%s) AND status IN ('QUEUED', 'FAILED')
RETURNING id
"""


def job_cancel_queued(*, job_ids: Sequence[int]) -> list[int]:
    """QUEUED or FAILED (waiting for a retry) → CANCELLED in one statement, for a caller that cancels
    many jobs together with the work they carry (a backtest matrix) and audits that once itself: no
    audit row and no JOB_CLOSED_HOOKS call per job. A RUNNING job is left to its handler. Answers
    the ids it cancelled; a message still on its way finds nothing to claim."""
    if not job_ids:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_CANCEL_QUEUED_SQL, [list(job_ids)])
        return sorted(row[0] for row in cursor.fetchall())


@transaction.atomic
def job_retry(*, job: Job, actor: Any) -> Job:
    """DEAD, FAILED or CANCELLED → QUEUED with attempts reset to 0, republished."""
    locked = Job.objects.select_for_update().get(pk=job.pk)
    before = _snapshot(locked)
    retryable = [Job.Status.DEAD, Job.Status.FAILED, Job.Status.CANCELLED]
    moved = Job.objects.filter(pk=job.pk, status__in=retryable).update(
        status=Job.Status.QUEUED,
        attempts=0,
        available_at=Now(),
        leased_by="",
        lease_expires_at=None,
        error="",
        result=None,
        started_at=None,
        finished_at=None,
        updated_at=Now(),
    )
    if not moved:
        raise JobNotRetryable(
            f"Job {job.pk} is {locked.status}; only DEAD, FAILED or CANCELLED jobs can be retried.",
            suggested_fix="A QUEUED or RUNNING job will run (or is running); a SUCCEEDED job is done.",
        )
    job.refresh_from_db()
    audit_record(action="job.retry", actor=actor, target=job, before=before, after=_snapshot(job))
    _publish(job.pk, type=job.type)
    return job


# ---------------------------------------------------------------------------------------------
# Ticks
# ---------------------------------------------------------------------------------------------
def timeframe_seconds(timeframe: str) -> int | None:
    """'1m' → 60, '15m' → 900, '1h' → 3600, '1d' → 86400; None when it is not a timeframe."""
    match = _TIMEFRAME.match(timeframe or "")
    return int(match[1]) * _UNIT_SECONDS[match[2]] if match else None


def last_closed_bar(now: datetime, seconds: int) -> datetime:
    """The close time of the last bar that has closed at `now`: now floored to the timeframe
    (bars aligned to the Unix epoch, so daily bars close at 00:00 UTC)."""
    return datetime.fromtimestamp(int(now.timestamp()) // seconds * seconds, tz=UTC)


def tick_key(*, runner_id: int, bar_ts: datetime) -> str:
    return f"tick:{runner_id}:{_bar_label(bar_ts)}"


def _bar_label(bar_ts: datetime) -> str:
    return bar_ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def tick_enqueue(*, runner: Runner, bar_ts: datetime) -> tuple[Job, bool]:
    """The one tick job of (runner, bar): (job, created). The payload carries the runner's
    generation, so a tick dispatched before a stop or restart does nothing."""
    return _job_enqueue(
        type="tick",
        payload=_tick_payload(runner, bar_ts),
        idempotency_key=tick_key(runner_id=runner.pk, bar_ts=bar_ts),
        runner=runner,
        max_attempts=TICK_MAX_ATTEMPTS,
    )


# A tick may wait for its bar twice (the provider has not published it yet), each time past the
# market data's re-ask window so the provider is asked again, then traces what it finds; one
# attempt stays for a worker lost mid-tick.
TICK_STALE_RETRIES = 2
TICK_MAX_ATTEMPTS = TICK_STALE_RETRIES + 2


def _tick_payload(runner: Runner, bar_ts: datetime) -> dict[str, Any]:
    return {
        "runner_id": runner.pk,
        "bot_id": runner.bot_id,
        "bar_ts": _bar_label(bar_ts),
        "generation": runner.generation,
    }


def tick_dispatch(*, now: datetime | None = None) -> dict[str, Any]:
    """One tick job per RUNNING runner for the last closed bar of its bot's timeframe. Runs every
    few seconds; the (runner, bar) key makes every run after the first in a bar a no-op. The new
    jobs of one run are inserted together and published once committed (one transaction for 500
    runners, not 500)."""
    now = now or timezone.now()
    report: dict[str, Any] = {"enqueued": [], "existing": [], "skipped": []}
    wanted: dict[str, tuple[Runner, datetime]] = {}
    for runner in Runner.objects.filter(status=Runner.Status.RUNNING).select_related("bot").order_by("pk"):
        seconds = timeframe_seconds(runner.bot.timeframe)
        if seconds is None:
            # Fail closed: no tick on a guessed bar.
            reason = f"invalid timeframe {runner.bot.timeframe!r}"
            logger.error("runner %s (bot %s) not ticked: %s", runner.pk, runner.bot_id, reason)
            report["skipped"].append({"runner_id": runner.pk, "reason": reason})
            continue
        bar_ts = last_closed_bar(now, seconds)
        wanted[tick_key(runner_id=runner.pk, bar_ts=bar_ts)] = (runner, bar_ts)
    existing = dict(Job.objects.filter(idempotency_key__in=list(wanted)).values_list("idempotency_key", "id"))
    report["existing"] = sorted(existing.values())
    new = [_tick_job(runner, bar_ts) for key, (runner, bar_ts) in wanted.items() if key not in existing]
    if not new:
        return report
    try:
        with transaction.atomic():
            created = Job.objects.bulk_create(new)
            for job in created:
                _publish(job.pk, type=job.type)
        report["enqueued"] = [job.pk for job in created]
    except IntegrityError:  # another dispatcher took some of these keys meanwhile: one by one
        for job in new:
            runner, bar_ts = wanted[job.idempotency_key or ""]
            one, made = tick_enqueue(runner=runner, bar_ts=bar_ts)
            report["enqueued" if made else "existing"].append(one.pk)
    return report


def _tick_job(runner: Runner, bar_ts: datetime) -> Job:
    return Job(
        type="tick",
        payload=_tick_payload(runner, bar_ts),
        idempotency_key=tick_key(runner_id=runner.pk, bar_ts=bar_ts),
        runner=runner,
        max_attempts=TICK_MAX_ATTEMPTS,
        available_at=timezone.now(),
        trace_id=context.ensure_trace_id(),
    )


# ---------------------------------------------------------------------------------------------
# Handlers
# ---------------------------------------------------------------------------------------------
def job_handle_noop(job: Job) -> dict[str, Any]:
    return {"noop": True, "attempt": job.attempts}
