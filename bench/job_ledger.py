"""Benchmark: claim-and-close throughput of the job ledger against Celery alone, in the same run.

Both sides: N no-op messages published to a bench queue while two `celery worker --pool solo`
processes (the same command, the same Redis) consume another, idle queue; then both workers are
told to consume the bench queue (`add_consumer`) and the clock runs until all N are done.
- job ledger: N `noop` jobs enqueued with job_enqueue (a row each; Celery carries the id); each
  delivery claims the row (UPDATE … SKIP LOCKED, committed), runs the handler and closes the row
  with the fenced UPDATE. Done: N rows SUCCEEDED.
- peer: N bare no-op Celery tasks (no row, no claim, no close). Done: the queue is empty.
The figures exclude worker start-up and the enqueue itself.

Target (issue 4): the ledger at ≥ 50 % of bare Celery's rate.

Run: make bench   (or: python -m config.embedded exec -- python bench/job_ledger.py)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from celery import shared_task

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import setup_django  # noqa: E402

JOBS = int(os.environ.get("BENCH_JOBS", 5_000))
ROUNDS = 2
QUEUE = "bench-jobs"  # not the default queue: a `make run` worker on the same Redis never takes these
IDLE_QUEUE = "bench-idle"
BARE_TASK = "bench.noop"
# prefork is what `make run` runs (Procfile); BENCH_POOL=solo takes the pool's IPC out of both sides.
POOL = os.environ.get("BENCH_POOL", "prefork")


@shared_task(name=BARE_TASK, ignore_result=True)
def bench_noop() -> None:
    """The peer: a bare Celery task (the workers import this module with -I)."""


def start_workers(names: list[str]) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": os.environ.get("BENCH_WORKER_SETTINGS", "bench.settings")}
    return [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "--pool",
                POOL,
                "--concurrency",
                "1",
                "--hostname",
                name,
                "-Q",
                IDLE_QUEUE,
                "-I",
                "bench.job_ledger",
                "--without-mingle",
                "--without-gossip",
                "--without-heartbeat",
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
        )
        for name in names
    ]


def wait(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.005) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.perf_counter()
        time.sleep(interval)
    raise SystemExit(f"timed out: {what}")


def main() -> int:
    setup_django()
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Max

    from apps.runners.models import Job
    from apps.runners.services.jobs import job_enqueue
    from config.celery import app

    call_command("migrate", verbosity=0)
    app.conf.task_default_queue = QUEUE
    names = ["bench-ledger-1@%h", "bench-ledger-2@%h"]
    workers = start_workers(names)
    with app.connection_for_write() as conn:
        redis = conn.default_channel.client
        redis.delete(QUEUE)
        try:

            def ours() -> list[str]:
                return [node for reply in app.control.ping(timeout=0.5) for node in reply if node.startswith("bench-")]

            wait(lambda: len(ours()) == 2, 60, "both workers answer a ping", 0.2)
            nodes = ours()

            def consume(measure: str, jobs: int) -> float:
                """Publish `jobs` messages, then let the workers at them; seconds until all done."""
                if measure == "ledger":
                    with connection.cursor() as cursor:  # no dead rows of the last round to vacuum
                        cursor.execute(f"TRUNCATE {Job._meta.db_table}")
                    for _ in range(jobs):
                        job_enqueue(type="noop", payload={})
                else:
                    for _ in range(jobs):
                        app.send_task(BARE_TASK, queue=QUEUE)
                assert redis.llen(QUEUE) == jobs, "the messages did not reach the bench queue"
                started = datetime.now(UTC)
                app.control.add_consumer(QUEUE, destination=nodes, reply=True)
                if measure == "ledger":
                    # Polled slowly (the poll must not take the workers' CPU); the end is exact:
                    # the last row's finished_at (the database and this process share the clock).
                    wait(lambda: Job.objects.filter(status=Job.Status.SUCCEEDED).count() == jobs, 600, "ledger", 0.1)
                    finished = Job.objects.aggregate(last=Max("finished_at"))["last"]
                else:
                    wait(lambda: redis.llen(QUEUE) == 0, 600, "bare", 0.005)
                    finished = datetime.now(UTC)
                app.control.cancel_consumer(QUEUE, destination=nodes, reply=True)
                return (finished - started).total_seconds()

            consume("bare", 200)  # warm-up: connections, imports, plans
            consume("ledger", 200)
            bare, ledger = [], []
            for _ in range(ROUNDS):  # interleaved, so both see the same machine
                bare.append(JOBS / consume("bare", JOBS))
                ledger.append(JOBS / consume("ledger", JOBS))
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=30)
            redis.delete(QUEUE)

    best_bare, best_ledger = max(bare), max(ledger)
    ratio = best_ledger / best_bare
    print(f"\n{JOBS:,} no-op jobs per round, {ROUNDS} rounds interleaved; 2 `celery worker --pool solo` processes\n")
    print(f"{'path':<48}{'jobs/s (best)':>15}{'rounds':>24}")
    for name, rates in (
        ("bare Celery task (peer)", bare),
        ("job ledger: claim → noop → fenced close", ledger),
    ):
        print(f"{name:<48}{max(rates):>15,.0f}{'  '.join(f'{r:,.0f}' for r in rates):>24}")
    verdict = "met" if ratio >= 0.5 else "MISSED"
    print(f"\nthe ledger runs at {ratio:.0%} of bare Celery's rate (target >= 50%: {verdict})")
    return 0 if ratio >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
