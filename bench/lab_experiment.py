"""Benchmark: a 200-run strategy lab experiment through `POST /api/strategy-lab/experiments` against
the same 200 backtests posted one at a time to `POST /api/backtests`, in the same run, on the same
server and worker, every result compared (issue 11).

Data: BENCH_BARS (default 100,000) one-minute MES bars, generated and stored as
bench/backtest_engine.py does (a random walk on the tick grid in the open minutes, COPY into the
bar store), deleted at the end.

The experiment: trend following on MES 1m, parameter space fast_period [5, 8, 10, 12, 15, 18, 20,
22, 25, 28] × slow_period {min 30, max 120, step 5} (19 values) = 190 parameter sets (every fast
below every slow), ATR 14 and stop 2 ATR (catalogue defaults); one train/test split: the bars after
the longest warm-up (120 bars), the first 70 % in sample, the last 30 % out of sample; objective
expectancy, top_k 10. So 190 in-sample runs + 10 out-of-sample runs = 200 backtests. Fill model and
risk limits: the lab's defaults (the SIM fill model; one contract, LAB_DEFAULT_MAX_DAILY_LOSS, the
strategy's orders a day), printed.
- ours: POST create → POST start → GET polled every 50 ms until SUCCEEDED (the experiment's GET
  serialises its candidates, so it is polled less often than a single backtest); the clock runs from
  the create POST to the client seeing SUCCEEDED. Through gunicorn as `make run` serves the API and
  one `celery worker -Q backtests --concurrency 2` (the Procfile's backtests worker), started by
  bench/backtest_engine.py's serve(). No beat runs: the experiment advances on its runs' own closes
  (the `strategylab.run` handler), not on beat's safety net; a lost advance would time the run out.
- the peer: the experiment's 200 backtests read back from its runs (strategy, parameters,
  instrument, timeframe, window, fill model, risk limits, initial capital), each posted as
  `POST /api/backtests`, then GET polled every 20 ms until SUCCEEDED, then the next: one at a time,
  same server, same worker, after ours (the workers' bar caches are warm for the peer: the bars'
  read time is printed for both sides).
Check: the peer's stored config equals the run's, and its metrics (every figure and every unknown's
reason), trade count and verdict equal the experiment run's, for all 200.

No target is set by issue 11: both figures, the ratio and the load average (`uptime`) are printed.
Exit status 2 when the run failed or any of the 200 results differs, 0 otherwise.

Run: make bench   (or: python -m config.embedded exec -- python bench/lab_experiment.py)
Knobs: BENCH_BARS (default 100,000), BENCH_TIMEOUT (seconds for the whole run, default 3600).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import backtest_engine as single  # noqa: E402
from bench.common import setup_django, stop_processes  # noqa: E402

BARS = int(os.environ.get("BENCH_BARS", 100_000))
BUDGET = float(os.environ.get("BENCH_TIMEOUT", 3600))
FAST = [5, 8, 10, 12, 15, 18, 20, 22, 25, 28]
SLOW = {"min": 30, "max": 120, "step": 5}
SETS = len(FAST) * ((SLOW["max"] - SLOW["min"]) // SLOW["step"] + 1)  # 190
TOP_K = 10
RUNS = SETS + TOP_K  # 200
TRAIN_SHARE = 0.7
POLL_EXPERIMENT = 0.05
POLL_BACKTEST = 0.02
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
PEER_FIELDS = ("strategy_key", "parameters", "instrument", "timeframe", "fill_model", "risk_limits")


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def load() -> str:
    """`uptime`'s line (the load averages), or the load averages alone where uptime is missing."""
    if shutil.which("uptime"):
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    return "load average: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def cpu_seconds(processes: list[Any]) -> float:
    """User + system CPU seconds used so far by the started processes and their children (gunicorn's
    and the worker's pools): what each side cost the server, whatever else the machine ran."""
    import psutil

    total = 0.0
    for proc in processes:
        try:
            root = psutil.Process(proc.pid)
            for p in [root, *root.children(recursive=True)]:
                times = p.cpu_times()
                total += times.user + times.system
        except psutil.Error:
            continue
    return total


def deadline_check(t0: float, what: str) -> None:
    if time.perf_counter() - t0 > BUDGET:
        raise single.Failed(f"{what} after {time.perf_counter() - t0:.0f}s (BENCH_TIMEOUT={BUDGET:.0f}s)")


def run_ours(client: Any, train: tuple[datetime, datetime], test: tuple[datetime, datetime]) -> dict[str, Any]:
    """Create → start → SUCCEEDED through the API: wall seconds, when the out-of-sample phase was
    first seen, the experiment's id and its 200 runs (phase, backtest id)."""
    from apps.strategylab.models import ExperimentRun

    body = {
        "name": f"bench lab {os.getpid()}",
        "strategy_key": single.STRATEGY,
        "instruments": [single.INSTRUMENT],
        "timeframe": single.TIMEFRAME,
        "parameter_space": {"fast_period": FAST, "slow_period": SLOW},
        "train": {"start": iso(train[0]), "end": iso(train[1])},
        "test": {"start": iso(test[0]), "end": iso(test[1])},
        "objective": "expectancy",
        "max_runs": SETS,
        "top_k": TOP_K,
    }
    t0 = time.perf_counter()
    answer = client.post("/api/strategy-lab/experiments", json=body)
    if answer.status_code != 201:
        raise single.Failed(f"POST /api/strategy-lab/experiments answered {answer.status_code}: {answer.text[:500]}")
    created = answer.json()
    experiment_id = created["id"]
    if created["combinations"] != SETS or created["skipped"]["count"]:
        raise single.Failed(
            f"experiment {experiment_id} searches {created['combinations']} sets ({created['skipped']['count']} "
            f"refused by a rule), not the {SETS} this benchmark promises"
        )
    answer = client.post(f"/api/strategy-lab/experiments/{experiment_id}/start")
    if answer.status_code != 202:
        raise single.Failed(
            f"POST .../experiments/{experiment_id}/start answered {answer.status_code}: {answer.text[:500]}"
        )
    out_of_sample_seen = None
    while True:
        state = client.get(f"/api/strategy-lab/experiments/{experiment_id}").json()
        if out_of_sample_seen is None and state["phase"] in ("OUT_OF_SAMPLE", "DONE"):
            out_of_sample_seen = time.perf_counter() - t0
        if state["status"] in TERMINAL:
            break
        deadline_check(
            t0, f"experiment {experiment_id} still {state['status']} ({state['phase']}, {state['progress']:.0%})"
        )
        time.sleep(POLL_EXPERIMENT)
    wall = time.perf_counter() - t0
    if state["status"] != "SUCCEEDED":
        raise single.Failed(
            f"experiment {experiment_id} ended {state['status']}: {state.get('error')}; "
            f"failures {state['failures'][:3]}"
        )
    runs = list(
        ExperimentRun.objects.filter(experiment_id=experiment_id)
        .order_by("phase", "combo")
        .values_list("phase", "backtest_id", "backtest__status")
    )
    not_done = [r for r in runs if r[2] != "SUCCEEDED"]
    if len(runs) != RUNS or not_done:
        raise single.Failed(f"experiment {experiment_id}: {len(runs)} runs (not {RUNS}); not succeeded: {not_done[:3]}")
    return {
        "wall": wall,
        "in_sample_wall": out_of_sample_seen,
        "id": experiment_id,
        "runs": runs,
        "state": state,
    }


def run_peer(client: Any, backtest_ids: list[int]) -> tuple[float, dict[int, int]]:
    """Each of the experiment's backtests again as POST /api/backtests, one at a time (POST, poll
    until SUCCEEDED, next): wall seconds, and the peer's backtest id for each of ours."""
    from apps.backtests.models import Backtest

    configs = {
        row["id"]: row
        for row in Backtest.objects.filter(pk__in=backtest_ids).values(
            "id", *PEER_FIELDS, "start", "end", "initial_capital"
        )
    }
    peer_of: dict[int, int] = {}
    t0 = time.perf_counter()
    for ours_id in backtest_ids:
        config = configs[ours_id]
        body = {name: config[name] for name in PEER_FIELDS}
        body |= {
            "start": iso(config["start"]),
            "end": iso(config["end"]),
            "initial_capital": str(config["initial_capital"]),
        }
        answer = client.post("/api/backtests", json=body)
        if answer.status_code != 202:
            raise single.Failed(f"POST /api/backtests answered {answer.status_code}: {answer.text[:500]}")
        peer_id = answer.json()["id"]
        peer_of[ours_id] = peer_id
        while True:
            state = client.get(f"/api/backtests/{peer_id}").json()
            if state["status"] in TERMINAL:
                break
            deadline_check(t0, f"backtest {peer_id} (the peer's {len(peer_of)}th) still {state['status']}")
            time.sleep(POLL_BACKTEST)
        if state["status"] != "SUCCEEDED":
            raise single.Failed(
                f"the peer's backtest {peer_id} (as {ours_id}) ended {state['status']}: {state.get('error')}"
            )
    return time.perf_counter() - t0, peer_of


def compare(peer_of: dict[int, int]) -> tuple[list[str], dict[str, dict[str, int]]]:
    """Every pair's stored config, metrics, trade count and verdict: the differences (named), and
    both sides' summed job timings."""
    from django.db.models import Count

    from apps.backtests.models import Backtest, BacktestTrade

    ids = [*peer_of, *peer_of.values()]
    rows = {
        r["id"]: r
        for r in Backtest.objects.filter(pk__in=ids).values(
            "id", *PEER_FIELDS, "start", "end", "initial_capital", "metrics", "classification", "timings", "elapsed_ms"
        )
    }
    trades = dict(
        BacktestTrade.objects.filter(backtest_id__in=ids)
        .values("backtest_id")
        .annotate(n=Count("id"))
        .order_by()
        .values_list("backtest_id", "n")
    )
    differ = []
    for ours_id, peer_id in peer_of.items():
        ours, peer = rows[ours_id], rows[peer_id]
        config = (*PEER_FIELDS, "start", "end", "initial_capital")
        problems = [f"{name} {ours[name]!r} / {peer[name]!r}" for name in config if ours[name] != peer[name]]
        if trades.get(ours_id, 0) != trades.get(peer_id, 0):
            problems.append(f"trades {trades.get(ours_id, 0)} / {trades.get(peer_id, 0)}")
        if ours["metrics"] != peer["metrics"]:
            keys = sorted(
                k for k in {*ours["metrics"], *peer["metrics"]} if ours["metrics"].get(k) != peer["metrics"].get(k)
            )
            problems.append(
                "metrics " + ", ".join(f"{k} {ours['metrics'].get(k)!r} / {peer['metrics'].get(k)!r}" for k in keys)
            )
        verdicts = [(r["classification"] or {}).get("verdict") for r in (ours, peer)]
        if verdicts[0] != verdicts[1]:
            problems.append(f"verdict {verdicts[0]} / {verdicts[1]}")
        if problems:
            differ.append(f"backtest {ours_id} (lab) / {peer_id} (peer): " + "; ".join(problems))
    timings: dict[str, dict[str, int]] = {}
    for side, side_ids in (("ours", list(peer_of)), ("peer", list(peer_of.values()))):
        total = {"elapsed_ms": 0, "bars_ms": 0, "engine_ms": 0, "store_ms": 0, "trades": 0}
        for backtest_id in side_ids:
            total["elapsed_ms"] += rows[backtest_id]["elapsed_ms"] or 0
            for key in ("bars_ms", "engine_ms", "store_ms"):
                total[key] += (rows[backtest_id]["timings"] or {}).get(key) or 0
            total["trades"] += trades.get(backtest_id, 0)
        timings[side] = total
    return differ, timings


def main() -> int:
    setup_django()
    import httpx
    from django.core.management import call_command

    from apps.accounts.services import api_token_create
    from apps.backtests.models import Backtest
    from apps.core.roles import Role
    from apps.strategylab.models import Experiment

    call_command("migrate", verbosity=0)

    def out_of_time(signum: int, frame: Any) -> None:
        raise single.Failed(f"the whole run took longer than BENCH_TIMEOUT={BUDGET:.0f}s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(max(1, int(BUDGET)))
    print(
        f"strategy lab experiment: trend following, {SETS} parameter sets in sample + top {TOP_K} out of sample "
        f"= {RUNS} backtests on {BARS:,} one-minute MES bars ({TRAIN_SHARE:.0%} / {1 - TRAIN_SHARE:.0%} split), "
        f"against the same {RUNS} posted one at a time; {os.cpu_count()} CPUs\n  {load()}",
        flush=True,
    )
    g = single.generate(BARS)
    start, end = single.window(g)
    single.clean(start, end)
    first = int(SLOW["max"])  # every set's warm-up is in the stored bars before the train window
    split = first + int((BARS - first) * TRAIN_SHARE)
    train = (datetime.fromtimestamp(int(g.ts[first]), UTC), datetime.fromtimestamp(int(g.ts[split]), UTC))
    test = (train[1], end)
    experiment_id = None
    created: list[int] = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        single.store(g)
        _, token = api_token_create(username=f"bench-lab-{os.getpid()}", role=Role.OPERATOR)
        with tempfile.TemporaryDirectory(prefix="bench-lab-") as logs:
            base = single.serve(Path(logs), f"benchlab{os.getpid()}", single.free_port(), processes)
            headers = {"Authorization": f"Token {token}"}
            with httpx.Client(base_url=base, timeout=60, headers=headers) as client:
                cpu0, load0 = cpu_seconds(processes), os.getloadavg()[0]
                ours = run_ours(client, train, test)
                cpu1, load1 = cpu_seconds(processes), os.getloadavg()[0]
                experiment_id = ours["id"]
                ours_ids = [backtest_id for _, backtest_id, _ in ours["runs"]]
                created += ours_ids
                state = ours["state"]
                print(
                    f"  ours: {ours['wall']:.1f}s for {RUNS} runs, {RUNS / ours['wall']:.2f} runs/s (out-of-sample "
                    f"phase seen at {ours['in_sample_wall']:.1f}s); fill model {state['fill_model']}, risk limits "
                    f"{state['risk_limits']}; {len(state['candidates'])} candidates, best "
                    f"{state['candidates'][0]['parameters']}",
                    flush=True,
                )
                peer_s, peer_of = run_peer(client, ours_ids)
                cpu2, load2 = cpu_seconds(processes), os.getloadavg()[0]
                created += list(peer_of.values())
                print(f"  one at a time: {peer_s:.1f}s, {RUNS / peer_s:.2f} runs/s", flush=True)
        stop_processes(processes)
        differ, timings = compare(peer_of)
    except single.Failed as failed:
        signal.alarm(0)
        print(f"\nFAILED: {failed}\n  {load()}", file=sys.stderr)
        return 2
    finally:
        signal.alarm(0)
        stop_processes(processes)
        if experiment_id is not None:
            Experiment.objects.filter(pk=experiment_id).delete()
        Backtest.objects.filter(pk__in=created).delete()
        single.clean(start, end)

    ours_s = ours["wall"]
    print(
        f"\n{str(RUNS) + ' backtests':<50}{'seconds':>9}{'runs/s':>8}{'job s':>8}{'bars s':>8}"
        f"{'engine s':>9}{'store s':>8}{'CPU s':>8}{'load':>12}"
    )
    for label, seconds, side, cpu, loads in (
        ("ours: one experiment (create, start, SUCCEEDED)", ours_s, "ours", cpu1 - cpu0, (load0, load1)),
        ("peer: POST /api/backtests one at a time", peer_s, "peer", cpu2 - cpu1, (load1, load2)),
    ):
        t = {k: v / 1000 for k, v in timings[side].items()}
        print(
            f"{label:<50}{seconds:>9.1f}{RUNS / seconds:>8.2f}{t['elapsed_ms']:>8.1f}{t['bars_ms']:>8.1f}"
            f"{t['engine_ms']:>9.1f}{t['store_ms']:>8.1f}{cpu:>8.1f}{f'{loads[0]:.1f} > {loads[1]:.1f}':>12}"
        )
    print(
        "  job s: the backtests' own time summed over the 200 (bars read + engine + trades and results stored);\n"
        "  CPU s: user + system CPU of gunicorn and the worker with their children during the side;\n"
        f"  load: the 1-minute load average at the side's start and end. Trades stored per side: "
        f"{timings['ours']['trades']:,}."
    )
    print(f"\nresults: {RUNS - len(differ)} of {RUNS} equal (config, metrics, trade count, verdict)")
    for line in differ[:5]:
        print(f"  differs: {line}")
    print(f"ours / one at a time: {peer_s / ours_s:.2f}x the runs/s (no target set by issue 11)\n  {load()}")
    return 2 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
