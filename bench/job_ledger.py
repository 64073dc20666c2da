"""Benchmark: claim-and-close throughput of the job ledger against Celery alone, in the same run.

Workers: `celery -A config worker --concurrency 2` (prefork, two pool processes): the command and
settings `make run` uses (Procfile), on the same Redis and database as this process. They start
on an idle queue. For each round, N messages are published to the bench queue and the workers are
told to consume it (`add_consumer`). The clock starts when the first message is taken and stops
when every message has been taken and acknowledged (the queue and Redis's unacked set are both
empty) and, for the ledger, every row is closed (job_run acknowledges early: the row, not the
message, says a job is done). Start-up and publishing are not timed. Rounds alternate between the two sides, and
between which side goes first:
- peer: N bare no-op Celery tasks with default options (no row, no claim, no close);
- job ledger: N `noop` jobs (a row each; Celery carries the id) run by the real `job_run` task,
  with the settings as they are: claim (UPDATE … SKIP LOCKED, committed), handler,
  fenced close. Every row must end SUCCEEDED, or the run fails.
The figure: the median over rounds of (ledger jobs/s ÷ the bare jobs/s of the same round).

Target (issue 4): the ledger at ≥ 50 % of bare Celery's rate. Exit status 1 when missed, 2 when
the run failed.

Run: make bench   (or: python -m config.embedded exec -- python bench/job_ledger.py)
Knobs: BENCH_JOBS (N per round, default 1,000), BENCH_ROUNDS (per side, default 8);
BENCH_WORKERS=2x1 runs two `celery worker --concurrency 1` processes instead of one with two (not
how `make run` runs them: each pool process then has a consumer of its own, which nearly doubles
bare Celery's rate on two cores, while the ledger's stays bound by its two durable commits per job);
BENCH_BREAKDOWN=1 adds a third side for reference: the bare task with acks_late=True (Celery's own
cost of acknowledging after the work); BENCH_TIMEOUT (seconds for
the whole run, default 240): past it the run stops and prints what it was waiting for;
BENCH_PROFILE=DIR: cProfile every worker process into DIR and print where their time went.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery import shared_task
from celery.signals import worker_process_init, worker_process_shutdown, worker_shutdown

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import setup_django, stop_processes  # noqa: E402

JOBS = int(os.environ.get("BENCH_JOBS", 1_000))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 8))
WARMUP_JOBS = 200
TOPOLOGY = os.environ.get("BENCH_WORKERS", "1x2")  # processes x pool processes each
BREAKDOWN = os.environ.get("BENCH_BREAKDOWN", "") not in ("", "0")
BUDGET = float(os.environ.get("BENCH_TIMEOUT", 240))
PROFILE_DIR = os.environ.get("BENCH_PROFILE", "")
QUEUE = "bench-jobs"  # not the default queue: a `make run` worker on the same Redis never takes these
IDLE_QUEUE = "bench-idle"
UNACKED = "unacked"  # kombu's Redis transport: delivered, not yet acknowledged

BARE, LATE, LEDGER = "bare", "bare+acks_late", "ledger"
LABELS = {
    BARE: "bare Celery task (peer)",
    LATE: "bare task, acks_late=True (reference)",
    LEDGER: "job ledger: claim → noop → fenced close",
}


@shared_task(name="bench.noop", ignore_result=True)
def bench_noop() -> None:
    """The peer: a bare Celery task with default options (the workers import this module with -I)."""


@shared_task(name="bench.noop_acks_late", ignore_result=True, acks_late=True)
def bench_noop_acks_late() -> None:
    """Reference only (BENCH_BREAKDOWN): the bare task acknowledged after it ran."""


# -- profiling (BENCH_PROFILE), in the worker processes, which import this module --------------
_profiler: Any = None


def _profile_start(**kwargs: Any) -> None:
    global _profiler
    import cProfile

    if _profiler is not None:  # inherited from the parent at fork: not this process's
        _profiler.disable()
    _profiler = cProfile.Profile()
    _profiler.enable()


def _profile_dump(kind: str) -> Callable[..., None]:
    def dump(**kwargs: Any) -> None:
        if _profiler is not None:
            _profiler.disable()
            _profiler.dump_stats(Path(os.environ["BENCH_PROFILE"]) / f"{kind}-{os.getpid()}.prof")

    return dump


if PROFILE_DIR and "worker" in sys.argv:  # a `celery worker` that this benchmark started
    _profile_start()  # the consumer (parent) process
    worker_shutdown.connect(_profile_dump("consumer"), weak=False)
    worker_process_init.connect(_profile_start, weak=False)
    worker_process_shutdown.connect(_profile_dump("pool"), weak=False)


# -- the run -----------------------------------------------------------------------------------
class Stuck(Exception):
    """A wait ran out of time, or a check failed; the message says what was expected."""


class Bench:
    def __init__(self, app: Any, redis: Any, logs: Path) -> None:
        self.app, self.redis, self.logs = app, redis, logs
        self.workers: list[subprocess.Popen[bytes]] = []
        self.nodes: list[str] = []
        self.waiting_for = "start-up"

    # workers
    def start_workers(self) -> None:
        processes, pool = (int(x) for x in TOPOLOGY.split("x"))
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}
        tag = f"bench{os.getpid()}"
        for i in range(processes):
            command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency", str(pool)]
            command += ["-Q", IDLE_QUEUE, "-I", "bench.job_ledger", "--loglevel", "WARNING"]
            command += ["--without-mingle", "--without-gossip", "--without-heartbeat", "--hostname", f"{tag}-{i}@%h"]
            with (self.logs / f"worker-{i}.log").open("wb") as log:
                self.workers.append(
                    subprocess.Popen(
                        command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                    )
                )

        def answered() -> bool:
            for worker in self.workers:
                if worker.poll() is not None:
                    raise Stuck(f"a worker exited at start-up with status {worker.returncode}")
            replies = self.app.control.ping(timeout=0.5)
            self.nodes = sorted(node for reply in replies for node in reply if node.startswith(f"{tag}-"))
            return len(self.nodes) == processes

        self.wait(answered, 60, f"{processes} worker(s) to start and answer a ping", 0.2)

    def stop_workers(self) -> None:
        stop_processes(self.workers)

    def control(self, command: str) -> None:
        self.waiting_for = f"{command} replies from {self.nodes}"
        replies = getattr(self.app.control, command)(QUEUE, destination=self.nodes, reply=True, timeout=5)
        answered = sorted(node for reply in replies for node in reply)
        if answered != self.nodes:
            raise Stuck(f"{command}: replies from {answered}, expected {self.nodes}: {replies}")

    # waiting
    def wait(self, predicate: Callable[[], bool], timeout: float, what: str, interval: float | None = None) -> None:
        self.waiting_for = what
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise Stuck(f"not within {timeout:.0f}s: {what}")
            # Coarse while the backlog is long (the poll takes CPU from the workers), fine at the end.
            time.sleep(interval if interval is not None else 0.02 if self.redis.llen(QUEUE) > 40 else 0.001)

    def drained(self) -> bool:
        queued, unacked = self.redis.pipeline().llen(QUEUE).hlen(UNACKED).execute()
        return queued == 0 and unacked == 0

    def state(self) -> str:
        parts = [f"waiting for: {self.waiting_for}"]
        with contextlib.suppress(Exception):
            parts.append(f"bench queue: {self.redis.llen(QUEUE)} messages; unacked: {self.redis.hlen(UNACKED)}")
        with contextlib.suppress(Exception):
            parts.append(f"ledger rows by status: {ledger_rows()}")
        parts.append(f"worker exit codes: {[w.poll() for w in self.workers]}")
        for log in sorted(self.logs.glob("worker-*.log")):
            parts.append(f"--- {log.name} (tail) ---\n{log.read_text(errors='replace')[-1500:]}")
        return "\n".join(parts)

    # rounds
    def round(self, side: str, jobs: int) -> float:
        """Jobs/s of one round: publish `jobs` messages, then time their drain."""
        from django.db import connection
        from django.utils import timezone

        from apps.core import context
        from apps.runners.models import Job
        from apps.runners.tasks import job_run

        self.waiting_for = f"publishing {jobs:,} {side} messages"
        with self.app.producer_or_acquire() as producer:
            if side == LEDGER:
                with connection.cursor() as cursor:  # no dead rows of the last round
                    cursor.execute(f"TRUNCATE {Job._meta.db_table}")
                now = timezone.now()
                # The rows job_enqueue writes (which publishes each on commit; here, once all are in).
                rows = Job.objects.bulk_create(
                    Job(type="noop", payload={}, max_attempts=3, available_at=now, trace_id=context.new_trace_id())
                    for _ in range(jobs)
                )
                for row in rows:
                    job_run.apply_async(args=[row.pk], queue=QUEUE, producer=producer)
            else:
                task = bench_noop if side == BARE else bench_noop_acks_late
                for _ in range(jobs):
                    task.apply_async(queue=QUEUE, producer=producer)
        if (queued := self.redis.llen(QUEUE)) != jobs:
            raise Stuck(f"{queued} messages in the bench queue after publishing {jobs}")

        self.control("add_consumer")
        # The clock starts when the first message is taken: a worker adds the queue to its BRPOP
        # only when the current one returns, up to a second later (kombu's brpop_timeout), which
        # is no part of the throughput. Timed: the jobs still queued at that moment.
        first: dict[str, float] = {}

        def taken() -> bool:
            queued = self.redis.llen(QUEUE)
            if queued < jobs:
                first.update(at=time.perf_counter(), queued=queued)
            return bool(first)

        self.wait(taken, 10, f"the workers to take the first {side} message", 0.0005)
        self.wait(self.drained, max(30.0, jobs / 25), f"the workers to drain {jobs:,} {side} messages")
        if side == LEDGER:
            # job_run acknowledges early (apps/runners/tasks.py): a drained queue is not yet every job
            # done. The ledger's end is its last row closed.
            self.wait(
                lambda: Job.objects.filter(status=Job.Status.SUCCEEDED).count() == jobs,
                30,
                f"the last of {jobs:,} ledger rows to close",
                0.002,
            )
        seconds = time.perf_counter() - first["at"]
        self.control("cancel_consumer")
        if side == LEDGER and (rows_by_status := ledger_rows()) != {Job.Status.SUCCEEDED: jobs}:
            raise Stuck(f"every ledger job should have SUCCEEDED; rows by status: {rows_by_status}")
        return first["queued"] / seconds


def ledger_rows() -> dict[str, int]:
    from django.db.models import Count

    from apps.runners.models import Job

    return dict(Job.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))


def main() -> int:
    setup_django()
    from django.core.management import call_command

    from config.celery import app

    call_command("migrate", verbosity=0)
    profile_dir = Path(PROFILE_DIR).resolve() if PROFILE_DIR else None
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
        for old in profile_dir.glob("*.prof"):
            old.unlink()
        os.environ["BENCH_PROFILE"] = str(profile_dir)
    sides = [BARE, LEDGER, *([LATE] if BREAKDOWN else [])]
    rates: dict[str, list[float]] = {side: [] for side in sides}
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as logs, app.connection_for_write() as conn:
        redis = conn.default_channel.client
        bench = Bench(app, redis, Path(logs))

        def out_of_time(signum: int, frame: Any) -> None:
            raise Stuck(f"the whole run took longer than BENCH_TIMEOUT={BUDGET:.0f}s")

        signal.signal(signal.SIGALRM, out_of_time)
        signal.alarm(max(1, int(BUDGET)))
        faulthandler.dump_traceback_later(BUDGET + 30, exit=True)  # should even the alarm not get through
        try:
            redis.delete(QUEUE)
            bench.start_workers()
            for side in sides:  # warm-up: connections, imports, prepared statements
                bench.round(side, WARMUP_JOBS)
            for i in range(ROUNDS):
                for side in sides if i % 2 == 0 else sides[::-1]:
                    rates[side].append(bench.round(side, JOBS))
                    print(f"  round {i + 1} {side:<15}{rates[side][-1]:8,.0f} jobs/s", flush=True)
        except Stuck as stuck:
            signal.alarm(0)
            print(f"\nFAILED: {stuck}\n{bench.state()}", file=sys.stderr, flush=True)
            return 2
        finally:
            signal.alarm(0)
            bench.waiting_for = "the workers to stop"
            bench.stop_workers()
            faulthandler.cancel_dump_traceback_later()
            redis.delete(QUEUE)

    processes, pool = TOPOLOGY.split("x")
    print(
        f"\n{JOBS:,} no-op jobs per round, {ROUNDS} rounds per side, alternating; {processes} x "
        f"`celery worker --concurrency {pool}` (prefork), one Redis; {time.monotonic() - started:.0f}s in all\n"
    )
    print(f"{'path':<44}{'jobs/s (median)':>16}   rounds")
    for side in sides:
        rounds = "  ".join(f"{r:,.0f}" for r in rates[side])
        print(f"{LABELS[side]:<44}{statistics.median(rates[side]):>16,.0f}   {rounds}")
    ratios = [ours / peer for ours, peer in zip(rates[LEDGER], rates[BARE], strict=True)]
    ratio = statistics.median(ratios)
    print(
        f"\nthe ledger runs at {ratio:.0%} of bare Celery's rate (median of the rounds' ratios; "
        f"{min(ratios):.0%}–{max(ratios):.0%}); target >= 50%: {'met' if ratio >= 0.5 else 'MISSED'}"
    )
    if BREAKDOWN:
        late = statistics.median(rates[LATE]) / statistics.median(rates[BARE])
        print(f"reference: the bare task with acks_late=True runs at {late:.0%} of the bare task's rate")
    if profile_dir:
        summarize_profiles(profile_dir)
    return 0 if ratio >= 0.5 else 1


def summarize_profiles(directory: Path) -> None:
    import pstats

    for kind in ("pool", "consumer"):
        files = sorted(directory.glob(f"{kind}-*.prof"))
        if not files:
            print(f"\nno {kind} profile was written")
            continue
        print(f"\n{kind} process(es) ({len(files)}), by cumulative time (the profiler slows them down):")
        pstats.Stats(*map(str, files), stream=sys.stdout).sort_stats("cumulative").print_stats(30)


if __name__ == "__main__":
    sys.exit(main())
