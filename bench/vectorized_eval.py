"""The vectorized strategy evaluator (apps/trading/vectorized.py) against decide() per bar.

For each catalogue strategy with its catalogue defaults, on BENCH_BARS (default 1,000,000)
one-minute MES-like bars in ticks: our figure is `vectorized.evaluate` over the whole window plus
`vectorized.actions` for a flat, a long and a short position (everything a backtest's bar loop
needs); the peer is `strategies.decide` called per bar, as a tick calls it (the last
required_bars bars, flat), timed on a BENCH_SLICE-bar slice (default 10,000) and extrapolated.
Both sides' decisions are compared on the slice (flat position), so the figures are for the same
answers. No database: run it as `.venv/bin/python bench/vectorized_eval.py`.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.market.bars import MarketBar  # noqa: E402
from apps.trading import (  # noqa: E402
    catalogue,  # noqa: E402
    strategies,
    vectorized,
)

# The catalogue's defaults, as the starter pack and the tick benchmark use them.
DEFAULTS = {key: catalogue.STRATEGIES[key].defaults() for key in ("trend_following", "breakout", "mean_reversion")}
TICK = Decimal("0.25")


Bar = MarketBar  # a closed bar as the market app serves it


def walk(n: int, seed: int = 20250106) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    close = 20_000 + np.cumsum(rng.integers(-4, 5, n))
    open_ = np.concatenate([[20_000], close[:-1]])
    high = np.maximum(open_, close) + rng.integers(0, 3, n)
    low = np.minimum(open_, close) - rng.integers(0, 3, n)
    return tuple(a.astype(np.int64) for a in (open_, high, low, close))


def main() -> int:
    n = int(os.environ.get("BENCH_BARS", "1000000"))
    n_slice = int(os.environ.get("BENCH_SLICE", "10000"))
    ohlc = walk(n)
    t0 = datetime(2025, 1, 6, 14, 30, tzinfo=UTC)
    print(f"vectorized evaluator vs decide() per bar: {n:,} one-minute bars (decide on {n_slice:,}, extrapolated)")
    head = ("strategy", "vectorized s", "bars/s", "decide() s (extrap.)", "bars/s", "speed-up")
    print(f"{head[0]:<16} {head[1]:>12} {head[2]:>14} {head[3]:>21} {head[4]:>10} {head[5]:>9}")
    ok = True
    for key, params in DEFAULTS.items():
        start = time.perf_counter()
        sig = vectorized.evaluate(key, *ohlc, params, TICK)
        per_position = {pos: vectorized.actions(sig, pos) for pos in (0, 1, -1)}
        ours = time.perf_counter() - start

        needed = strategies.required_bars(key, params)
        lo = n // 2
        o, h, lo_, c = (a[lo - needed + 1 : lo + n_slice] for a in ohlc)
        bars = [
            Bar(t0 + timedelta(minutes=i), int(a) * TICK, int(b) * TICK, int(d) * TICK, int(e) * TICK, 1)
            for i, (a, b, d, e) in enumerate(zip(o, h, lo_, c, strict=True))
        ]
        start = time.perf_counter()
        answers = [
            strategies.decide(key, bars[j - needed + 1 : j + 1], params, 0, tick_size=TICK)
            for j in range(needed - 1, len(bars))
        ]
        peer = (time.perf_counter() - start) * n / n_slice

        for k, ref in enumerate(answers):
            i = lo + k
            stop = None if ref.stop_price is None else int(ref.stop_price / TICK)
            if vectorized.decision(sig, i, 0) != (str(ref.action), stop, ref.reason_codes) or (
                vectorized.ACTIONS[per_position[0][i]] != str(ref.action)
            ):
                print(f"  MISMATCH {key} at bar {i}: {vectorized.decision(sig, i, 0)} vs {ref.as_dict()}")
                ok = False
                break
        entries = int(np.count_nonzero(per_position[0] != vectorized.HOLD))
        print(
            f"{key:<16} {ours:>12.3f} {n / ours:>14,.0f} {peer:>21.1f} {n / peer:>10,.0f} {peer / ours:>8,.0f}×"
            f"   ({entries:,} bars with an entry from flat)"
        )
    print("decisions equal on every compared bar" if ok else "DECISIONS DIFFER")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
