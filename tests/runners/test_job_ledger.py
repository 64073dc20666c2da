"""The job ledger's services against the real database: enqueue, claim, fenced close, retry
back-off, the watchdog, operator cancel/retry and tick dispatch. The same mechanisms under real
worker processes are in test_job_workers.py."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.bots.models import Bot
from apps.core import context
from apps.core.exceptions import ApplicationError
from apps.runners.models import Job, Runner
from apps.runners.services import jobs
from apps.runners.services.jobs import (
    job_cancel,
    job_claim,
    job_complete,
    job_enqueue,
    job_execute,
    job_fail,
    job_retry,
    job_watchdog,
    tick_dispatch,
    tick_enqueue,
)
from apps.runners.tasks import job_run
from apps.runners.tasks import job_watchdog as job_watchdog_task
from apps.runners.tasks import tick_dispatch as tick_dispatch_task
from apps.telemetry.models import AuditEvent, DecisionTrace
from tests.runners import job_handlers

pytestmark = pytest.mark.django_db


@pytest.fixture
def published(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, dict[str, Any]]]:
    """(job id, options) of every job_run message handed to the broker, once its transaction
    commits (run the block under django_capture_on_commit_callbacks(execute=True))."""
    sent: list[tuple[int, dict[str, Any]]] = []
    monkeypatch.setattr(jobs.job_run_task, "apply_async", lambda args=None, **options: sent.append((args[0], options)))
    return sent


def _runner(name: str = "MES trend", timeframe: str = "1m", **fields: Any) -> Runner:
    bot = Bot.objects.create(
        name=name, strategy_key="trend_following", instrument="MES", timeframe=timeframe, stage=Bot.Stage.PAPER
    )
    return Runner.objects.create(bot=bot, **{"status": Runner.Status.RUNNING, "generation": 1, **fields})


def _job(**fields: Any) -> Job:
    defaults = {"type": "noop", "available_at": timezone.now(), "trace_id": "t"}
    return Job.objects.create(**{**defaults, **fields})


def _db_now() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        return cursor.fetchone()[0]


def _about(value: datetime | None, expected: datetime) -> bool:
    return value is not None and abs(value - expected) < timedelta(seconds=1)


# -- enqueue -----------------------------------------------------------------------------------
def test_enqueue_writes_the_row_then_publishes_only_its_id_after_commit(
    published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    with context.bind(trace_id="enqueue-trace-1"), django_capture_on_commit_callbacks(execute=True) as callbacks:
        job = job_enqueue(type="noop", payload={"x": 1})
        assert published == []  # nothing crosses the broker before the commit
    assert len(callbacks) == 1
    assert published == [(job.pk, {})]
    job.refresh_from_db()
    assert (job.status, job.attempts, job.payload, job.trace_id) == (Job.Status.QUEUED, 0, {"x": 1}, "enqueue-trace-1")


def test_enqueue_with_an_existing_key_returns_the_first_job_and_publishes_nothing(
    published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        first = job_enqueue(type="noop", payload={"n": 1}, idempotency_key="k-1")
        second = job_enqueue(type="noop", payload={"n": 2}, idempotency_key="k-1")
    assert second.pk == first.pk and second.payload == {"n": 1}
    assert Job.objects.filter(idempotency_key="k-1").count() == 1
    assert published == [(first.pk, {})]


@pytest.mark.django_db(transaction=True)
def test_concurrent_enqueues_of_one_key_make_one_job() -> None:
    barrier = threading.Barrier(6)
    made: list[int] = []

    def enqueue() -> None:
        try:
            barrier.wait()
            made.append(job_enqueue(type="noop", idempotency_key="race-key").pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=enqueue) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(made) == 6 and len(set(made)) == 1
    assert Job.objects.filter(idempotency_key="race-key").count() == 1


def test_an_idempotency_key_of_another_job_type_is_refused() -> None:
    job_enqueue(type="noop", idempotency_key="k-2")
    with pytest.raises(ApplicationError) as raised:
        job_enqueue(type="tick", idempotency_key="k-2")
    assert raised.value.error_code == "IDEMPOTENCY_KEY_REUSED" and raised.value.status_code == 422


def test_enqueue_many_writes_every_row_then_publishes_each_id_after_commit(
    published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    items = [({"n": n}, f"many-{n}") for n in range(5)]
    with context.bind(trace_id="many-trace"), django_capture_on_commit_callbacks(execute=True):
        made = jobs.job_enqueue_many(type="noop", items=items)
        assert published == []
    assert [j.payload for j in made] == [{"n": n} for n in range(5)]
    assert [j.idempotency_key for j in made] == [f"many-{n}" for n in range(5)]
    assert published == [(j.pk, {}) for j in made]
    rows = Job.objects.filter(pk__in=[j.pk for j in made])
    assert {(j.status, j.trace_id, j.attempts) for j in rows} == {(Job.Status.QUEUED, "many-trace", 0)}


def test_enqueue_many_with_a_key_taken_enqueues_nothing(published: list[Any]) -> None:
    job_enqueue(type="noop", idempotency_key="many-taken")
    with pytest.raises(IntegrityError), transaction.atomic():
        jobs.job_enqueue_many(type="noop", items=[({}, "many-new"), ({}, "many-taken")])
    assert not Job.objects.filter(idempotency_key="many-new").exists()
    with pytest.raises(ApplicationError, match="No handler"):
        jobs.job_enqueue_many(type="nope", items=[({}, "many-x")])


def test_cancel_queued_cancels_only_waiting_jobs_in_one_statement() -> None:
    queued, failed, running, done = (
        _job(status=s) for s in (Job.Status.QUEUED, Job.Status.FAILED, Job.Status.RUNNING, Job.Status.SUCCEEDED)
    )
    cancelled = jobs.job_cancel_queued(job_ids=[queued.pk, failed.pk, running.pk, done.pk])
    assert cancelled == sorted([queued.pk, failed.pk])
    status = dict(Job.objects.values_list("pk", "status"))
    assert (status[queued.pk], status[failed.pk]) == (Job.Status.CANCELLED, Job.Status.CANCELLED)
    assert (status[running.pk], status[done.pk]) == (Job.Status.RUNNING, Job.Status.SUCCEEDED)
    assert Job.objects.get(pk=queued.pk).finished_at is not None
    assert jobs.job_cancel_queued(job_ids=[]) == []
    assert not AuditEvent.objects.filter(action="job.cancel").exists()  # the caller audits the batch


def test_an_unknown_type_is_refused_at_enqueue() -> None:
    with pytest.raises(ApplicationError) as raised:
        job_enqueue(type="no-such-type")
    assert raised.value.status_code == 400 and "no-such-type" in raised.value.message
    assert not Job.objects.exists()


def test_a_job_enqueued_in_a_rolled_back_transaction_is_neither_stored_nor_published(
    published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        job_enqueue(type="noop")
        raise RuntimeError("roll back")
    assert published == [] and not Job.objects.exists()


# -- claim -------------------------------------------------------------------------------------
def test_claim_leases_the_job_and_a_second_claim_of_it_gets_nothing() -> None:
    job = _job()
    claimed = job_claim(job_id=job.pk, worker="w1", lease_seconds=30)
    assert claimed is not None and claimed.pk == job.pk
    assert (claimed.status, claimed.attempts, claimed.leased_by) == (Job.Status.RUNNING, 1, "w1")
    assert _about(claimed.lease_expires_at, _db_now() + timedelta(seconds=30))
    assert claimed.started_at is not None
    assert job_claim(job_id=job.pk, worker="w2", lease_seconds=30) is None
    assert Job.objects.get(pk=job.pk).attempts == 1


def test_claim_without_an_id_takes_the_oldest_due_job() -> None:
    now = timezone.now()
    newer = _job(available_at=now - timedelta(seconds=1))
    older = _job(available_at=now - timedelta(seconds=5))
    assert job_claim(worker="w", lease_seconds=30).pk == older.pk
    assert job_claim(worker="w", lease_seconds=30).pk == newer.pk
    assert job_claim(worker="w", lease_seconds=30) is None


@pytest.mark.parametrize("status", [Job.Status.SUCCEEDED, Job.Status.DEAD, Job.Status.CANCELLED, Job.Status.RUNNING])
def test_closed_cancelled_or_running_jobs_are_not_claimed(status: str) -> None:
    lease = timezone.now() + timedelta(minutes=5) if status == Job.Status.RUNNING else None
    job = _job(status=status, attempts=1, lease_expires_at=lease, leased_by="other")
    assert job_claim(job_id=job.pk, worker="w", lease_seconds=30) is None
    assert job_claim(worker="w", lease_seconds=30) is None
    assert Job.objects.get(pk=job.pk).attempts == 1


def test_a_failed_job_is_claimed_only_once_its_back_off_has_passed() -> None:
    job = _job(status=Job.Status.FAILED, attempts=1, available_at=_db_now() + timedelta(seconds=10))
    assert job_claim(job_id=job.pk, worker="w", lease_seconds=30) is None
    Job.objects.filter(pk=job.pk).update(available_at=_db_now() - timedelta(seconds=1))
    assert job_claim(job_id=job.pk, worker="w", lease_seconds=30).attempts == 2


def test_claim_refuses_to_run_inside_a_callers_transaction() -> None:
    """The lease must be committed before work starts; nested, it would not be."""
    job = _job()
    with pytest.raises(RuntimeError, match="durable"), transaction.atomic():
        job_claim(job_id=job.pk, worker="w", lease_seconds=30)
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED


# -- complete and fail -------------------------------------------------------------------------
def test_only_the_lease_holder_closes_the_job() -> None:
    job = _job()
    mine = job_claim(job_id=job.pk, worker="w1", lease_seconds=30)
    impostor = Job.objects.get(pk=job.pk)
    impostor.leased_by = "w2"
    assert job_complete(job=impostor, result={"by": "w2"}) is False
    assert job_fail(job=impostor, error="nope") is None
    assert job_complete(job=mine, result={"by": "w1"}) is True
    job.refresh_from_db()
    assert (job.status, job.result, job.lease_expires_at) == (Job.Status.SUCCEEDED, {"by": "w1"}, None)
    assert job_complete(job=mine, result={"by": "w1 again"}) is False


def test_a_stale_worker_cannot_close_a_job_the_watchdog_gave_to_another() -> None:
    job = _job()
    stale = job_claim(job_id=job.pk, worker="w1", lease_seconds=1)
    job_watchdog(now=timezone.now() + timedelta(seconds=5))
    fresh = job_claim(job_id=job.pk, worker="w1", lease_seconds=30)  # same name: attempts fences it
    assert job_complete(job=stale, result={"late": True}) is False
    assert job_fail(job=stale, error="late failure") is None
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING
    assert job_complete(job=fresh, result={"ok": True}) is True
    assert Job.objects.get(pk=job.pk).result == {"ok": True}


def test_a_failure_with_attempts_left_backs_off_exponentially_and_is_republished(
    published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    job = _job(max_attempts=3)
    with django_capture_on_commit_callbacks(execute=True):
        assert job_fail(job=job_claim(job_id=job.pk, worker="w", lease_seconds=30), error="boom 1") == "FAILED"
    first = Job.objects.get(pk=job.pk)
    assert first.error == "boom 1" and first.lease_expires_at is None
    assert _about(first.available_at, _db_now() + timedelta(seconds=2))
    assert published == [(job.pk, {"countdown": 3})]  # the back-off, plus a second for clock skew

    Job.objects.filter(pk=job.pk).update(available_at=_db_now() - timedelta(seconds=1))
    assert job_fail(job=job_claim(job_id=job.pk, worker="w", lease_seconds=30), error="boom 2") == "FAILED"
    assert _about(Job.objects.get(pk=job.pk).available_at, _db_now() + timedelta(seconds=4))


def test_the_last_failure_dead_letters_the_job_with_an_audited_alert() -> None:
    job = _job(max_attempts=1)
    assert job_fail(job=job_claim(job_id=job.pk, worker="w", lease_seconds=30), error="final") == "DEAD"
    job.refresh_from_db()
    assert (job.status, job.error, job.attempts) == (Job.Status.DEAD, "final", 1)
    assert job.finished_at is not None
    alert = AuditEvent.objects.get(action="job.dead_lettered", target_id=str(job.pk))
    assert alert.actor_label == "system:jobs" and alert.after["error"] == "final"


# -- execute -----------------------------------------------------------------------------------
def test_execute_runs_the_handler_and_closes_the_job_under_its_own_trace_id() -> None:
    job = _job(type="test.record", trace_id="job-trace-9")
    done = job_execute(job_id=job.pk, worker="w1")
    job.refresh_from_db()
    assert done is not None and job.status == Job.Status.SUCCEEDED
    assert job.result == {"attempt": 1, "worker": "w1"}
    ran = AuditEvent.objects.get(action=job_handlers.RAN)
    assert ran.trace_id == "job-trace-9"


def test_executing_the_same_job_twice_runs_it_once() -> None:
    job = _job(type="test.record")
    job_execute(job_id=job.pk, worker="w1")
    assert job_execute(job_id=job.pk, worker="w2") is None
    job.refresh_from_db()
    assert job.attempts == 1 and job.leased_by == "w1"
    assert AuditEvent.objects.filter(action=job_handlers.RAN).count() == 1


def test_a_handler_error_fails_the_attempt_and_keeps_the_error() -> None:
    job = _job(type="test.fail")
    job_execute(job_id=job.pk, worker="w")
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED and job.error == "RuntimeError: the handler failed on purpose"


def test_a_permanent_handler_error_dead_letters_at_once() -> None:
    job = _job(type="test.fail_permanently", max_attempts=5)
    job_execute(job_id=job.pk, worker="w")
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.DEAD, 1)
    assert "can never work" in job.error


def test_an_unknown_job_type_is_dead_lettered_with_a_clear_error() -> None:
    job = _job(type="gone.type", max_attempts=3)
    job_execute(job_id=job.pk, worker="w")
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.DEAD, 1)
    assert "unknown job type 'gone.type'" in job.error and "noop" in job.error


@pytest.mark.django_db(transaction=True)
def test_a_worker_that_lost_its_lease_mid_handler_leaves_no_trace(
    monkeypatch: pytest.MonkeyPatch, published: list[Any]
) -> None:
    """Worker A stalls past its lease; the watchdog requeues, B runs the job. A's handler then
    finishes: its completion is fenced out and its database writes roll back with it."""
    in_handler, release = threading.Event(), threading.Event()
    record = job_handlers.record

    def stalls_first_time(job: Job) -> dict[str, Any]:
        if job.attempts == 1:
            in_handler.set()
            assert release.wait(20)
        return record(job)

    monkeypatch.setattr(job_handlers, "record", stalls_first_time)
    job = _job(type="test.record")
    outcome: list[Any] = []

    def worker_a() -> None:
        try:
            outcome.append(job_execute(job_id=job.pk, worker="worker-a"))
        finally:
            connection.close()

    thread = threading.Thread(target=worker_a)
    thread.start()
    try:
        assert in_handler.wait(20)
        after_lease = timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS + 1)
        assert job_watchdog(now=after_lease)["requeued"] == [job.pk]
        assert published == [(job.pk, {})]  # the republished message: worker B takes it
        job_execute(job_id=job.pk, worker="worker-b")
    finally:
        release.set()
        thread.join(20)

    job.refresh_from_db()
    assert (job.status, job.attempts, job.leased_by) == (Job.Status.SUCCEEDED, 2, "worker-b")
    assert job.result == {"attempt": 2, "worker": "worker-b"}
    assert list(AuditEvent.objects.filter(action=job_handlers.RAN).values_list("after__worker", flat=True)) == [
        "worker-b"
    ]


# -- the close's round trips -------------------------------------------------------------------
# Handlers registered for these tests only; `_take_over` runs in each (see below).
_take_over: list[Any] = []
_committed: list[int] = []


def _handle_without_the_database(job: Job) -> dict[str, Any]:
    for step in _take_over:
        step(job)
    return {"pure": True, "attempt": job.attempts}


def _handle_with_on_commit_work(job: Job) -> dict[str, Any]:
    for step in _take_over:
        step(job)
    transaction.on_commit(lambda: _committed.append(job.pk))  # no statement: nothing reaches the database
    return {"on_commit": True}


@pytest.fixture
def test_handlers(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setitem(jobs.JOB_HANDLERS, "test.pure", f"{__name__}._handle_without_the_database")
    monkeypatch.setitem(jobs.JOB_HANDLERS, "test.on_commit", f"{__name__}._handle_with_on_commit_work")
    _take_over.clear()
    _committed.clear()
    yield
    _take_over.clear()
    _committed.clear()


@pytest.fixture
def closes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """How each fenced close statement ran: "autocommit" (a transaction of its own) or "in the
    handler's transaction"."""
    seen: list[str] = []
    execute = jobs.execute_prepared

    def spy(sql: str, params: dict[str, Any]) -> int:
        if sql == jobs._COMPLETE_SQL:
            seen.append("autocommit" if connection.get_autocommit() else "in the handler's transaction")
        return execute(sql, params)

    monkeypatch.setattr(jobs, "execute_prepared", spy)
    return seen


def _another_worker_takes_over(job: Job) -> None:
    """What the watchdog and worker B do while worker A's handler runs: on their own connection."""

    def takeover() -> None:
        try:
            later = timezone.now() + timedelta(seconds=settings.JOB_LEASE_SECONDS + 1)
            assert job_watchdog(now=later)["requeued"] == [job.pk]
            job_execute(job_id=job.pk, worker="worker-b")
        finally:
            connection.close()

    thread = threading.Thread(target=takeover)
    thread.start()
    thread.join(20)


@pytest.mark.django_db(transaction=True)
def test_a_handler_that_sends_nothing_to_the_database_is_closed_by_one_autocommitted_statement(
    test_handlers: Any, closes: list[str]
) -> None:
    job = _job(type="test.pure")
    assert job_execute(job_id=job.pk, worker="w1") is not None
    assert closes == ["autocommit"]  # one round trip: no BEGIN, no COMMIT of its own
    job.refresh_from_db()
    assert (job.status, job.result, job.lease_expires_at) == (Job.Status.SUCCEEDED, {"pure": True, "attempt": 1}, None)


@pytest.mark.django_db(transaction=True)
def test_a_handler_that_writes_is_closed_inside_its_transaction(closes: list[str]) -> None:
    job = _job(type="test.record")
    job_execute(job_id=job.pk, worker="w1")
    assert closes == ["in the handler's transaction"]
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_a_handler_that_sent_nothing_to_the_database_and_lost_its_lease_closes_nothing(
    test_handlers: Any, published: list[Any], closes: list[str]
) -> None:
    job = _job(type="test.pure")
    _take_over.append(lambda claimed: claimed.attempts == 1 and _another_worker_takes_over(claimed))
    mine = job_execute(job_id=job.pk, worker="worker-a")
    assert mine is not None and mine.status == Job.Status.RUNNING  # A's close was fenced out
    job.refresh_from_db()
    assert (job.status, job.attempts, job.leased_by) == (Job.Status.SUCCEEDED, 2, "worker-b")
    assert job.result == {"pure": True, "attempt": 2}
    assert closes == ["autocommit", "autocommit"]  # B's, then A's, which matched nothing


@pytest.mark.django_db(transaction=True)
def test_on_commit_work_of_a_handler_runs_only_if_its_close_commits(
    test_handlers: Any, published: list[Any], closes: list[str]
) -> None:
    """A handler that only schedules work for after commit sends no statement, but its work
    belongs to the transaction: the close stays inside it, and a lost lease discards the work."""
    held = _job(type="test.on_commit")
    job_execute(job_id=held.pk, worker="w1")
    assert _committed == [held.pk]
    assert closes == ["in the handler's transaction"]

    lost = _job(type="test.on_commit")
    _take_over.append(lambda claimed: claimed.attempts == 1 and _another_worker_takes_over(claimed))
    job_execute(job_id=lost.pk, worker="worker-a")
    assert _committed == [held.pk, lost.pk]  # worker B's, once; worker A's was rolled back
    lost.refresh_from_db()
    assert (lost.status, lost.attempts, lost.leased_by) == (Job.Status.SUCCEEDED, 2, "worker-b")


@pytest.mark.django_db(transaction=True)
def test_the_claim_and_the_close_run_as_server_side_prepared_statements() -> None:
    """Django turns psycopg's prepared statements off (prepare_threshold=None); the ledger's two
    per-job statements are prepared anyway, once per connection, and nothing else is."""
    first, second = _job(), _job()
    job_execute(job_id=first.pk, worker="w1")
    job_execute(job_id=second.pk, worker="w1")
    assert connection.connection.prepare_threshold is None  # the ORM's queries stay unprepared
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert len(prepared) == 2
    assert any("SET status = 'RUNNING'" in statement for statement in prepared)
    assert any("SET status = 'SUCCEEDED'" in statement for statement in prepared)
    assert set(Job.objects.values_list("status", flat=True)) == {Job.Status.SUCCEEDED}


# -- the claim's flush and the close sent without waiting (bench/job_ledger.py, loaded rounds) --
def _wal_fsyncs_by_clients() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
    with connection.cursor() as cursor:  # the next statement: this backend's counts are flushed by then
        cursor.execute(
            "SELECT coalesce(sum(fsyncs), 0) FROM pg_stat_io WHERE object = 'wal' AND backend_type = 'client backend'"
        )
        return int(cursor.fetchone()[0])


def _status_seen_by_another_connection(job_id: int) -> tuple[str, str]:
    seen: list[tuple[str, str]] = []

    def look() -> None:
        try:
            seen.append(Job.objects.values_list("status", "leased_by").get(pk=job_id))
        finally:
            connection.close()

    thread = threading.Thread(target=look)
    thread.start()
    thread.join(20)
    return seen[0]


@pytest.mark.django_db(transaction=True)
def test_a_claim_is_committed_for_everyone_at_once_without_waiting_for_the_disk() -> None:
    """The lease is visible to every other connection when job_claim returns; its commit does not
    wait for the WAL flush (none for 20 claims), and the setting ends with the claim's transaction:
    what the handler and the close commit next is flushed as before."""
    rows = [_job() for _ in range(20)]
    before = _wal_fsyncs_by_clients()
    claimed = [job_claim(job_id=job.pk, worker="w1", lease_seconds=60) for job in rows]
    assert _wal_fsyncs_by_clients() - before == 0
    assert _status_seen_by_another_connection(rows[-1].pk) == (Job.Status.RUNNING, "w1")
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
    before = _wal_fsyncs_by_clients()
    assert all(job_complete(job=job, result=None) for job in claimed)  # type: ignore[arg-type]
    assert _wal_fsyncs_by_clients() - before >= 10  # the closes are flushed (some may share a flush)


@pytest.fixture
def holder() -> Any:
    """The worker's close holder (job_execute(hold_close=True)); its held close is sent and its
    connection closed after the test, and its thread woken to read the hold bound again (a test's
    `settings` are restored before this runs)."""
    yield jobs._held_close
    jobs.job_closes_flush()
    with jobs._held_close.cond:
        jobs._held_close.cond.notify()
    with jobs._held_close.sending:
        if jobs._held_close.conn is not None:
            jobs._held_close.conn.close()
        jobs._held_close.conn = None


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The ledger's statements on Django's connection, in order: "claim", "close then claim",
    "close" (a close alone, waited for)."""
    seen: list[str] = []
    names = {jobs._CLAIM_ONE_SQL: "claim", jobs._CLOSE_THEN_CLAIM_SQL: "close then claim", jobs._COMPLETE_SQL: "close"}
    fetch, execute = jobs.fetch_prepared, jobs.execute_prepared

    def fetch_spy(sql: str, params: dict[str, Any]) -> Any:
        seen.append(names.get(sql, "other"))
        return fetch(sql, params)

    def execute_spy(sql: str, params: dict[str, Any]) -> Any:
        seen.append(names.get(sql, "other"))
        return execute(sql, params)

    monkeypatch.setattr(jobs, "fetch_prepared", fetch_spy)
    monkeypatch.setattr(jobs, "execute_prepared", execute_spy)
    return seen


def _wait_for(predicate: Any, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


@pytest.mark.django_db(transaction=True)
def test_a_worker_holds_a_close_for_its_next_claim_and_sends_both_in_one_statement(
    test_handlers: Any, holder: Any, statements: list[str], settings: Any
) -> None:
    settings.JOB_CLOSE_HOLD_SECONDS = 30  # no close leaves on its own during this test
    first, second, third = (_job(type="test.pure") for _ in range(3))
    mine = job_execute(job_id=first.pk, worker="w1", hold_close=True)
    assert mine is not None and mine.status == Job.Status.RUNNING  # returned with its close held
    assert _status_seen_by_another_connection(first.pk) == (Job.Status.RUNNING, "w1")
    job_execute(job_id=second.pk, worker="w1", hold_close=True)
    assert _status_seen_by_another_connection(first.pk) == (Job.Status.SUCCEEDED, "w1")
    assert _status_seen_by_another_connection(second.pk) == (Job.Status.RUNNING, "w1")
    job_execute(job_id=third.pk, worker="w1", hold_close=True)
    assert statements == ["claim", "close then claim", "close then claim"]  # one round trip a job
    jobs.job_closes_flush()  # as the worker process does when it ends
    assert (
        list(Job.objects.values_list("status", "result", "attempts").order_by("pk"))
        == [
            (Job.Status.SUCCEEDED, {"pure": True, "attempt": 1}, 1),
        ]
        * 3
    )


@pytest.mark.django_db(transaction=True)
def test_a_held_close_records_when_the_job_finished_not_when_the_close_was_sent(
    test_handlers: Any, holder: Any, settings: Any
) -> None:
    settings.JOB_CLOSE_HOLD_SECONDS = 30
    first, second = _job(type="test.pure"), _job(type="test.pure")
    job_execute(job_id=first.pk, worker="w1", hold_close=True)
    time.sleep(0.5)  # no message for half a second: the close waits for the next claim
    job_execute(job_id=second.pk, worker="w1", hold_close=True)
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.finished_at is not None and second.started_at is not None
    assert first.finished_at - first.started_at < timedelta(seconds=0.25)
    assert second.started_at - first.finished_at >= timedelta(seconds=0.45)
    assert first.updated_at >= second.started_at  # written with the claim


@pytest.mark.django_db(transaction=True)
def test_a_held_close_goes_with_a_claim_that_finds_nothing_to_claim(
    test_handlers: Any, holder: Any, settings: Any
) -> None:
    settings.JOB_CLOSE_HOLD_SECONDS = 30
    job, done = _job(type="test.pure"), _job(status=Job.Status.SUCCEEDED)
    job_execute(job_id=job.pk, worker="w1", hold_close=True)
    assert job_execute(job_id=done.pk, worker="w1", hold_close=True) is None  # a duplicate message
    assert holder.held is None
    assert _status_seen_by_another_connection(job.pk) == (Job.Status.SUCCEEDED, "w1")


@pytest.mark.django_db(transaction=True)
def test_a_held_close_no_claim_takes_is_sent_alone_within_the_hold_bound(
    test_handlers: Any, holder: Any, settings: Any
) -> None:
    settings.JOB_CLOSE_HOLD_SECONDS = 0.05
    for round_ in range(2):  # the second time the thread is asleep and the hold wakes it
        job = _job(type="test.pure")
        held_at = time.monotonic()
        job_execute(job_id=job.pk, worker="w1", hold_close=True)
        assert _wait_for(lambda pk=job.pk: Job.objects.get(pk=pk).status == Job.Status.SUCCEEDED), round_
        assert time.monotonic() - held_at < 2
        assert holder.held is None
        time.sleep(0.2)  # a quiet period: the thread goes to sleep


@pytest.mark.django_db(transaction=True)
def test_a_close_that_goes_with_a_claim_does_not_wait_for_the_disk_and_a_close_sent_alone_does(
    test_handlers: Any, holder: Any, settings: Any
) -> None:
    settings.JOB_CLOSE_HOLD_SECONDS = 30
    rows = [_job(type="test.pure") for _ in range(21)]
    job_execute(job_id=rows[0].pk, worker="w1", hold_close=True)
    before = _wal_fsyncs_by_clients()
    for job in rows[1:]:
        job_execute(job_id=job.pk, worker="w1", hold_close=True)
    assert _wal_fsyncs_by_clients() - before == 0  # 20 closes went with claims: no flush waited for
    assert Job.objects.filter(status=Job.Status.SUCCEEDED).count() == 20
    jobs.job_closes_flush()  # the last one, alone, on the holder's connection
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_insert_lsn() <= pg_current_wal_flush_lsn()")
        assert cursor.fetchone()[0]  # its commit was flushed, and every earlier one with it
    assert Job.objects.filter(status=Job.Status.SUCCEEDED).count() == 21


@pytest.mark.django_db(transaction=True)
def test_the_close_of_a_jobs_last_attempt_is_not_held(test_handlers: Any, holder: Any, statements: list[str]) -> None:
    """A close lost in a database crash sends the job round again when its lease expires; on its
    last attempt that would dead-letter a job that succeeded, so that close is sent and awaited."""
    job = _job(type="test.pure", max_attempts=1)
    job_execute(job_id=job.pk, worker="w1", hold_close=True)
    assert holder.held is None and statements == ["claim", "close"]
    assert _status_seen_by_another_connection(job.pk) == (Job.Status.SUCCEEDED, "w1")


@pytest.mark.django_db(transaction=True)
def test_the_close_of_a_job_with_a_queue_of_its_own_is_not_held(
    test_handlers: Any, holder: Any, statements: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backtest's job reads SUCCEEDED as soon as the backtest does (its page is watched)."""
    monkeypatch.setitem(jobs.JOB_QUEUES, "test.pure", "backtests")
    job = _job(type="test.pure")
    job_execute(job_id=job.pk, worker="w1", hold_close=True)
    assert holder.held is None and statements == ["claim", "close"]
    assert _status_seen_by_another_connection(job.pk) == (Job.Status.SUCCEEDED, "w1")


@pytest.mark.django_db(transaction=True)
def test_with_the_hold_set_to_zero_every_close_is_sent_and_awaited(
    test_handlers: Any, holder: Any, statements: list[str], settings: Any
) -> None:
    settings.JOB_CLOSE_HOLD_SECONDS = 0
    first, second = _job(type="test.pure"), _job(type="test.pure")
    job_execute(job_id=first.pk, worker="w1", hold_close=True)
    job_execute(job_id=second.pk, worker="w1", hold_close=True)
    assert holder.held is None and statements == ["claim", "close", "claim", "close"]
    assert set(Job.objects.values_list("status", flat=True)) == {Job.Status.SUCCEEDED}


@pytest.mark.django_db(transaction=True)
def test_a_held_close_that_lost_its_lease_closes_nothing_and_says_so(
    test_handlers: Any, published: list[Any], caplog: pytest.LogCaptureFixture, holder: Any, settings: Any
) -> None:
    settings.JOB_CLOSE_HOLD_SECONDS = 30
    job, next_job = _job(type="test.pure"), _job(type="test.pure")
    _take_over.append(
        lambda claimed: claimed.pk == job.pk and claimed.attempts == 1 and _another_worker_takes_over(claimed)
    )
    job_execute(job_id=job.pk, worker="worker-a", hold_close=True)
    with caplog.at_level("WARNING", logger="tradeops.jobs"):
        job_execute(job_id=next_job.pk, worker="worker-a", hold_close=True)
    assert f"job {job.pk}: lease lost on attempt 1; nothing was closed" in caplog.text
    job.refresh_from_db()
    assert (job.status, job.attempts, job.leased_by, job.result) == (
        Job.Status.SUCCEEDED, 2, "worker-b", {"pure": True, "attempt": 2},
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_a_held_close_whose_claim_failed_is_sent_again_alone(test_handlers: Any, holder: Any, settings: Any) -> None:
    """The worker's connection broke (a database restart) under the claim that carried the close:
    whether or not it committed, the close is sent again, fenced, on the holder's connection."""
    settings.JOB_CLOSE_HOLD_SECONDS = 0.05
    job, next_job = _job(type="test.pure"), _job(type="test.pure")
    job_execute(job_id=job.pk, worker="w1", hold_close=True)
    _terminate(connection.connection.info.backend_pid)
    with pytest.raises(psycopg.OperationalError):
        job_execute(job_id=next_job.pk, worker="w1", hold_close=True)
    connection.close()
    assert _wait_for(lambda: Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED)
    assert Job.objects.get(pk=next_job.pk).status == Job.Status.QUEUED  # its claim failed with it


@pytest.mark.django_db(transaction=True)
def test_a_holder_connection_the_server_ended_is_replaced_for_the_next_close(
    test_handlers: Any, holder: Any, settings: Any
) -> None:
    settings.JOB_CLOSE_HOLD_SECONDS = 30
    first, second = _job(type="test.pure"), _job(type="test.pure")
    job_execute(job_id=first.pk, worker="w1", hold_close=True)
    jobs.job_closes_flush()
    ended = holder.conn.info.backend_pid
    _terminate(ended)  # as a database restart would
    job_execute(job_id=second.pk, worker="w1", hold_close=True)
    jobs.job_closes_flush()
    assert holder.conn.info.backend_pid != ended
    assert set(Job.objects.values_list("status", flat=True)) == {Job.Status.SUCCEEDED}


def _terminate(backend_pid: int) -> None:
    def kill() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s, 5000)", [backend_pid])
        finally:
            connection.close()

    thread = threading.Thread(target=kill)
    thread.start()
    thread.join(20)


def test_inside_a_callers_transaction_the_close_is_awaited(test_handlers: Any, closes: list[str]) -> None:
    """An open transaction (here the test's) cannot carry a close held for later: the close runs as
    before, in it."""
    job = _job(type="test.pure")
    job_execute(job_id=job.pk, worker="w1", hold_close=True)
    assert closes == ["in the handler's transaction"] and jobs._held_close.held is None
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED


# -- watchdog ----------------------------------------------------------------------------------
def test_the_watchdog_leaves_a_live_lease_alone() -> None:
    job = _job()
    claimed = job_claim(job_id=job.pk, worker="w", lease_seconds=60)
    report = job_watchdog(now=claimed.lease_expires_at - timedelta(seconds=1))
    assert report == {"requeued": [], "dead": [], "republished": []}
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING


def test_an_expired_lease_is_requeued_republished_and_audited(
    published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    job = _job(max_attempts=3)
    claimed = job_claim(job_id=job.pk, worker="lost-worker", lease_seconds=10)
    with django_capture_on_commit_callbacks(execute=True):
        report = job_watchdog(now=claimed.lease_expires_at + timedelta(seconds=1))
    assert report["requeued"] == [job.pk]
    job.refresh_from_db()
    assert (job.status, job.attempts, job.leased_by, job.lease_expires_at) == (Job.Status.QUEUED, 1, "", None)
    assert "lost-worker" in job.error
    assert published == [(job.pk, {})]
    requeued = AuditEvent.objects.get(action="job.requeued")
    assert requeued.actor_label == "system:watchdog" and requeued.after["leased_by"] == "lost-worker"
    assert job_claim(job_id=job.pk, worker="w2", lease_seconds=10).attempts == 2


def test_a_job_whose_lease_expires_on_its_last_attempt_is_dead_and_never_claimed_again(
    published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    job = _job(max_attempts=2)
    later = timezone.now()
    for _ in range(2):
        assert job_claim(job_id=job.pk, worker="w", lease_seconds=1) is not None
        later += timedelta(seconds=10)
        with django_capture_on_commit_callbacks(execute=True):
            job_watchdog(now=later)
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.DEAD, 2)
    assert job.error.startswith("lease expired after 2 attempts (worker lost)")
    assert published == [(job.pk, {})]  # republished after the first loss only
    assert job_claim(job_id=job.pk, worker="w", lease_seconds=1) is None
    assert job_watchdog(now=later + timedelta(minutes=30)) == {"requeued": [], "dead": [], "republished": []}


def test_a_failed_job_whose_retry_message_was_lost_is_republished_once(
    published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    now = timezone.now()
    job = _job(status=Job.Status.FAILED, attempts=1, available_at=now - timedelta(minutes=2))
    waiting = _job(status=Job.Status.FAILED, attempts=1, available_at=now + timedelta(minutes=2))
    with django_capture_on_commit_callbacks(execute=True):
        assert job_watchdog(now=now)["republished"] == [job.pk]
        assert job_watchdog(now=now)["republished"] == []
    assert published == [(job.pk, {})]
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED
    assert Job.objects.get(pk=waiting.pk).status == Job.Status.FAILED


def test_a_queued_job_nobody_claimed_for_long_is_republished_at_most_once_a_period(
    published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    now = timezone.now()
    lost = _job(available_at=now - jobs.STALE_QUEUED_AFTER - timedelta(seconds=1))
    _job(available_at=now - timedelta(seconds=30))  # recent: its message is presumably on its way
    with django_capture_on_commit_callbacks(execute=True):
        assert job_watchdog(now=now)["republished"] == [lost.pk]
        assert job_watchdog(now=now + timedelta(minutes=1))["republished"] == []
    assert published == [(lost.pk, {})]


# -- cancel and retry --------------------------------------------------------------------------
def test_cancel_of_a_queued_job_is_audited_and_its_message_then_does_nothing(operator: Any) -> None:
    job = _job(type="test.record")
    job_cancel(job=job, actor=operator, reason="wrong bar")
    assert job.status == Job.Status.CANCELLED and job.finished_at is not None
    event = AuditEvent.objects.get(action="job.cancel")
    assert event.actor_id == operator.pk and event.reason == "wrong bar"
    assert (event.before["status"], event.after["status"]) == ("QUEUED", "CANCELLED")
    assert job_execute(job_id=job.pk, worker="w") is None
    assert not AuditEvent.objects.filter(action=job_handlers.RAN).exists()


def test_cancel_of_a_job_running_under_a_live_lease_is_refused(operator: Any) -> None:
    job = _job()
    job_claim(job_id=job.pk, worker="w", lease_seconds=60)
    with pytest.raises(ApplicationError) as raised:
        job_cancel(job=job, actor=operator, reason="stop")
    assert (raised.value.status_code, raised.value.error_code) == (409, "JOB_NOT_CANCELLABLE")
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING
    assert not AuditEvent.objects.filter(action="job.cancel").exists()


def test_a_running_job_whose_worker_is_lost_can_be_cancelled_and_the_late_worker_is_fenced_out(operator: Any) -> None:
    job = _job()
    claimed = job_claim(job_id=job.pk, worker="w", lease_seconds=60)
    Job.objects.filter(pk=job.pk).update(lease_expires_at=_db_now() - timedelta(seconds=1))
    job_cancel(job=job, actor=operator, reason="worker gone")
    assert job_complete(job=claimed, result={}) is False
    assert Job.objects.get(pk=job.pk).status == Job.Status.CANCELLED


def test_retry_of_a_dead_job_requeues_it_with_attempts_reset_and_republishes(
    operator: Any, published: list[Any], django_capture_on_commit_callbacks: Any
) -> None:
    job = _job(status=Job.Status.DEAD, attempts=3, error="lease expired after 3 attempts (worker lost)")
    with django_capture_on_commit_callbacks(execute=True):
        job_retry(job=job, actor=operator)
    assert (job.status, job.attempts, job.error, job.finished_at) == (Job.Status.QUEUED, 0, "", None)
    assert published == [(job.pk, {})]
    event = AuditEvent.objects.get(action="job.retry")
    assert (event.before["status"], event.before["attempts"], event.after["status"]) == ("DEAD", 3, "QUEUED")


@pytest.mark.parametrize("status", [Job.Status.QUEUED, Job.Status.RUNNING, Job.Status.SUCCEEDED])
def test_retry_of_a_job_that_will_run_or_has_succeeded_is_refused(operator: Any, status: str) -> None:
    job = _job(status=status)
    with pytest.raises(ApplicationError) as raised:
        job_retry(job=job, actor=operator)
    assert (raised.value.status_code, raised.value.error_code) == (409, "JOB_NOT_RETRYABLE")
    assert Job.objects.get(pk=job.pk).status == status


# -- ticks -------------------------------------------------------------------------------------
def test_tick_dispatch_enqueues_one_tick_per_running_runner_for_its_last_closed_bar() -> None:
    one = _runner("one", "1m")
    five = _runner("five", "5m", generation=4)
    _runner("stopped", "1m", status=Runner.Status.STOPPED)
    now = datetime(2025, 3, 3, 14, 37, 42, tzinfo=UTC)
    report = tick_dispatch(now=now)
    assert len(report["enqueued"]) == 2 and report["existing"] == [] and report["skipped"] == []
    ticks = {job.runner_id: job for job in Job.objects.filter(type="tick")}
    assert set(ticks) == {one.pk, five.pk}
    assert ticks[one.pk].idempotency_key == f"tick:{one.pk}:2025-03-03T14:37:00Z"
    assert ticks[five.pk].idempotency_key == f"tick:{five.pk}:2025-03-03T14:35:00Z"
    assert ticks[five.pk].payload == {
        "runner_id": five.pk,
        "bot_id": five.bot_id,
        "bar_ts": "2025-03-03T14:35:00Z",
        "generation": 4,
    }


def test_tick_dispatch_is_idempotent_within_a_bar_and_ticks_again_on_the_next() -> None:
    runner = _runner()
    bar_open = datetime(2025, 3, 3, 14, 37, 0, tzinfo=UTC)
    tick_dispatch(now=bar_open + timedelta(seconds=1))
    again = tick_dispatch(now=bar_open + timedelta(seconds=59))
    assert again["enqueued"] == [] and len(again["existing"]) == 1
    assert Job.objects.filter(runner=runner).count() == 1
    assert len(tick_dispatch(now=bar_open + timedelta(seconds=60))["enqueued"]) == 1
    assert Job.objects.filter(runner=runner).count() == 2


@pytest.mark.parametrize(("timeframe", "bar"), [("15m", "14:30:00"), ("1h", "14:00:00"), ("1d", "00:00:00")])
def test_the_bar_is_the_close_time_floored_to_the_timeframe(timeframe: str, bar: str) -> None:
    runner = _runner(timeframe=timeframe)
    tick_dispatch(now=datetime(2025, 3, 3, 14, 37, 42, tzinfo=UTC))
    assert Job.objects.get(runner=runner).payload["bar_ts"] == f"2025-03-03T{bar}Z"


def test_a_runner_whose_bot_has_no_valid_timeframe_is_not_ticked() -> None:
    runner = _runner(timeframe="soon")
    report = tick_dispatch(now=timezone.now())
    assert report["skipped"] == [{"runner_id": runner.pk, "reason": "invalid timeframe 'soon'"}]
    assert not Job.objects.exists()


def test_the_tick_closes_with_a_result_naming_the_runner_and_bar() -> None:
    runner = _runner()
    tick_dispatch(now=datetime(2025, 3, 3, 14, 37, 42, tzinfo=UTC))
    job = Job.objects.get(runner=runner)
    job_execute(job_id=job.pk, worker="w")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert job.result == {
        "runner_id": runner.pk,
        "bar_ts": "2025-03-03T14:37:00Z",
        "outcome": "NO_TRADE",
        "trace": DecisionTrace.objects.get(runner_id=runner.pk).pk,
        "stopped_at": "guard",
        "reason_code": "CONFIG_INVALID",  # this bot has no parameters: the tick says so, and trades nothing
    }


def test_a_tick_dispatched_before_a_restart_does_nothing() -> None:
    runner = _runner()
    tick_dispatch(now=timezone.now())
    Runner.objects.filter(pk=runner.pk).update(generation=2)
    job = Job.objects.get(runner=runner)
    job_execute(job_id=job.pk, worker="w")
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED and job.result["outcome"] == "SKIPPED"


# -- tasks: each runs twice, the second is a no-op (R21) ---------------------------------------
def test_job_run_twice_runs_the_job_once() -> None:
    job = _job(type="test.record")
    job_run.delay(job.pk)
    job_run.delay(job.pk)
    job.refresh_from_db()
    assert (job.status, job.attempts) == (Job.Status.SUCCEEDED, 1)
    assert AuditEvent.objects.filter(action=job_handlers.RAN).count() == 1


def test_job_run_of_a_deleted_job_does_nothing() -> None:
    job_run.delay(987654321)
    assert not Job.objects.exists()


def test_the_watchdog_task_twice_requeues_once() -> None:
    job = _job()
    job_claim(job_id=job.pk, worker="w", lease_seconds=1)
    Job.objects.filter(pk=job.pk).update(lease_expires_at=_db_now() - timedelta(seconds=1))
    job_watchdog_task.delay()
    job_watchdog_task.delay()
    assert AuditEvent.objects.filter(action="job.requeued").count() == 1
    assert Job.objects.get(pk=job.pk).status == Job.Status.QUEUED


def test_the_tick_dispatch_task_twice_enqueues_one_tick(monkeypatch: pytest.MonkeyPatch) -> None:
    runner = _runner()
    fixed = datetime(2025, 3, 3, 14, 37, 42, tzinfo=UTC)
    monkeypatch.setattr(jobs, "timezone", SimpleNamespace(now=lambda: fixed))
    tick_dispatch_task.delay()
    tick_dispatch_task.delay()
    assert list(Job.objects.values_list("idempotency_key", flat=True)) == [f"tick:{runner.pk}:2025-03-03T14:37:00Z"]


def test_one_dispatch_inserts_every_new_tick_together_and_publishes_each_once_committed(
    django_capture_on_commit_callbacks: Any,
) -> None:
    runners = [_runner(name=f"bot {i}") for i in range(3)]
    at = datetime(2025, 3, 3, 14, 37, 42, tzinfo=UTC)
    with django_capture_on_commit_callbacks() as published:
        report = tick_dispatch(now=at)
    assert len(report["enqueued"]) == 3 and len(published) == 3
    assert {j.runner_id for j in Job.objects.filter(type="tick")} == {r.pk for r in runners}
    with django_capture_on_commit_callbacks() as again:
        assert sorted(tick_dispatch(now=at)["existing"]) == sorted(report["enqueued"])
    assert again == []


def test_a_dispatch_racing_another_falls_back_to_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _runner(name="a"), _runner(name="b")
    at = datetime(2025, 3, 3, 14, 37, 42, tzinfo=UTC)
    taken, _ = tick_enqueue(runner=first, bar_ts=datetime(2025, 3, 3, 14, 37, tzinfo=UTC))
    real_filter = Job.objects.filter

    def blind(*args: Any, **kwargs: Any) -> Any:  # the other dispatcher's row is not seen by the first read
        return real_filter(pk=-1) if "idempotency_key__in" in kwargs else real_filter(*args, **kwargs)

    monkeypatch.setattr(Job.objects, "filter", blind)
    report = tick_dispatch(now=at)
    assert taken.pk in report["existing"] and len(report["enqueued"]) == 1
    assert Job.objects.count() == 2 and Job.objects.get(runner=second).type == "tick"
