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
  with the settings as they are: claim (UPDATE … SKIP LOCKED, committed), handler, fenced close
  (held for the worker's next claim, and sent with it in one statement). Every row must end
  SUCCEEDED, or the run fails. The rows are deleted (and the table vacuumed) before each ledger round; only `noop` rows:
  other benchmarks' rows may reference theirs.
The figure: the median over rounds of (ledger jobs/s ÷ the bare jobs/s of the same round).

Two phases, each with its rounds (BENCH_LOAD=0: idle only, 1: loaded only, unset: both):
- idle: nothing but this benchmark (other programs on the machine are not stopped);
- loaded: a fixed background load the benchmark starts before the phase's rounds and stops after
  them: one CPU-bound process per core (a busy loop), as one program in a session of its own, the
  way `make run` runs a matrix (the `backtests` worker's pool); BENCH_LOAD_SESSIONS=each makes
  each busy process a program of its own, a harsher load (see BackgroundLoad).
Under that load a commit's WAL flush (fdatasync) and every wake-up of a process that waited take
milliseconds instead of tens of microseconds; bare Celery makes no commit, the ledger one per job
(a job's close goes with the next claim, in one statement that does not wait for the flush).
BENCH_SCHED=1 prints, per job and per process group, where the time went (kernel schedstat: on a
CPU, runnable but waiting for one, times scheduled in).

Target (issue 4, and issue 10 for the loaded phase): the ledger at ≥ 50 % of bare Celery's rate in
each phase. Exit status 1 when missed, 2 when the run failed.

Run: make bench   (or: python -m config.embedded exec -- python bench/job_ledger.py)
Knobs: BENCH_JOBS (N per round, default 1,000), BENCH_ROUNDS (per side and phase, default 8),
BENCH_LOAD, BENCH_LOAD_SESSIONS, BENCH_SCHED (above);
BENCH_WORKERS=2x1 runs two `celery worker --concurrency 1` processes instead of one with two (not
how `make run` runs them: each pool process then has a consumer of its own, which nearly doubles
bare Celery's rate on two cores, while the ledger's stays bound by its round trips to the database);
BENCH_BREAKDOWN=1 adds a third side for reference: the bare task with acks_late=True (Celery's own
cost of acknowledging after the work); BENCH_TIMEOUT (seconds for
the whole run, default 480): past it the run stops and prints what it was waiting for;
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
BUDGET = float(os.environ.get("BENCH_TIMEOUT", 480))
PROFILE_DIR = os.environ.get("BENCH_PROFILE", "")
# Phases: idle, then under a fixed background load (BENCH_LOAD=0: idle only; 1: loaded only).
LOAD = os.environ.get("BENCH_LOAD", "")
SCHED = os.environ.get("BENCH_SCHED", "") not in ("", "0")
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
        self.phase = "idle"
        self.sched_before: dict[int, tuple[str, int, int, int]] = {}
        self.sched: dict[tuple[str, str, str], list[tuple[float, float, float]]] = {}

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

    # where the time went (BENCH_SCHED): the kernel's per-task accounting, /proc/PID/task/*/schedstat
    def sched_snapshot(self) -> dict[int, tuple[str, int, int, int]]:
        """{pid: (group, ns on a CPU, ns runnable but waiting for a CPU)} for the processes a round
        involves: the worker (its consumer and pool processes), the database backends serving it, PostgreSQL's
        own processes (WAL writer, checkpointer...), Redis."""
        from django.db import connection

        from config import embedded

        groups: dict[int, str] = {}
        leaders = {w.pid for w in self.workers}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError, ValueError, IndexError):
                    fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[2]) in leaders:  # its process group: a worker and its pool
                        pid = int(entry.name)
                        groups[pid] = "celery consumer" if pid in leaders else "celery pool"
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid, backend_type = 'client backend' AND datname = current_database() "
                "FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
            )
            for pid, ours in cursor.fetchall():
                groups[pid] = "postgres backends" if ours else "postgres others"
        if redis_pid := embedded._redis_pid():
            groups[redis_pid] = "redis"
        snapshot: dict[int, tuple[str, int, int, int]] = {}
        for pid, group in groups.items():
            run = wait = count = 0
            with contextlib.suppress(OSError):
                for task in os.scandir(f"/proc/{pid}/task"):
                    on_cpu, waiting, slices = Path(task.path, "schedstat").read_text().split()
                    run, wait, count = run + int(on_cpu), wait + int(waiting), count + int(slices)
            snapshot[pid] = (group, run, wait, count)
        return snapshot

    def sched_record(self, side: str, jobs: int) -> None:
        """Per job of the round, by group: CPU time and run-queue wait. A process that started
        during the round counts from zero; one that ended during it is missed."""
        totals: dict[str, list[float]] = {}
        for pid, (group, run, wait, count) in self.sched_snapshot().items():
            _, run0, wait0, count0 = self.sched_before.get(pid, (group, 0, 0, 0))
            total = totals.setdefault(group, [0.0, 0.0, 0.0])
            total[0] += (run - run0) / jobs / 1e6
            total[1] += (wait - wait0) / jobs / 1e6
            total[2] += (count - count0) / jobs
        for group, (run_ms, wait_ms, slices) in totals.items():
            self.sched.setdefault((self.phase, side, group), []).append((run_ms, wait_ms, slices))

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
                # No rows (nor dead row versions) of the last round; only this benchmark's own rows
                # go (other benchmarks' rows, e.g. backtests, reference jobs of theirs).
                Job.objects.filter(type="noop").delete()
                with connection.cursor() as cursor:
                    cursor.execute(f"VACUUM ANALYZE {Job._meta.db_table}")
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

        self.sched_before = self.sched_snapshot() if SCHED else {}
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
                lambda: Job.objects.filter(type="noop", status=Job.Status.SUCCEEDED).count() == jobs,
                30,
                f"the last of {jobs:,} ledger rows to close",
                0.002,
            )
        seconds = time.perf_counter() - first["at"]
        if SCHED:
            self.sched_record(side, jobs)
        self.control("cancel_consumer")
        if side == LEDGER and (rows_by_status := ledger_rows()) != {Job.Status.SUCCEEDED: jobs}:
            raise Stuck(f"every ledger job should have SUCCEEDED; rows by status: {rows_by_status}")
        return first["queued"] / seconds


def ledger_rows() -> dict[str, int]:
    from django.db.models import Count

    from apps.runners.models import Job

    return dict(
        Job.objects.filter(type="noop").values_list("status").annotate(n=Count("id")).values_list("status", "n")
    )


# The load runs as one program (BENCH_LOAD_SESSIONS=one, the default) or as one program per busy
# process (each): see BackgroundLoad.
LOAD_SESSIONS = os.environ.get("BENCH_LOAD_SESSIONS", "one")
_BUSY = """
import os, sys
for _ in range(int(sys.argv[1]) - 1):
    if os.fork() == 0:
        break
while True:
    pass
"""


class BackgroundLoad:
    """The fixed background load of the loaded phase: one CPU-bound Python process per core this
    benchmark may run on (a busy loop, nothing else), at the workers' own priority, started before
    the phase's rounds and stopped (and waited for) after them.

    How they are grouped matters on Linux, whose scheduler (with autogroup, on here: it prints
    kernel.sched_autogroup_enabled) shares the CPUs between sessions first and only then between the
    processes of a session. By default the load is one program in a session of its own whose
    processes, one per core, are its pool: what a matrix is under `make run`, where honcho starts the
    Procfile's `backtests` worker (a consumer and its prefork pool) in its own session, as it does the
    `worker` the ledger runs in. BENCH_LOAD_SESSIONS=each starts every busy process as a program of
    its own (a session each), i.e. as many competing programs as cores: a harsher load."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen[bytes]] = []
        self.count = 0
        self.started_at = 0.0

    def start(self, count: int) -> None:
        self.count = count
        groups = [count] if LOAD_SESSIONS == "one" else [1] * count
        for size in groups:
            self.processes.append(
                subprocess.Popen(
                    [sys.executable, "-c", _BUSY, str(size)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,  # a session (and process group) of its own: killed as a group
                )
            )
        self.started_at = time.monotonic()

    def share(self) -> float:
        """The CPU time the load got so far, as a fraction of one core per busy process."""
        ticks = os.sysconf("SC_CLK_TCK")
        groups = {proc.pid for proc in self.processes}
        used = 0.0
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    fields = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
                    if int(fields[2]) in groups:
                        used += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
        wall = time.monotonic() - self.started_at
        return used / (wall * self.count) if self.count and wall > 0 else 0.0

    def stop(self) -> None:
        stop_processes(self.processes)  # SIGTERM, then SIGKILL to each process group
        self.processes = []


def autogroup() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip()
    return "unknown"


def phases() -> list[str]:
    if LOAD in ("", "both"):
        return ["idle", "loaded"]
    if LOAD_SESSIONS not in ("one", "each"):
        raise SystemExit(f"BENCH_LOAD_SESSIONS={LOAD_SESSIONS!r}: expected one or each")
    if LOAD in ("0", "1"):
        return ["idle"] if LOAD == "0" else ["loaded"]
    raise SystemExit(f"BENCH_LOAD={LOAD!r}: expected 0 (idle only), 1 (loaded only) or unset (both)")


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
    run_phases = phases()
    cores = len(os.sched_getaffinity(0))
    rates: dict[str, dict[str, list[float]]] = {phase: {side: [] for side in sides} for phase in run_phases}
    load_share: float | None = None
    started = time.monotonic()
    load = BackgroundLoad()
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
            for phase in run_phases:
                bench.phase = phase
                if phase == "loaded":
                    load.start(cores)
                    print(f"  background load: {cores} busy-loop process(es) started", flush=True)
                    time.sleep(1)  # the scheduler has seen them before the first timed round
                for i in range(ROUNDS):
                    for side in sides if i % 2 == 0 else sides[::-1]:
                        rates[phase][side].append(bench.round(side, JOBS))
                        print(f"  {phase} round {i + 1} {side:<15}{rates[phase][side][-1]:8,.0f} jobs/s", flush=True)
                if phase == "loaded":
                    load_share = load.share()
                    load.stop()
        except Stuck as stuck:
            signal.alarm(0)
            print(f"\nFAILED: {stuck}\n{bench.state()}", file=sys.stderr, flush=True)
            return 2
        finally:
            signal.alarm(0)
            load.stop()
            bench.waiting_for = "the workers to stop"
            bench.stop_workers()
            faulthandler.cancel_dump_traceback_later()
            redis.delete(QUEUE)

    processes, pool = TOPOLOGY.split("x")
    print(
        f"\n{JOBS:,} no-op jobs per round, {ROUNDS} rounds per side and phase, alternating; {processes} x "
        f"`celery worker --concurrency {pool}` (prefork), one Redis; {cores} core(s); "
        f"{time.monotonic() - started:.0f}s in all"
    )
    met = True
    for phase in run_phases:
        if phase == "idle":
            print("\nidle: no load but this benchmark's (other programs on the machine are not stopped)")
        else:
            layout = "as one program (one session)" if LOAD_SESSIONS == "one" else "as a program each"
            print(
                f"\nloaded: {cores} busy-loop process(es), one per core, {layout}, running throughout the phase's "
                f"rounds; they got {load_share or 0:.0%} of a core each (kernel.sched_autogroup_enabled={autogroup()})"
            )
        print(f"{'path':<44}{'jobs/s (median)':>16}   rounds")
        for side in sides:
            rounds = "  ".join(f"{r:,.0f}" for r in rates[phase][side])
            print(f"{LABELS[side]:<44}{statistics.median(rates[phase][side]):>16,.0f}   {rounds}")
        ratios = [ours / peer for ours, peer in zip(rates[phase][LEDGER], rates[phase][BARE], strict=True)]
        ratio = statistics.median(ratios)
        met = met and ratio >= 0.5
        print(
            f"{phase}: the ledger runs at {ratio:.0%} of bare Celery's rate (median of the rounds' ratios; "
            f"{min(ratios):.0%}–{max(ratios):.0%}); target >= 50%: {'met' if ratio >= 0.5 else 'MISSED'}"
        )
        if BREAKDOWN:
            late = statistics.median(rates[phase][LATE]) / statistics.median(rates[phase][BARE])
            print(f"reference: the bare task with acks_late=True runs at {late:.0%} of the bare task's rate")
    if SCHED:
        print_sched(bench.sched, run_phases, sides)
    if profile_dir:
        summarize_profiles(profile_dir)
    return 0 if met else 1


def print_sched(
    sched: dict[tuple[str, str, str], list[tuple[float, float, float]]], run_phases: list[str], sides: list[str]
) -> None:
    print(
        "\nwhere a job's time went (kernel schedstat, per job, median over rounds): ms on a CPU / ms runnable but "
        "waiting for one / times scheduled in"
    )
    groups = ["celery consumer", "celery pool", "postgres backends", "postgres others", "redis"]
    print(f"{'phase':<8}{'path':<17}" + "".join(f"{g:>24}" for g in groups))
    for phase in run_phases:
        for side in sides:
            cells = []
            for group in groups:
                samples = sched.get((phase, side, group), [])
                if not samples:
                    cells.append(f"{'-':>24}")
                    continue
                run, wait, slices = (statistics.median(s[k] for s in samples) for k in range(3))
                cells.append(f"{run:>9.2f} /{wait:>6.2f} /{slices:>5.1f}")
            print(f"{phase:<8}{side:<17}" + "".join(cells))


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
