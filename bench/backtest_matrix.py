"""Benchmark: a 90-combination parameter grid through `POST /api/backtests/matrix` against
backtesting.py's `Backtest.optimize` over the same grid, in the same run, trade counts compared
for every combination.

Data: BENCH_BARS (default 100,000) one-minute MES bars, generated and stored as
bench/backtest_engine.py does (a random walk on the tick grid in the open minutes, COPY into the
bar store), deleted at the end.

The grid: trend following, fast_period × slow_period = 9 × 10 = 90 combinations (every fast below
every slow), ATR 14, stop 2 ATR, no slippage, no commission, no risk limits.
- ours: `POST /api/backtests/matrix` to gunicorn as `make run` serves it, run by one
  `celery worker -Q backtests --concurrency 2` (two processes, as the Procfile's backtests worker);
  the clock runs from the POST to the client seeing the matrix SUCCEEDED (polled every 50 ms): 90
  ledger jobs, bars from the store (read once per worker process: the bar cache), the engine,
  metrics and every trade stored.
- backtesting.py: `Backtest.optimize` over the same grid (`return_heatmap=True`, maximising
  "# Trades" so that the heatmap carries every combination's trade count), the strategy as
  bench/backtest_engine.py writes it in its API; it fans the combinations out over its own process
  pool (two processes on this two-core box).
Check: for each of the 90 combinations, backtesting.py's closed trades == ours (the stored trades
whose exit is not END: the position open at the end is left out on both sides).

Target (issue 10): ours >= 10x backtesting.py's combinations/s. Exit status 1 when missed, 2 when the
run failed or a combination's trade count differs.

Run: make bench   (or: python -m config.embedded exec -- python bench/backtest_matrix.py)
Knobs: BENCH_BARS (default 100,000), BENCH_TIMEOUT (seconds for the whole run, default 1200).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bars: not for a benchmark's output

import numpy as np  # noqa: E402

from bench import backtest_engine as single  # noqa: E402
from bench.common import setup_django, stop_processes  # noqa: E402

BARS = int(os.environ.get("BENCH_BARS", 100_000))
BUDGET = float(os.environ.get("BENCH_TIMEOUT", 1200))
FAST = [5, 8, 10, 12, 15, 18, 20, 22, 25]
SLOW = [30, 35, 40, 45, 50, 55, 60, 70, 80, 90]
BASE = {"fast_period": 20, "slow_period": 50, "atr_period": 14, "stop_atr_multiple": 2.0}
TARGET = 10.0


# -- the peer ----------------------------------------------------------------------------------
# At module level: backtesting.py pickles the strategy class into its process pool (by reference).

import pandas as pd  # noqa: E402
from backtesting import Strategy  # noqa: E402

_TICK = 0.25
DECIDE_FROM = max(SLOW)  # the window's first bar: the bars before it are every combination's warm-up
_TRADABLE: np.ndarray | None = None  # the market-hours mask of the bars (set before optimize; forked)


class TrendFollowingGrid(Strategy):
    """bench/backtest_engine.py's strategy, with fast_period and slow_period as optimize's parameters."""

    fast_period = BASE["fast_period"]
    slow_period = BASE["slow_period"]

    def init(self) -> None:
        from apps.trading import vectorized

        closes = pd.Series(self.data.Close)
        ticks = {
            k: np.rint(np.asarray(getattr(self.data, k.capitalize()), dtype=np.float64) / _TICK).astype(np.int64)
            for k in ("open", "high", "low", "close")
        }
        params = BASE | {"fast_period": int(self.fast_period), "slow_period": int(self.slow_period)}
        # The decision's stop price (close ∓ 2 ATR(14) on the tick grid), as the strategy defines it.
        sig = vectorized.evaluate(
            "trend_following", ticks["open"], ticks["high"], ticks["low"], ticks["close"], params, Decimal("0.25")
        )
        fast_n, slow_n = params["fast_period"], params["slow_period"]
        tradable = _TRADABLE
        assert tradable is not None
        self.fast = self.I(lambda: closes.rolling(fast_n).mean().fillna(0).to_numpy(), name="fast")
        self.slow = self.I(lambda: closes.rolling(slow_n).mean().fillna(0).to_numpy(), name="slow")
        self.stop = self.I(lambda: sig.stop * _TICK, name="stop")
        self.ok = self.I(lambda: tradable.astype(float), name="tradable")

    def next(self) -> None:
        if len(self.data) <= DECIDE_FROM or not self.ok[-1]:
            return
        fast, slow = self.fast[-1], self.slow[-1]
        if fast == slow:
            return
        want = 1 if fast > slow else -1
        held = self.position.size
        if held * want > 0 or not self.stop[-1]:
            return
        for trade in self.trades:  # the reversal cancels the working stop when it is decided
            trade.sl = None
        if want > 0:
            self.buy(size=1 - held, sl=self.stop[-1])
        else:
            self.sell(size=1 + held, sl=self.stop[-1])


def run_peer(bars: Any) -> tuple[float, dict[tuple[int, int], int]]:
    """backtesting.py's optimize over the grid: (seconds, trades per (fast, slow))."""
    global _TRADABLE
    from backtesting import Backtest

    from apps.trading import engine

    n = len(bars.ts)
    _TRADABLE = engine.tradable(single.INSTRUMENT, np.asarray(bars.ts, dtype=np.int64), single.TF)
    df = single.frame(bars, n, _TICK)
    bt = Backtest(
        df, TrendFollowingGrid, cash=1e9, commission=0, spread=0, exclusive_orders=False, hedging=False,
        trade_on_close=False, finalize_trades=False,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        os.environ.setdefault("TQDM_DISABLE", "1")
        t0 = time.perf_counter()
        _, heatmap = bt.optimize(
            fast_period=FAST,
            slow_period=SLOW,
            constraint=lambda p: p.fast_period < p.slow_period,
            maximize="# Trades",
            return_heatmap=True,
        )
        seconds = time.perf_counter() - t0
    return seconds, {(int(f), int(s)): int(v) for (f, s), v in heatmap.items()}


# -- ours ----------------------------------------------------------------------------------------


def run_ours(start: datetime, end: datetime, logs: Path) -> tuple[float, dict[tuple[int, int], int], int]:
    """POST /api/backtests/matrix → 90 jobs on the backtests worker → stored results:
    (wall seconds, closed trades per (fast, slow), matrix id)."""
    import httpx

    from apps.accounts.services import api_token_create
    from apps.backtests.models import Backtest, BacktestTrade
    from apps.core.roles import Role

    _, token = api_token_create(username=f"bench-matrix-{os.getpid()}", role=Role.OPERATOR)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        base = single.serve(logs, f"benchmx{os.getpid()}", single.free_port(), processes)
        body = {
            "strategy_key": single.STRATEGY,
            "parameters": BASE,
            "instrument": single.INSTRUMENT,
            "timeframe": single.TIMEFRAME,
            "start": start.isoformat().replace("+00:00", "Z"),
            "end": end.isoformat().replace("+00:00", "Z"),
            "fill_model": {"slippage_ticks": 0, "commission_per_contract": "0"},
            "grid": {"fast_period": FAST, "slow_period": SLOW},
            "objective": "expectancy",
        }
        with httpx.Client(base_url=base, timeout=60, headers={"Authorization": f"Token {token}"}) as client:
            t0 = time.perf_counter()
            answer = client.post("/api/backtests/matrix", json=body)
            if answer.status_code != 202:
                raise single.Failed(f"POST /api/backtests/matrix answered {answer.status_code}: {answer.text[:500]}")
            matrix_id = answer.json()["id"]
            while True:
                state = client.get(f"/api/backtests/matrix/{matrix_id}", params={"limit": 1}).json()
                if state["status"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                    break
                if time.perf_counter() - t0 > BUDGET:
                    raise single.Failed(
                        f"matrix {matrix_id} still {state['status']} after {time.perf_counter() - t0:.0f}s"
                    )
                time.sleep(0.05)
            wall = time.perf_counter() - t0
        runs = list(
            Backtest.objects.filter(matrix_id=matrix_id).values(
                "id", "status", "parameters", "error", "timings", "elapsed_ms"
            )
        )
        failed = [r for r in runs if r["status"] != "SUCCEEDED"]
        if failed or len(runs) != len(FAST) * len(SLOW):
            raise single.Failed(f"matrix {matrix_id}: {len(runs)} runs, not succeeded: {failed[:3]}")
        closed = {
            r["id"]: BacktestTrade.objects.filter(backtest_id=r["id"]).exclude(exit_reason="END").count() for r in runs
        }
        counts = {(r["parameters"]["fast_period"], r["parameters"]["slow_period"]): closed[r["id"]] for r in runs}
        # Each run's own clock (stored with it): from its claim to its result's COPY, by phase.
        per_run = {k: float(np.mean([r["timings"][k] for r in runs])) for k in ("bars_ms", "engine_ms", "store_ms")} | {
            "elapsed_ms": float(np.mean([r["elapsed_ms"] for r in runs]))
        }
        print(
            "  ours, per run (mean of its stored timings): "
            + ", ".join(f"{k.removesuffix('_ms')} {v:.0f} ms" for k, v in per_run.items())
            + f"; trades stored per run {np.mean(list(closed.values())):.0f}",
            flush=True,
        )
        return wall, counts, matrix_id
    finally:
        stop_processes(processes)


def main() -> int:
    setup_django()
    from django.core.management import call_command

    from apps.backtests.models import BacktestMatrix
    from apps.market.arrays import bar_arrays, bar_cache_clear

    call_command("migrate", verbosity=0)

    def out_of_time(signum: int, frame: Any) -> None:
        raise single.Failed(f"the whole run took longer than BENCH_TIMEOUT={BUDGET:.0f}s")

    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(max(1, int(BUDGET)))
    import backtesting

    combos = len(FAST) * len(SLOW)
    print(
        f"backtest matrix: trend following, {combos} combinations (fast {FAST[0]}..{FAST[-1]} x slow "
        f"{SLOW[0]}..{SLOW[-1]}) on {BARS:,} one-minute MES bars; backtesting.py {backtesting.__version__}; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    g = single.generate(BARS)
    start, end = single.window(g)
    single.clean(start, end)
    matrix_id = None
    try:
        single.store(g)
        bar_cache_clear()
        bars = bar_arrays(instrument=single.INSTRUMENT, timeframe=single.TIMEFRAME, start=start, end=end)
        first = DECIDE_FROM  # every combination's warm-up is inside the stored bars before it
        window_start = datetime.fromtimestamp(int(bars.ts[first]), UTC)
        with tempfile.TemporaryDirectory(prefix="bench-matrix-") as logs:
            ours_s, ours, matrix_id = run_ours(window_start, end, Path(logs))
        print(f"  ours: {ours_s:.1f}s for {combos} runs, {combos / ours_s:.2f} runs/s", flush=True)
        peer_s, peer = run_peer(bars)
        print(f"  backtesting.py optimize: {peer_s:.1f}s, {combos / peer_s:.2f} runs/s", flush=True)
    except single.Failed as failed:
        signal.alarm(0)
        print(f"\nFAILED: {failed}", file=sys.stderr)
        return 2
    finally:
        signal.alarm(0)
        if matrix_id is not None:
            BacktestMatrix.objects.filter(pk=matrix_id).delete()
        single.clean(start, end)

    differ = sorted(k for k in ours if ours[k] != peer.get(k))
    ratio = peer_s / ours_s
    print(f"\n{'grid of ' + str(combos):<58}{'seconds':>10}{'runs/s':>10}")
    print(f"{'ours: POST /api/backtests/matrix (2 worker processes)':<58}{ours_s:>10.1f}{combos / ours_s:>10.2f}")
    print(f"{'backtesting.py Backtest.optimize (its process pool)':<58}{peer_s:>10.1f}{combos / peer_s:>10.2f}")
    print(
        f"\ntrade counts: {combos - len(differ)} of {combos} combinations equal"
        + (
            f"; differing: {differ[:5]} ours {[ours[k] for k in differ[:5]]} theirs {[peer.get(k) for k in differ[:5]]}"
            if differ
            else ""
        )
    )
    print(f"ours / backtesting.py: {ratio:.1f}x (target >= {TARGET:.0f}x: {'met' if ratio >= TARGET else 'MISSED'})")
    if differ:
        return 2
    return 0 if ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
