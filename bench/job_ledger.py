"""Benchmark: claim-and-close throughput of the job ledger against Celery alone, in the same run.

Both sides: N no-op messages are published to a bench queue while two `celery worker` processes
(prefork, one child each, as `make run` runs them; the same Redis) consume another, idle queue;
then both workers are told to consume the bench queue (`add_consumer`) and the clock runs until
all N are done. Worker start-up and the enqueue itself are not timed.
- job ledger: N `noop` jobs enqueued with job_enqueue (a row each; Celery carries the id). Each
  delivery claims the row (UPDATE … SKIP LOCKED, committed), runs the handler and closes the row
  with the fenced UPDATE. The end: the last row's finished_at.
- peer: N bare no-op Celery tasks (no row, no claim, no close). The end: the queue is empty.

Two phases, each with its own pair of workers: the settings as they are (bench.settings), then
with the proposed CELERY_DB_REUSE_MAX (bench/settings_db_reuse.py). Without it, Celery's Django
fixup closes the database connection around every task, so every ledger job opens a connection.

Target (issue 4): the ledger at ≥ 50 % of bare Celery's rate.

Run: make bench   (or: python -m config.embedded exec -- python bench/job_ledger.py)
BENCH_JOBS=… sets N (default 2,000); BENCH_POOL=solo runs the workers without prefork children.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from celery import shared_task

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import setup_django  # noqa: E402

JOBS = int(os.environ.get("BENCH_JOBS", 2_000))
ROUNDS = 3
POOL = os.environ.get("BENCH_POOL", "prefork")
QUEUE = "bench-jobs"  # not the default queue: a `make run` worker on the same Redis never takes these
IDLE_QUEUE = "bench-idle"
BARE_TASK = "bench.noop"
PHASES = (
    ("settings as they are", "bench.settings"),
    ("with CELERY_DB_REUSE_MAX (proposed)", "bench.settings_db_reuse"),
)


@shared_task(name=BARE_TASK, ignore_result=True)
def bench_noop() -> None:
    """The peer: a bare Celery task (the workers import this module with -I)."""


def wait(predicate: Callable[[], bool], timeout: float, what: str, interval: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise SystemExit(f"timed out: {what}")


def start_workers(settings_module: str) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings_module}
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", POOL, "--concurrency", "1"]
    command += ["-Q", IDLE_QUEUE, "-I", "bench.job_ledger", "--loglevel", "WARNING"]
    command += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
    return [
        subprocess.Popen(
            [*command, "--hostname", f"bench-ledger-{i}@%h"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for i in (1, 2)
    ]


def run_phase(app: Any, redis: Any, settings_module: str) -> tuple[list[float], list[float]]:
    """(bare rates, ledger rates) in jobs/s, ROUNDS of each, interleaved."""
    from django.db import connection
    from django.db.models import Max

    from apps.runners.models import Job
    from apps.runners.services.jobs import job_enqueue

    def ours() -> list[str]:
        return [node for reply in app.control.ping(timeout=0.5) for node in reply if node.startswith("bench-")]

    workers = start_workers(settings_module)
    try:
        wait(lambda: len(ours()) == 2, 60, "both workers answer a ping", 0.2)
        nodes = ours()

        def seconds(side: str, jobs: int) -> float:
            if side == "ledger":
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
            if side == "ledger":
                # Polled slowly so the poll takes no CPU from the workers; the end is exact: the
                # last row's finished_at (the database and this process read the same clock).
                wait(lambda: Job.objects.filter(status=Job.Status.SUCCEEDED).count() == jobs, 900, "ledger", 0.1)
                finished = Job.objects.aggregate(last=Max("finished_at"))["last"]
            else:
                wait(lambda: redis.llen(QUEUE) == 0, 900, "bare", 0.005)
                finished = datetime.now(UTC)
            app.control.cancel_consumer(QUEUE, destination=nodes, reply=True)
            return (finished - started).total_seconds()

        seconds("bare", 200)  # warm-up: connections, imports, prepared statements
        seconds("ledger", 200)
        bare, ledger = [], []
        for _ in range(ROUNDS):
            bare.append(JOBS / seconds("bare", JOBS))
            ledger.append(JOBS / seconds("ledger", JOBS))
        return bare, ledger
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)


def main() -> int:
    setup_django()
    from django.core.management import call_command

    from config.celery import app

    call_command("migrate", verbosity=0)
    app.conf.task_default_queue = QUEUE  # job_enqueue publishes to the default queue
    results = {}
    with app.connection_for_write() as conn:
        redis = conn.default_channel.client
        redis.delete(QUEUE)
        try:
            for name, settings_module in PHASES:
                results[name] = run_phase(app, redis, settings_module)
        finally:
            redis.delete(QUEUE)

    print(
        f"\n{JOBS:,} no-op jobs per round, {ROUNDS} rounds, bare and ledger interleaved; "
        f"2 `celery worker --pool {POOL} --concurrency 1` processes, one Redis\n"
    )
    print(f"{'phase':<38}{'path':<42}{'jobs/s (best)':>14}   rounds")
    ratios = {}
    for name, (bare, ledger) in results.items():
        for path, rates in (("bare Celery task (peer)", bare), ("job ledger: claim → noop → fenced close", ledger)):
            print(f"{name:<38}{path:<42}{max(rates):>14,.0f}   {'  '.join(f'{r:,.0f}' for r in rates)}")
        ratios[name] = max(ledger) / max(bare)
    print()
    for name, ratio in ratios.items():
        verdict = "met" if ratio >= 0.5 else "MISSED"
        print(f"{name}: the ledger runs at {ratio:.0%} of bare Celery's rate (target >= 50%: {verdict})")
    return 0 if ratios[PHASES[0][0]] >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
