"""The job ledger under real processes: `celery worker` and `celery beat` subprocesses on the real
Redis broker and the test database (tests/runners/worker_settings.py: 2 s leases, test handlers),
and concurrent claimers, each on its own database connection."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from apps.bots.models import Bot
from apps.runners.models import Job, Runner
from apps.runners.services.jobs import job_claim, job_enqueue, tick_dispatch
from apps.runners.tasks import job_run
from apps.telemetry.models import AuditEvent, DecisionTrace
from tests.runners.job_handlers import RAN

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "celery"


class Processes:
    """Celery processes started by a test; every one is stopped (or killed) at teardown. Their
    output goes to files that a failed wait prints."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.runners.worker_settings",
            "TRADEOPS_TEST_DB_NAME": connection.settings_dict["NAME"],
            **(env or {}),
        }
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", *args, "--loglevel", "INFO"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: teardown reaches prefork children too
        )
        self.started[name] = proc
        return proc

    def worker(self, name: str, *, pool: str = "solo", env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        extra = ["--concurrency", "1"] if pool == "prefork" else []
        return self.start(
            name,
            "worker",
            "--pool",
            pool,
            *extra,
            "--hostname",
            f"{name}@%h",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            env=env,
        )

    def beat(self) -> subprocess.Popen[bytes]:
        return self.start("beat", "beat")

    def output(self) -> str:
        logs = {name: (self.logs / f"{name}.log").read_text(errors="replace") for name in self.started}
        return "\n".join(f"--- {name} ---\n{text[-3000:]}" for name, text in logs.items())

    def stop(self, name: str) -> None:
        proc = self.started[name]
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

    def stop_all(self) -> None:
        for name in self.started:
            self.stop(name)
        for proc in self.started.values():
            with contextlib.suppress(ProcessLookupError):  # leftovers, e.g. a prefork child of a killed parent
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def broker(real_celery: Any) -> Iterator[Any]:
    """The real Redis broker, emptied: no message, no unacked message of an earlier test (a
    killed worker leaves one, which Redis would redeliver only after the visibility timeout)."""
    with real_celery.connection_for_write() as conn:
        client = conn.default_channel.client
        real_celery.control.purge()
        client.delete("unacked", "unacked_index", "unacked_mutex")
        yield client
        real_celery.control.purge()
        client.delete("unacked", "unacked_index", "unacked_mutex")


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(tmp_path)
    try:
        yield procs
    finally:
        procs.stop_all()


def _wait_for(predicate: Callable[[], bool], procs: Processes | None, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"not met within {timeout:.0f}s: {what}\n{procs.output() if procs else ''}")


def _watchdog_every_second() -> None:
    """The declared schedule (setup_periodic_tasks), with the watchdog every second instead of 15 s
    and nothing else firing."""
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    call_command("setup_periodic_tasks", stdout=io.StringIO())
    every_second, _ = IntervalSchedule.objects.get_or_create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="tradeops:job-watchdog").update(interval=every_second)
    PeriodicTask.objects.filter(name__startswith="tradeops:").exclude(name="tradeops:job-watchdog").update(
        enabled=False
    )


def _job(pk: int) -> Job:
    return Job.objects.get(pk=pk)


def test_a_worker_killed_holding_a_lease_is_replaced_after_the_lease_expires_and_the_job_runs_once(
    broker: Any, processes: Processes
) -> None:
    _watchdog_every_second()
    job = job_enqueue(type="test.record", payload={"hang_on_attempt": 1})
    worker_a = processes.worker("kill-a")
    processes.beat()
    _wait_for(
        lambda: _job(job.pk).status == Job.Status.RUNNING and _job(job.pk).leased_by.startswith("kill-a@"),
        processes,
        "worker A holds the lease",
    )
    held = _job(job.pk)
    worker_a.send_signal(signal.SIGKILL)  # mid-job: no cleanup, no ack, the lease just stays
    worker_a.wait(timeout=10)

    processes.worker("kill-b")
    _wait_for(lambda: _job(job.pk).status == Job.Status.SUCCEEDED, processes, "worker B completes the job")

    done = _job(job.pk)
    assert done.attempts == 2 and done.leased_by.startswith("kill-b@")
    requeued = AuditEvent.objects.get(action="job.requeued", target_id=str(job.pk))
    assert requeued.after["leased_by"] == held.leased_by
    assert requeued.created_at >= held.lease_expires_at  # not taken back while the lease was live
    # Exactly once: the one side effect is worker B's.
    ran = AuditEvent.objects.filter(action=RAN, target_id=str(job.pk))
    assert [event.after["worker"] for event in ran] == [done.leased_by]


def test_a_job_that_crashes_its_worker_every_time_ends_dead_after_max_attempts_and_never_runs_again(
    broker: Any, processes: Processes
) -> None:
    _watchdog_every_second()
    job = job_enqueue(type="test.record", payload={"crash_process": True}, max_attempts=3)
    processes.worker("poison", pool="prefork")  # the pool replaces each child the job kills
    processes.beat()
    _wait_for(lambda: _job(job.pk).status == Job.Status.DEAD, processes, "the poison job is dead-lettered", 45)

    dead = _job(job.pk)
    assert dead.attempts == 3
    assert dead.error.startswith("lease expired after 3 attempts (worker lost)")
    assert AuditEvent.objects.filter(action="job.requeued", target_id=str(job.pk)).count() == 2
    assert AuditEvent.objects.filter(action="job.dead_lettered", target_id=str(job.pk)).count() == 1

    # Delivered again (a stray redelivery), it is not claimed: a canary behind it proves the
    # worker consumed the message, and the queue stays empty (no loop).
    processes.stop("beat")
    job_run.delay(job.pk)
    canary = job_enqueue(type="noop")
    _wait_for(lambda: _job(canary.pk).status == Job.Status.SUCCEEDED, processes, "the canary behind it ran")
    _wait_for(lambda: broker.llen(QUEUE) == 0, processes, "the queue drains")
    assert (_job(job.pk).status, _job(job.pk).attempts) == (Job.Status.DEAD, 3)


def test_the_same_tick_job_delivered_three_times_runs_once(broker: Any, processes: Processes) -> None:
    bot = Bot.objects.create(name="MES trend", strategy_key="trend_following", instrument="MES", stage="PAPER")
    runner = Runner.objects.create(bot=bot, status=Runner.Status.RUNNING, generation=1)
    bar_time = datetime(2025, 3, 3, 14, 37, 42, tzinfo=UTC)
    tick_dispatch(now=bar_time)  # published once, on commit
    job = Job.objects.get(type="tick")
    job_run.delay(job.pk)  # the same id twice more: a duplicate publish and a redelivery
    job_run.delay(job.pk)
    assert broker.llen(QUEUE) == 3

    processes.worker("dup-a")
    processes.worker("dup-b")
    _wait_for(
        lambda: broker.llen(QUEUE) == 0 and broker.hlen("unacked") == 0 and _job(job.pk).status == "SUCCEEDED",
        processes,
        "all three deliveries consumed and acknowledged",
    )
    done = _job(job.pk)
    assert done.attempts == 1
    assert done.result == {
        "runner_id": runner.pk,
        "bar_ts": "2025-03-03T14:37:00Z",
        "outcome": "NO_TRADE",
        "trace": DecisionTrace.objects.get(runner_id=runner.pk).pk,
        "stopped_at": "guard",
        "reason_code": "CONFIG_INVALID",  # this bot has no parameters: the tick says so, and trades nothing
    }
    assert tick_dispatch(now=bar_time)["existing"] == [job.pk]
    assert Job.objects.count() == 1


def test_a_worker_sends_each_close_with_its_next_claim_and_its_last_held_close_when_it_stops(
    broker: Any, processes: Processes
) -> None:
    """With a hold longer than the test, only a claim or the pool process's end can send a close:
    every job but the last is closed by the next one's claim, and the last when the worker stops."""
    processes.worker("holder", pool="prefork", env={"JOB_CLOSE_HOLD_SECONDS": "600"})
    ids = [job_enqueue(type="noop").pk for _ in range(5)]
    _wait_for(
        lambda: [_job(pk).status for pk in ids] == [Job.Status.SUCCEEDED] * 4 + [Job.Status.RUNNING],
        processes,
        "four jobs closed by the claims after them, the fifth's close held",
    )
    time.sleep(0.5)
    assert _job(ids[-1]).status == Job.Status.RUNNING  # held: no claim came
    processes.stop("holder")  # a warm shutdown: the pool process ends, and sends its held close first
    assert [(_job(pk).status, _job(pk).attempts) for pk in ids] == [(Job.Status.SUCCEEDED, 1)] * 5


def test_a_worker_whose_database_connection_was_cut_reconnects_for_the_next_task(
    broker: Any, processes: Processes
) -> None:
    """The worker keeps its connection across tasks (CELERY_DB_REUSE_MAX, as `make run` runs it).
    Cut it, as a database restart would: the task that finds it cut fails (its job stays QUEUED
    for the watchdog), and the next task runs on a new connection instead of failing too."""
    processes.worker("cut", pool="prefork")
    first = job_enqueue(type="noop")
    _wait_for(lambda: _job(first.pk).status == Job.Status.SUCCEEDED, processes, "a first job runs")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        assert cursor.fetchall(), "the worker held a connection to cut"
    finds_it_cut = job_enqueue(type="noop")
    after = job_enqueue(type="noop")
    _wait_for(lambda: _job(after.pk).status == Job.Status.SUCCEEDED, processes, "the next job runs")
    # Failed before it could claim: still QUEUED, which the watchdog republishes (or it ran, if
    # the connection was replaced before it).
    assert _job(finds_it_cut.pk).status in (Job.Status.QUEUED, Job.Status.SUCCEEDED)
    assert _job(finds_it_cut.pk).attempts == (1 if _job(finds_it_cut.pk).status == Job.Status.SUCCEEDED else 0)


def test_eight_concurrent_claimers_over_a_thousand_due_jobs_claim_each_exactly_once() -> None:
    now = timezone.now()
    Job.objects.bulk_create([Job(type="noop", available_at=now, trace_id="bulk") for _ in range(1000)])
    due = set(Job.objects.values_list("pk", flat=True))
    barrier = threading.Barrier(8)
    claims: dict[str, list[int]] = {}

    def claimer(name: str) -> None:
        mine: list[int] = []
        try:
            barrier.wait()
            while (job := job_claim(worker=name, lease_seconds=60)) is not None:
                mine.append(job.pk)
        finally:
            claims[name] = mine
            connection.close()

    threads = [threading.Thread(target=claimer, args=(f"claimer-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    every_claim = [pk for mine in claims.values() for pk in mine]
    assert len(every_claim) == 1000 and set(every_claim) == due  # each claimed, none twice
    assert sum(1 for mine in claims.values() if mine) >= 2  # the claims really interleaved
    rows = dict(Job.objects.values_list("pk", "leased_by"))
    assert all(rows[pk] == name for name, mine in claims.items() for pk in mine)
    assert set(Job.objects.values_list("status", "attempts")) == {(Job.Status.RUNNING, 1)}


def test_a_claimer_never_waits_behind_a_row_that_another_claimer_has_locked() -> None:
    now = timezone.now()
    older = Job.objects.create(type="noop", available_at=now - timedelta(seconds=5), trace_id="t")
    newer = Job.objects.create(type="noop", available_at=now, trace_id="t")
    locked, release = threading.Event(), threading.Event()

    def holder() -> None:  # a claimer caught between its SELECT … FOR UPDATE and its commit
        try:
            with transaction.atomic():
                list(Job.objects.select_for_update().filter(pk=older.pk))
                locked.set()
                release.wait(20)
        finally:
            connection.close()

    got: dict[str, Job | None] = {}

    def claimer() -> None:
        try:
            got["oldest due"] = job_claim(worker="w", lease_seconds=60)
            got["the locked one"] = job_claim(job_id=older.pk, worker="w", lease_seconds=60)
        finally:
            connection.close()

    holding = threading.Thread(target=holder)
    holding.start()
    try:
        assert locked.wait(10)
        claiming = threading.Thread(target=claimer)
        claiming.start()
        claiming.join(5)
        waited = claiming.is_alive()
    finally:
        release.set()
        holding.join(10)
    claiming.join(10)
    assert not waited
    assert got["oldest due"].pk == newer.pk and got["the locked one"] is None
