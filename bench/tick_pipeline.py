"""Benchmark: 500 RUNNING PAPER bots ticking one bar through the real pipeline, against a bare loop
doing the same strategy work, in the same run.

Seeded (bench database): BENCH_BOTS PAPER bots (SIM venue, Databento data, 1m bars), spread evenly
over the three starter strategies (catalogue defaults) and MES, MNQ, ES, NQ (the instruments the
Databento stub serves), risk limits set, each with a RUNNING SIM runner (generation 1). The bots
share the SIM account, whose aggregate cap is set to 2 × BENCH_BOTS contracts (the default, 100,
would refuse every entry past the 100th). The Databento stub (tests/stubs/databento.py) runs on
loopback; DATABENTO_BASE_URL/DATABENTO_API_KEY point every process at it (the tick does not check
that the integration was verified: only start gates do, and the runners are made RUNNING here).

Workers: `celery -A config worker --concurrency 2` (prefork), the command and settings `make run`
uses (Procfile), on the same Redis and database as this process, consuming a bench queue (a
`make run` worker on the same Redis never takes these ids): `job_run` and `tick_dispatch` are
routed there, in this process and in the workers (which publish the tick jobs). No beat runs.

The clock: the bar is a fixed past one, 2025-12-16 16:00 UTC (a Tuesday, 10:00 CT: CME open). A live
tick reads the wall clock, so the workers' `timezone.now()` reads that bar's close (bench/tick_clock.py:
real time minus an offset this process sets before each round; it runs at real speed, so durations
are real; PostgreSQL's clock, which the ledger's leases and started_at/finished_at use, is left alone).
The round's clock is PostgreSQL's: from just before the dispatch message to the last job's
`finished_at`.

A run:
1. warm-up round (not timed) at the bar before, 15:59, from an empty bar store: worker processes
   import, connect and build market hours; the first tick per instrument fetches the history.
2. BENCH_ROUNDS rounds at 16:00, each from the same state: positions flat, no orders, the store
   holding the history up to 15:59 but not the newest bar (deleted, with the fetch log), so the
   first tick per instrument fetches it from the provider, as at a live bar close, and the others
   read the store. Each round, as in production: the `tick_dispatch` task (what beat sends every
   10 s) → a worker pool process runs it at 16:00:02 by its clock: one job per RUNNING runner, each
   published on commit → Redis → the two pool processes' `job_run` → claim → `tick_run` →
   DecisionTrace → close. (BENCH_DISPATCH=parent: this process calls `tick_dispatch(now=16:00:02)`
   instead, and both pool processes only tick; this process then competes for the two cores.)
   Reported: seconds for all ticks, every tick traced (outcomes by stage and reason),
   DecisionTrace.latency_ms p50/p95/p99, per-stage p50, provider calls (IntegrationUsageEvent rows,
   BarFetch rows, requests the stub received).
3. the peer, after each round, in this process: the bars read once from the store into memory,
   then for each bot `apps.trading.strategies.decide` with its parameters, its position as its tick
   saw it and the same bars (no database, no ledger); every decision must equal the trace's.
   Reported: per-decision p50 (BENCH_PEER_PASSES passes, default 5), against our per-tick p50.

Targets (issue 5): every tick traced within 10 s and a single-tick p99 ≤ 50 ms (the medians over
the rounds). Exit status 1 when missed, 2 when the run failed (a tick not traced, decisions that
differ, a wait that ran out).

Run: make bench   (or: python -m config.embedded exec -- python bench/tick_pipeline.py)
Knobs: BENCH_BOTS (default 500), BENCH_ROUNDS (default 3), BENCH_PEER_PASSES (default 5),
BENCH_DISPATCH (worker, the default, or parent),
BENCH_TIMEOUT (seconds for the whole run, default 300; past it the run stops and prints what it
was waiting for), BENCH_BREAKDOWN=1 (times the tick's parts inside the workers: job claim and close,
bars read, provider fetch, sim_settle, decide, order_submit and its risk reads, trace write; a
wrapper per call, about a microsecond each), BENCH_PROFILE=DIR (cProfile of every worker process).
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import tick_clock  # noqa: E402
from bench.common import setup_django, stop_processes  # noqa: E402

BOTS = int(os.environ.get("BENCH_BOTS", 500))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", 3))
PEER_PASSES = int(os.environ.get("BENCH_PEER_PASSES", 5))
BUDGET = float(os.environ.get("BENCH_TIMEOUT", 300))
BREAKDOWN = os.environ.get("BENCH_BREAKDOWN", "") not in ("", "0")
PROFILE_DIR = os.environ.get("BENCH_PROFILE", "")
QUEUE = "bench-ticks"
BOT_PREFIX = "bench-tick-"
INSTRUMENTS = ("MES", "MNQ", "ES", "NQ")
BAR = datetime(2025, 12, 16, 16, 0, tzinfo=UTC)  # the close of the bar ticked (Tuesday 10:00 CT)
WARMUP_BAR = BAR - timedelta(minutes=1)
AFTER_CLOSE = timedelta(seconds=2)  # the tick's clock at dispatch: two seconds after the close
RISK_LIMITS = {"max_position_contracts": 2, "max_daily_loss": 5000.0, "max_orders_per_day": 500}
TARGET_SECONDS, TARGET_P99_MS = 10.0, 50.0
WORKER_ENV = "BENCH_TICK_WORKER"  # set only in the workers this benchmark starts
# Where tick_dispatch runs: "worker" (as in production: beat sends the tick_dispatch task, a worker
# pool process runs it) or "parent" (this process calls it; both pool processes only tick).
DISPATCH = os.environ.get("BENCH_DISPATCH", "worker")
# The bench queue for the ledger's task and the dispatch task, in this process and in the workers
# (the worker that runs tick_dispatch publishes the tick jobs).
ROUTES = {name: {"queue": QUEUE} for name in ("apps.runners.tasks.job_run", "apps.runners.tasks.tick_dispatch")}


# -- inside the worker processes (they import this module with -I) ------------------------------
# BENCH_BREAKDOWN: (label, module, attribute); nested calls are indented under their caller.
TIMED: tuple[tuple[str, str, str], ...] = (
    ("job_claim", "apps.runners.services.jobs", "job_claim"),
    ("tick_run (all of it)", "apps.runners.services.tick", "tick_run"),
    ("  market.bars", "apps.market.services", "bars"),
    ("    provider fetch (+ lock)", "apps.market.services", "_Request.resolve"),
    ("  sim_settle", "apps.trading.services", "sim_settle"),
    ("  position_state", "apps.trading.services", "position_state"),
    ("  decide", "apps.trading.strategies", "decide"),
    ("  order_submit", "apps.trading.services", "order_submit"),
    ("    _account_row (lock)", "apps.trading.services", "_account_row"),
    ("    _context (risk reads)", "apps.trading.services", "_context"),
    ("      _account_exposure", "apps.trading.services", "_account_exposure"),
    ("    risk.check", "apps.trading.risk", "check"),
    ("  _write_trace", "apps.runners.services.tick", "_write_trace"),
    ("job_complete", "apps.runners.services.jobs", "job_complete"),
)
SQL, COMMIT = "SQL statements (all)", "commits (all)"
_timings: dict[str, list[float]] = {}  # label -> [calls, seconds] of the current task
_task_started: list[float] = [0.0]
_profiler: Any = None


def _wrap(label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            entry = _timings.setdefault(label, [0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - t0

    return timed


def _breakdown_install(**kwargs: Any) -> None:
    """In each pool process (Django is set up): wrap the timed functions where the tick looks them up."""
    import importlib

    from celery.signals import task_postrun, task_prerun

    for label, module_name, attribute in TIMED:
        owner: Any = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        setattr(owner, name, _wrap(label, getattr(owner, name)))
    # Every statement sent to PostgreSQL (the ORM's and the prepared ones) and every commit, timed
    # as the client waits for them.
    import psycopg

    psycopg.Cursor.execute = _wrap(SQL, psycopg.Cursor.execute)  # type: ignore[method-assign]
    psycopg.Connection.commit = _wrap(COMMIT, psycopg.Connection.commit)  # type: ignore[method-assign]
    out = Path(os.environ["BENCH_BREAKDOWN_DIR"]) / f"{os.getpid()}.jsonl"

    def started(**kw: Any) -> None:
        _timings.clear()
        _task_started[0] = time.perf_counter()

    def finished(args: Any = None, **kw: Any) -> None:
        line = {"job_id": (args or [None])[0], "task_s": time.perf_counter() - _task_started[0], "t": _timings}
        with out.open("a") as f:
            f.write(json.dumps(line) + "\n")

    task_prerun.connect(started, weak=False)
    task_postrun.connect(finished, weak=False)


def _profile_start(**kwargs: Any) -> None:
    global _profiler
    import cProfile

    if _profiler is not None:  # inherited from the parent at fork: not this process's
        _profiler.disable()
    _profiler = cProfile.Profile()
    _profiler.enable()


def _profile_dump(**kwargs: Any) -> None:
    if _profiler is not None:
        _profiler.disable()
        _profiler.dump_stats(Path(os.environ["BENCH_PROFILE"]) / f"pool-{os.getpid()}.prof")


if os.environ.get(WORKER_ENV):
    from celery.signals import worker_process_init, worker_process_shutdown

    from config.celery import app as _app

    tick_clock.install()
    _app.conf.task_routes = ROUTES
    _app.amqp.flush_routes()
    if os.environ.get("BENCH_BREAKDOWN_DIR"):
        worker_process_init.connect(_breakdown_install, weak=False)
    if PROFILE_DIR:
        worker_process_init.connect(_profile_start, weak=False)
        worker_process_shutdown.connect(_profile_dump, weak=False)


# -- the run -----------------------------------------------------------------------------------
class Stuck(Exception):
    """A wait ran out of time, or a check failed; the message says what was expected."""


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 100)) - 1))]


class Bench:
    def __init__(self, app: Any, redis: Any, logs: Path, env: dict[str, str]) -> None:
        self.app, self.redis, self.logs, self.env = app, redis, logs, env
        self.workers: list[subprocess.Popen[bytes]] = []
        self.nodes: list[str] = []
        self.waiting_for = "start-up"
        self.job_ids: list[int] = []

    def start_workers(self) -> None:
        tag = f"benchtick{os.getpid()}"
        command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--concurrency", "2"]
        command += ["-Q", QUEUE, "-I", "bench.tick_pipeline", "--loglevel", "WARNING"]
        command += ["--without-mingle", "--without-gossip", "--without-heartbeat", "--hostname", f"{tag}@%h"]
        with (self.logs / "worker.log").open("wb") as log:
            self.workers.append(
                subprocess.Popen(
                    command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )

        def answered() -> bool:
            for worker in self.workers:
                if worker.poll() is not None:
                    raise Stuck(f"the worker exited at start-up with status {worker.returncode}")
            replies = self.app.control.ping(timeout=0.5)
            self.nodes = sorted(node for reply in replies for node in reply if node.startswith(f"{tag}@"))
            return len(self.nodes) == 1

        self.wait(answered, 60, "the worker (2 pool processes) to start and answer a ping", 0.2)

    def stop_workers(self) -> None:
        stop_processes(self.workers)

    def wait(self, predicate: Callable[[], bool], timeout: float, what: str, interval: float) -> None:
        self.waiting_for = what
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise Stuck(f"not within {timeout:.0f}s: {what}")
            time.sleep(interval)

    def state(self) -> str:
        from django.db.models import Count

        from apps.runners.models import Job
        from apps.telemetry.models import DecisionTrace

        parts = [f"waiting for: {self.waiting_for}"]
        with contextlib.suppress(Exception):
            parts.append(f"bench queue: {self.redis.llen(QUEUE)} messages")
        with contextlib.suppress(Exception):
            jobs = Job.objects.filter(pk__in=self.job_ids).values_list("status").annotate(n=Count("id"))
            parts.append(f"this round's {len(self.job_ids)} jobs by status: {dict(jobs)}")
            errors = list(Job.objects.filter(pk__in=self.job_ids).exclude(error="").values_list("error", flat=True)[:3])
            if errors:
                parts.append("job errors (first 3):\n  " + "\n  ".join(e[:500] for e in errors))
            traces = DecisionTrace.objects.filter(job_id__in=self.job_ids).count()
            parts.append(f"traces written for them: {traces}")
        parts.append(f"worker exit codes: {[w.poll() for w in self.workers]}")
        for log in sorted(self.logs.glob("*.log")):
            parts.append(f"--- {log.name} (tail) ---\n{log.read_text(errors='replace')[-2500:]}")
        return "\n".join(parts)


# -- seeding and resetting ---------------------------------------------------------------------
def seed() -> tuple[list[int], list[int]]:
    """(bot ids, runner ids) of BOTS PAPER bots with RUNNING SIM runners; no other runner RUNNING."""
    from apps.bots.models import Bot
    from apps.runners.models import Runner
    from apps.trading.catalogue import STRATEGIES
    from apps.trading.models import AccountRisk

    keys = list(STRATEGIES)
    wanted = {}
    for i in range(BOTS):
        key = keys[i % len(keys)]
        wanted[f"{BOT_PREFIX}{i:04d}"] = {
            "strategy_key": key,
            "parameters": STRATEGIES[key].defaults(),
            "instrument": INSTRUMENTS[(i // len(keys)) % len(INSTRUMENTS)],
            "timeframe": "1m",
            "data_provider": Bot.DataProvider.DATABENTO,
            "venue": Bot.Venue.SIM,
            "broker_account": "",
            "stage": Bot.Stage.PAPER,
            "autonomy_tier": Bot.Tier.SIM_ONLY,
            "risk_limits": RISK_LIMITS,
            "killed": False,
            "kill_reason": "",
        }
    have = {b.name: b for b in Bot.objects.filter(name__in=wanted)}
    Bot.objects.bulk_create(Bot(name=name, **fields) for name, fields in wanted.items() if name not in have)
    stale = []
    for name, bot in have.items():
        if any(getattr(bot, f) != v for f, v in wanted[name].items()):
            for f, v in wanted[name].items():
                setattr(bot, f, v)
            stale.append(bot)
    if stale:
        Bot.objects.bulk_update(stale, list(next(iter(wanted.values()))), batch_size=500)
    ids = list(Bot.objects.filter(name__in=wanted).order_by("name").values_list("pk", flat=True))
    others = (
        Runner.objects.filter(status=Runner.Status.RUNNING).exclude(bot_id__in=ids).update(status=Runner.Status.STOPPED)
    )
    if others:
        print(f"  (stopped {others} other RUNNING runner(s) in the bench database: tick_dispatch ticks every one)")
    Runner.objects.bulk_create([Runner(bot_id=pk) for pk in ids], ignore_conflicts=True)
    Runner.objects.filter(bot_id__in=ids).update(
        status=Runner.Status.RUNNING, mode=Runner.Mode.SIM, generation=1, last_error=""
    )
    runner_ids = list(Runner.objects.filter(bot_id__in=ids).order_by("bot__name").values_list("pk", flat=True))
    # One SIM account for all: its aggregate cap must hold every bot's one contract (and a reversal's two).
    AccountRisk.objects.update_or_create(venue="sim", account="", defaults={"max_contracts": 2 * BOTS})
    return ids, runner_ids


def reset_trading(bot_ids: list[int], runner_ids: list[int]) -> None:
    """Flat and idle: no traces, orders, fills, positions, trading states or tick jobs for the bench bots."""
    from apps.runners.models import Job
    from apps.telemetry.models import DecisionTrace
    from apps.trading.models import Fill, Order, Position, TradingState

    DecisionTrace.objects.filter(bot_id__in=bot_ids).delete()
    Fill.objects.filter(bot_id__in=bot_ids).delete()
    Order.objects.filter(bot_id__in=bot_ids).delete()
    Position.objects.filter(bot_id__in=bot_ids).delete()
    TradingState.objects.filter(bot_id__in=bot_ids).delete()
    Job.objects.filter(runner_id__in=runner_ids).delete()


def reset_store(*, since: datetime | None) -> None:
    """Forget the bench instruments' 1m bars from `since` on (all of them when None), their coverage
    and the fetch log (a fetch logged moments ago, by the same clock, would not be asked again)."""
    from apps.market.models import Bar, BarConflict, BarCoverage, BarFetch

    bars = Bar.objects.filter(instrument__in=INSTRUMENTS, timeframe="1m")
    coverage = BarCoverage.objects.filter(instrument__in=INSTRUMENTS, timeframe="1m")
    if since is not None:
        bars, coverage = bars.filter(ts__gte=since), coverage.filter(end__gt=since)
    bars.delete()
    coverage.delete()
    BarFetch.objects.filter(instrument__in=INSTRUMENTS).delete()
    if since is None:
        BarConflict.objects.filter(instrument__in=INSTRUMENTS).delete()


# -- one round ---------------------------------------------------------------------------------
def db_now() -> datetime:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def tick_round(
    bench: Bench, clock: tick_clock.Clock, stub: Any, bar: datetime, runner_ids: list[int]
) -> dict[str, Any]:
    """Dispatch one tick per RUNNING runner for `bar` and wait until every tick job is closed."""
    from django.db.models import Max

    from apps.market.models import BarFetch
    from apps.runners.models import Job
    from apps.runners.services.jobs import tick_dispatch
    from apps.runners.tasks import tick_dispatch as tick_dispatch_task
    from apps.telemetry.models import DecisionTrace, IntegrationUsageEvent

    bench.redis.delete(QUEUE)
    usage_before = IntegrationUsageEvent.objects.filter(provider="databento").aggregate(m=Max("id"))["m"] or 0
    stub_before = len(stub.get_range_requests())
    at = bar + AFTER_CLOSE
    clock.set(at)  # the workers' clock now reads two seconds after the bar's close
    offset = timedelta(seconds=clock.offset())
    ticks = Job.objects.filter(type="tick", runner_id__in=runner_ids)
    closed = (Job.Status.SUCCEEDED, Job.Status.DEAD)
    bench.waiting_for = f"tick_dispatch for {bar:%H:%M}"
    started_db = db_now()
    if DISPATCH == "parent":
        report = tick_dispatch(now=at)
        dispatched_db = db_now()
        if report["existing"] or report["skipped"] or len(report["enqueued"]) != len(runner_ids):
            raise Stuck(
                f"tick_dispatch enqueued {len(report['enqueued'])} jobs for {len(runner_ids)} runners "
                f"(existing {len(report['existing'])}, skipped {report['skipped'][:3]})"
            )
    else:
        tick_dispatch_task.apply_async(queue=QUEUE)  # what beat sends every 10 s; a worker runs it

    def done() -> bool:
        if bench.redis.llen(QUEUE) > 20:  # cheap while the backlog is long; the database near the end
            return False
        return ticks.filter(status__in=closed).count() == len(runner_ids)

    try:
        bench.wait(done, max(60.0, len(runner_ids) / 5), f"{len(runner_ids)} tick jobs for {bar:%H:%M} to close", 0.05)
    finally:
        bench.job_ids = ids = list(ticks.values_list("id", flat=True))
    if len(ids) != len(runner_ids):
        raise Stuck(f"{len(ids)} tick jobs for {len(runner_ids)} RUNNING runners: tick_dispatch should make one each")
    jobs = list(Job.objects.filter(pk__in=ids).values("id", "status", "created_at", "started_at", "finished_at"))
    if dead := [j["id"] for j in jobs if j["status"] != Job.Status.SUCCEEDED]:
        raise Stuck(f"{len(dead)} tick jobs did not succeed (first: {dead[:5]})")
    finished = max(j["finished_at"] for j in jobs)
    if DISPATCH != "parent":  # created by the worker that ran tick_dispatch: on its clock
        for j in jobs:
            j["created_at"] += offset
        dispatched_db = max(j["created_at"] for j in jobs)
    traces = list(DecisionTrace.objects.filter(job_id__in=ids, replay=False, bar_ts=bar))
    if len(traces) != len(ids):
        raise Stuck(f"{len(traces)} traces for {len(ids)} ticks: every tick must leave exactly one")
    fake = [t.created_at for t in traces]
    if not all(bar <= c <= bar + timedelta(seconds=60) for c in fake):
        raise Stuck(
            f"the workers' clock did not read the bar's close (trace times {min(fake)} … {max(fake)}): "
            "bench/tick_clock.py was not installed in the worker processes"
        )
    # Usage events are written by a background thread in each worker (batched): give it a moment.
    fetches = BarFetch.objects.filter(instrument__in=INSTRUMENTS, requested_at__gte=bar).count()
    usage: list[Any] = []

    def metered() -> bool:
        usage[:] = list(
            IntegrationUsageEvent.objects.filter(provider="databento", id__gt=usage_before).values_list(
                "operation", "status", "latency_ms"
            )
        )
        return len(usage) >= fetches

    with contextlib.suppress(Stuck):
        bench.wait(metered, 5, "the workers' usage events", 0.05)
    return {
        "bar": bar,
        "ticks": len(ids),
        "seconds": (finished - started_db).total_seconds(),
        "dispatch_s": (dispatched_db - started_db).total_seconds(),
        # A trace's created_at is its tick's start on the workers' clock; this much later on the real one.
        "offset": offset,
        "dispatched": dispatched_db,
        "traces": traces,
        "jobs": jobs,
        "usage": usage,
        "fetches": fetches,
        "stub_calls": len(stub.get_range_requests()) - stub_before,
    }


def peer(traces: list[Any], bar: datetime) -> dict[str, Any]:
    """The bare loop: the bars read once from the store into memory; then, for each bot, decide()
    with its parameters, its position as its tick saw it, and the same bars. Checked against the traces."""
    from apps.bots.models import Bot
    from apps.market import instruments
    from apps.market import services as market
    from apps.trading import strategies

    bots = {b.pk: b for b in Bot.objects.filter(pk__in=[t.bot_id for t in traces])}
    work = []
    for t in sorted(traces, key=lambda t: t.bot_id):
        if "bars" not in t.inputs:  # stopped before market data: no decision to compare with
            continue
        bot = bots[t.bot_id]
        work.append((t, bot, strategies.required_bars(bot.strategy_key, bot.parameters)))
    count: dict[str, int] = defaultdict(int)
    for _, bot, needed in work:
        count[bot.instrument] = max(count[bot.instrument], needed)
    bars = {
        root: market.bars(root, "1m", end=bar, count=n, provider="databento", now=bar + AFTER_CLOSE)
        for root, n in count.items()
    }
    tick_sizes = {root: instruments.get(root).tick_size for root in count}  # type: ignore[union-attr]
    # Per bot: exactly the arguments its tick passed (bars[-needed:] is the tick's `count=needed` read).
    calls = [
        (
            bot.strategy_key,
            bars[bot.instrument][-needed:],
            bot.parameters,
            t.inputs["position"],
            tick_sizes[bot.instrument],
        )
        for t, bot, needed in work
    ]
    decide, perf = strategies.decide, time.perf_counter
    per_call: list[float] = []
    loops: list[float] = []
    made: list[Any] = []
    for n in range(PEER_PASSES + 1):  # the first pass warms up (not timed)
        made.clear()
        loop0 = perf()
        for key, window, parameters, position, tick_size in calls:
            t0 = perf()
            made.append(decide(key, window, parameters, position, tick_size=tick_size))
            t1 = perf()
            if n:
                per_call.append((t1 - t0) * 1000)
        if n:
            loops.append(perf() - loop0)
    differ = [t.bot_id for (t, _, _), m in zip(work, made, strict=True) if t.decision != m.as_dict()]
    if differ:
        raise Stuck(f"{len(differ)} bare-loop decisions differ from their traces (bots {differ[:5]})")
    return {"decisions": len(calls), "per_call_ms": per_call, "loop_s": statistics.median(loops)}


# -- reporting ---------------------------------------------------------------------------------
def outcome_lines(traces: list[Any]) -> list[str]:
    by = Counter((t.outcome, t.stopped_at or "-", t.reason_code or (t.order or {}).get("status", "-")) for t in traces)
    return [f"    {n:>5}  {o:<9}{s:<14}{r}" for (o, s, r), n in sorted(by.items(), key=lambda kv: -kv[1])]


def stage_lines(traces: list[Any]) -> list[str]:
    stages: dict[str, list[float]] = defaultdict(list)
    for t in traces:
        for s in t.stages:
            stages[s["stage"]].append(s["latency_ms"])
    lines = []
    for name, values in stages.items():
        lines.append(
            f"    {name:<14}{len(values):>6}{statistics.median(values):>9.2f}{pct(values, 99):>9.2f}"
            f"{sum(values) / len(traces):>13.2f}"
        )
    return lines


def breakdown_lines(directory: Path, traces: list[Any]) -> list[str]:
    """Per tick, by outcome: mean ms (and calls) of each timed part, from the workers' lines."""
    outcome = {t.job_id: t.outcome for t in traces}
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in directory.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["job_id"] in outcome:
                rows[outcome[row["job_id"]]].append(row)
    if not rows:
        return ["    (no breakdown lines were written)"]
    groups = [g for g in ("NO_TRADE", "TRADE") if rows.get(g)]
    head = "".join(f"{f'{g} ({len(rows[g])})':>26}" for g in groups)
    lines = [f"    {'mean per tick':<30}{head}", f"    {'':<30}" + f"{'ms':>11}{'calls':>7}{'p50 ms':>8}" * len(groups)]
    labels = (
        [("Celery task (job_run)", None)] + [(label, label) for label, _, _ in TIMED] + [(SQL, SQL), (COMMIT, COMMIT)]
    )
    for label, key in labels:
        cells = ""
        for g in groups:
            if key is None:
                ms = [r["task_s"] * 1000 for r in rows[g]]
                calls = [1.0] * len(ms)
            else:
                ms = [r["t"].get(key, [0, 0.0])[1] * 1000 for r in rows[g]]
                calls = [r["t"].get(key, [0, 0.0])[0] for r in rows[g]]
            cells += f"{statistics.fmean(ms):>11.2f}{statistics.fmean(calls):>7.1f}{statistics.median(ms):>8.2f}"
        lines.append(f"    {label:<30}{cells}")
    return lines


def summarize_profiles(directory: Path) -> None:
    import pstats

    files = sorted(directory.glob("pool-*.prof"))
    if not files:
        print("\nno worker profile was written")
        return
    print(f"\nworker pool processes ({len(files)}), by cumulative time (the profiler slows them down):")
    pstats.Stats(*map(str, files), stream=sys.stdout).sort_stats("cumulative").print_stats(45)


def main() -> int:
    setup_django()
    from django.core.management import call_command

    from apps.integrations import registry
    from config.celery import app
    from tests.stubs.databento import DatabentoStub

    call_command("migrate", verbosity=0)
    # The publisher routes the ledger's task to the bench queue; nothing else about it changes.
    app.conf.task_routes = ROUTES
    profile_dir = Path(PROFILE_DIR).resolve() if PROFILE_DIR else None
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
        for old in profile_dir.glob("*.prof"):
            old.unlink()
    started = time.monotonic()
    bot_ids, runner_ids = seed()
    rounds: list[dict[str, Any]] = []
    peers: list[dict[str, Any]] = []
    breakdowns: list[list[str]] = []
    stub = DatabentoStub().start()
    with (
        tempfile.TemporaryDirectory(prefix="bench-tick-") as tmp,
        app.connection_for_write() as conn,
    ):
        logs = Path(tmp)
        clock = tick_clock.Clock(logs / "clock")
        provider_env = {registry.PROVIDERS["databento"].base_url_var: stub.url, **stub.good_env}
        os.environ.update(provider_env)
        env = {
            **os.environ,
            **provider_env,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            WORKER_ENV: "1",
            tick_clock.ENV: str(clock.path),
        }
        if BREAKDOWN:
            (logs / "breakdown").mkdir()
            env["BENCH_BREAKDOWN_DIR"] = str(logs / "breakdown")
        if profile_dir:
            env["BENCH_PROFILE"] = str(profile_dir)
        redis = conn.default_channel.client
        bench = Bench(app, redis, logs, env)

        def out_of_time(signum: int, frame: Any) -> None:
            raise Stuck(f"the whole run took longer than BENCH_TIMEOUT={BUDGET:.0f}s")

        signal.signal(signal.SIGALRM, out_of_time)
        signal.alarm(max(1, int(BUDGET)))
        faulthandler.dump_traceback_later(BUDGET + 30, exit=True)  # should even the alarm not get through
        try:
            bench.start_workers()
            reset_trading(bot_ids, runner_ids)
            reset_store(since=None)
            warm = tick_round(bench, clock, stub, WARMUP_BAR, runner_ids)
            print(
                f"  warm-up at {WARMUP_BAR:%H:%M} (empty store): {warm['ticks']} ticks in {warm['seconds']:.2f}s, "
                f"{warm['stub_calls']} provider call(s)",
                flush=True,
            )
            for i in range(ROUNDS):
                reset_trading(bot_ids, runner_ids)
                reset_store(since=BAR - timedelta(minutes=1))
                result = tick_round(bench, clock, stub, BAR, runner_ids)
                rounds.append(result)
                peers.append(peer(result["traces"], BAR))
                if BREAKDOWN:
                    breakdowns.append(breakdown_lines(logs / "breakdown", result["traces"]))
                latency = [t.latency_ms for t in result["traces"]]
                print(
                    f"  round {i + 1}: {result['ticks']} traced in {result['seconds']:.2f}s "
                    f"(dispatch {result['dispatch_s']:.2f}s); tick p50 {statistics.median(latency):.2f} "
                    f"p99 {pct(latency, 99):.2f} ms; bare decide p50 "
                    f"{statistics.median(peers[-1]['per_call_ms']):.3f} ms",
                    flush=True,
                )
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
            clock.close()
            stub.stop()

    return report(rounds, peers, breakdowns, time.monotonic() - started, profile_dir)


def report(
    rounds: list[dict[str, Any]],
    peers: list[dict[str, Any]],
    breakdowns: list[list[str]],
    elapsed: float,
    profile_dir: Path | None,
) -> int:
    n = rounds[0]["ticks"]
    print(
        f"\n{n} RUNNING PAPER bots (3 strategies x {', '.join(INSTRUMENTS)}, 1m), one bar ({BAR:%Y-%m-%d %H:%M} UTC), "
        f"Databento stub on loopback; `celery worker --concurrency 2` (prefork) as make run; {len(rounds)} rounds "
        f"after a warm-up; {elapsed:.0f}s in all\n"
    )
    seconds = [r["seconds"] for r in rounds]
    p50s = [statistics.median([t.latency_ms for t in r["traces"]]) for r in rounds]
    p95s = [pct([t.latency_ms for t in r["traces"]], 95) for r in rounds]
    p99s = [pct([t.latency_ms for t in r["traces"]], 99) for r in rounds]
    jobs_ms = [
        statistics.median([(j["finished_at"] - j["started_at"]).total_seconds() * 1000 for j in r["jobs"]])
        for r in rounds
    ]
    peer_p50 = [statistics.median(p["per_call_ms"]) for p in peers]
    peer_loop = [p["loop_s"] for p in peers]

    def row(label: str, values: list[float], fmt: str) -> None:
        spread = "  ".join(format(v, fmt) for v in values)
        print(f"{label:<72}{format(statistics.median(values), fmt):>9}   {spread}")

    print(f"{'figure':<72}{'median':>9}   rounds")
    row(f"(a) seconds from dispatch to the last of {n} ticks closed", seconds, ".2f")
    where = "this process" if DISPATCH == "parent" else "a worker, as beat's task"
    row(f"    of which tick_dispatch in {where} (to the last job row)", [r["dispatch_s"] for r in rounds], ".2f")
    row("    ticks/s", [n / s for s in seconds], ".0f")
    row("    single tick p50 (DecisionTrace.latency_ms)", p50s, ".2f")
    row("    single tick p95", p95s, ".2f")
    row("    single tick p99", p99s, ".2f")
    row("    tick job p50 (claim → close, Job.started_at → finished_at, ms)", jobs_ms, ".2f")
    row(f"(b) peer: bare decide() loop, {peers[0]['decisions']} decisions (s per pass)", peer_loop, ".4f")
    row("    peer: per decision p50 (ms)", peer_p50, ".3f")
    row(
        "    ours / peer (per-tick p50 ÷ per-decision p50)", [a / b for a, b in zip(p50s, peer_p50, strict=True)], ".1f"
    )
    row("    overhead per tick (ms, p50 − p50)", [a - b for a, b in zip(p50s, peer_p50, strict=True)], ".2f")
    job_overhead = [a - b for a, b in zip(jobs_ms, peer_p50, strict=True)]
    row("    overhead per tick job (ms, job p50 − p50; claim, trace write, close)", job_overhead, ".2f")
    row(
        "    sequential bare loop vs our 500 ticks (x, wall)",
        [s / p for s, p in zip(seconds, peer_loop, strict=True)],
        ".0f",
    )

    last = rounds[-1]
    print(f"\noutcomes (round {len(rounds)}; every round: {[len(r['traces']) for r in rounds]} traces):")
    print("\n".join(outcome_lines(last["traces"])))
    same = all(Counter((t.outcome, t.reason_code) for t in r["traces"]) == Counter(
        (t.outcome, t.reason_code) for t in last["traces"]) for r in rounds)  # fmt: skip
    print(f"    (the same distribution in every round: {same})")
    print("\nprovider calls per round (first tick per instrument fetches the new bar; the rest read the store):")
    for i, r in enumerate(rounds, 1):
        ops = Counter(f"{op}/{status}" for op, status, _ in r["usage"])
        print(
            f"    round {i}: {len(r['usage'])} IntegrationUsageEvent rows {dict(ops)}, {r['fetches']} BarFetch rows, "
            f"{r['stub_calls']} get_range requests at the stub"
        )
    print(f"\nstages (round {len(rounds)}): {'name':<14}{'ran':>6}{'p50 ms':>9}{'p99 ms':>9}{'ms/tick avg':>13}")
    print("\n".join(stage_lines(last["traces"])))
    outside = [
        (j["finished_at"] - j["started_at"]).total_seconds() * 1000 - t
        for j, t in zip(
            sorted(last["jobs"], key=lambda j: j["id"]),
            [t.latency_ms for t in sorted(last["traces"], key=lambda t: t.job_id)],
            strict=True,
        )
    ]
    print(
        f"    claim → close minus latency_ms (runner load, trace write, job close): "
        f"p50 {statistics.median(outside):.2f} ms, p99 {pct(outside, 99):.2f} ms"
    )
    by_outcome: dict[str, list[float]] = defaultdict(list)
    by_phase: dict[str, list[float]] = defaultdict(list)
    for t in last["traces"]:
        by_outcome[t.outcome].append(t.latency_ms)
        during = t.created_at + last["offset"] < last["dispatched"]
        by_phase["while tick_dispatch ran" if during else "after it"].append(t.latency_ms)
    for name, groups in (("outcome", by_outcome), ("start", by_phase)):
        print(
            f"    latency_ms by {name}: "
            + "; ".join(
                f"{k} ({len(v)}) p50 {statistics.median(v):.2f} p99 {pct(v, 99):.2f} ms" for k, v in groups.items()
            )
        )
    queue_wait = [(j["started_at"] - j["created_at"]).total_seconds() for j in last["jobs"]]
    print(
        f"    queue wait (enqueued → claimed): p50 {statistics.median(queue_wait):.2f} s, max {max(queue_wait):.2f} s"
    )
    if breakdowns:
        print(f"\nbreakdown inside the workers (round {len(rounds)}), nested parts indented under their caller:")
        print("\n".join(breakdowns[-1]))
    if profile_dir:
        summarize_profiles(profile_dir)

    seconds_ok = statistics.median(seconds) <= TARGET_SECONDS
    p99_ok = statistics.median(p99s) <= TARGET_P99_MS
    print(
        f"\ntarget (a): {n} ticks traced in <= {TARGET_SECONDS:g}s: {statistics.median(seconds):.2f}s "
        f"({'met' if seconds_ok else 'MISSED'}); single-tick p99 <= {TARGET_P99_MS:g} ms: "
        f"{statistics.median(p99s):.2f} ms ({'met' if p99_ok else 'MISSED'})"
    )
    return 0 if seconds_ok and p99_ok else 1


if __name__ == "__main__":
    sys.exit(main())
