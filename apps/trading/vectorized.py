"""The strategies over a whole window of bars at once: what `strategies.decide` would answer at
the close of every bar, computed with numpy over prices in integer ticks.

`decide()` (apps/trading/strategies.py) is the reference and stays the only definition of a
strategy; this module is its fast twin for backtests, which cannot call it a million times. A
property test (tests/trading/test_vectorized.py) holds the two equal decision for decision:
action, stop price and reason codes, at every bar, for a flat, long and short position.

Input: int64 arrays `open, high, low, close` in ticks (price = ticks × tick_size, exact), oldest
first, the strategy key, its catalogue parameters and the tick size. `evaluate()` returns
position-independent `Signals` (one entry per bar, bar i decided from bars 0..i with decide()'s
warm-up rule); `decision(signals, i, position)` maps one bar and a position to decide()'s answer,
and `actions(signals, position)` gives the actions for a whole window at one position, so a
backtest runs its Python loop only at the bars where something happens.

Exactness. Sums, SMAs (compared cross-multiplied), ranges, the breakout triggers, the zero-ATR and
zero-volatility tests are exact integer arithmetic. Two quantities are irrational or carry
decide()'s 34-digit rounding: the z-score (a square root) and the stop (Wilder's ATR, rounded at
every smoothing step, times the multiple, floored or ceiled to the tick grid). For those a float
value decides only where it is far from the boundary (z more than 1e-9 from a threshold, the stop
distance more than 1e-7 ticks from the tick grid, each far beyond the float error); at the bars
near a boundary — exact ties such as z == entry_zscore, or an ATR on the grid — the value is
recomputed with decide()'s own Decimal arithmetic (same context, same functions), so ties go the
way decide() takes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from apps.trading import indicators, strategies
from apps.trading.indicators import CONTEXT

# Reason codes as small ints (index into CODES) for the signal arrays.
CODES: tuple[str, ...] = (
    strategies.INSUFFICIENT_BARS,
    strategies.NO_SIGNAL,
    strategies.ZERO_VOLATILITY,
    strategies.TREND_UP,
    strategies.TREND_DOWN,
    strategies.BREAKOUT_UP,
    strategies.BREAKOUT_DOWN,
    strategies.ZSCORE_ABOVE_ENTRY,
    strategies.ZSCORE_BELOW_ENTRY,
)
CODE = {code: n for n, code in enumerate(CODES)}

# Action codes of `actions()`.
HOLD, BUY, SELL, FLAT = 0, 1, 2, 3
ACTIONS: tuple[str, ...] = ("HOLD", "BUY", "SELL", "FLAT")

# Away from these margins a float value is decisive (its error is below 1e-12 of the quantity).
_Z_MARGIN = 1e-9
_STOP_MARGIN = 1e-7
# int64 arithmetic is used only where every intermediate fits below this; else Python ints.
_INT64_SAFE = 2**62


@dataclass(frozen=True)
class Signals:
    """Per bar, what a strategy sees, independent of the position.

    - `want`: +1 (the signal wants long 1), −1 (short 1), 0 (no side).
    - `signal`: index into CODES: INSUFFICIENT_BARS, NO_SIGNAL, ZERO_VOLATILITY or the signal's code.
    - `zero_atr`: the ATR is 0 (an entry would HOLD with ZERO_ATR).
    - `stop`: the protective stop in ticks for an entry on the `want` side (where want ≠ 0 and
      the ATR is not 0; 0 elsewhere).
    - `exit_long` / `exit_short` (mean reversion only): z ≥ −exit_zscore / z ≤ exit_zscore, the
      FLAT of a long / short (read only where want == 0 and the signal is NO_SIGNAL).
    """

    key: str
    needed: int
    want: np.ndarray
    signal: np.ndarray
    zero_atr: np.ndarray
    stop: np.ndarray
    exit_long: np.ndarray
    exit_short: np.ndarray

    def __len__(self) -> int:
        return len(self.want)


def decision(sig: Signals, i: int, position: int) -> tuple[str, int | None, tuple[str, ...]]:
    """decide()'s answer at the close of bar i for this position: (action, stop in ticks or None,
    reason codes — reasons[0] explains the action, a second one names the signal behind it)."""
    code = CODES[sig.signal[i]]
    want = int(sig.want[i])
    if code in (strategies.INSUFFICIENT_BARS, strategies.ZERO_VOLATILITY):
        return "HOLD", None, (code,)
    if want == 0:
        if sig.key == "mean_reversion" and position != 0:
            if (position > 0 and sig.exit_long[i]) or (position < 0 and sig.exit_short[i]):
                return "FLAT", None, (strategies.ZSCORE_REVERTED,)
            return "HOLD", None, (strategies.IN_POSITION,)
        return "HOLD", None, (code,)
    if (want > 0 and position > 0) or (want < 0 and position < 0):
        return "HOLD", None, (strategies.IN_POSITION, code)
    if sig.zero_atr[i]:
        return "HOLD", None, (strategies.ZERO_ATR, code)
    return ("BUY" if want > 0 else "SELL"), int(sig.stop[i]), (code,)


def actions(sig: Signals, position: int) -> np.ndarray:
    """The action code (HOLD, BUY, SELL, FLAT) at every bar for one position, as decision() gives it."""
    side = (position > 0) - (position < 0)
    enter = (sig.want != 0) & (sig.want != side) & ~sig.zero_atr
    out = np.where(enter, np.where(sig.want > 0, BUY, SELL), HOLD).astype(np.int8)
    if sig.key == "mean_reversion" and side != 0:
        quiet = (sig.want == 0) & (sig.signal == CODE[strategies.NO_SIGNAL])
        out[quiet & (sig.exit_long if side > 0 else sig.exit_short)] = FLAT
    return out


# -- evaluation -----------------------------------------------------------------------------------


def evaluate(
    strategy_key: str,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    parameters: Mapping[str, Any],
    tick_size: Decimal,
) -> Signals:
    """The Signals of `strategy_key` at every bar of the window (see the module docstring)."""
    if strategy_key not in strategies.PARAMETERS:
        raise strategies.StrategyInputError("UNKNOWN_STRATEGY", f"unknown strategy {strategy_key!r}")
    p = strategies._parameters(strategy_key, parameters)
    tick_size = strategies._tick_size(tick_size)
    high, low, close = (np.ascontiguousarray(a, dtype=np.int64) for a in (high, low, close))
    n = len(close)
    if not len(open_) == len(high) == len(low) == n:
        raise strategies.StrategyInputError("INVALID_BARS", "open, high, low and close must have the same length")
    needed = strategies.required_bars(strategy_key, p)
    want = np.zeros(n, dtype=np.int8)
    signal = np.full(n, CODE[strategies.INSUFFICIENT_BARS], dtype=np.int8)
    zero_atr = np.zeros(n, dtype=bool)
    stop = np.zeros(n, dtype=np.int64)
    exit_long = np.zeros(n, dtype=bool)
    exit_short = np.zeros(n, dtype=bool)
    sig = Signals(strategy_key, needed, want, signal, zero_atr, stop, exit_long, exit_short)
    if n < needed:
        return sig
    ready = slice(needed - 1, n)  # bars with enough history
    if strategy_key == "trend_following":
        _trend(p, close, ready, sig)
    elif strategy_key == "breakout":
        _breakout(p, high, low, close, ready, sig)
    else:
        _mean_reversion(p, close, ready, tick_size, sig)
    _stops(p, high, low, close, ready, tick_size, sig)
    return sig


def _centered(close: np.ndarray, window: int) -> np.ndarray:
    """Closes minus a reference close (sums and variances do not change), in int64 when the window
    sums of squares times the window fit, else as Python ints."""
    ref = int(close[len(close) // 2])
    centered = close - ref
    m = int(np.abs(centered).max()) if len(centered) else 0
    if max(len(close), window) * window * m * m < _INT64_SAFE:
        return centered
    return centered.astype(object)


def _window_sums(x: np.ndarray, window: int) -> np.ndarray:
    """out[i] = x[i − window + 1] + … + x[i] for i ≥ window − 1 (index i − window + 1 of the result)."""
    c = np.concatenate([np.zeros(1, dtype=x.dtype), np.cumsum(x)])
    return c[window:] - c[:-window]


def _trend(p: dict[str, Any], close: np.ndarray, ready: slice, sig: Signals) -> None:
    fast_n, slow_n = p["fast_period"], p["slow_period"]
    c = _centered(close, slow_n)
    start = ready.start
    fast = _window_sums(c, fast_n)[start - fast_n + 1 :]
    slow = _window_sums(c, slow_n)[start - slow_n + 1 :]
    # fast/fast_n vs slow/slow_n, cross-multiplied: exact.
    cross = fast * slow_n - slow * fast_n
    diff = (cross > 0).astype(np.int8) - (cross < 0).astype(np.int8)
    sig.want[ready] = diff
    sig.signal[ready] = np.where(
        diff > 0, CODE[strategies.TREND_UP], np.where(diff < 0, CODE[strategies.TREND_DOWN], CODE[strategies.NO_SIGNAL])
    )


def _rolling_max(x: np.ndarray, window: int) -> np.ndarray:
    """out[s] = max(x[s : s + window]) for every full window (van Herk / Gil-Werman: O(n))."""
    n = len(x)
    pad = (-n) % window
    blocks = np.concatenate([x, np.full(pad, x.min(), dtype=x.dtype)]).reshape(-1, window)
    prefix = np.maximum.accumulate(blocks, axis=1).ravel()
    suffix = np.maximum.accumulate(blocks[:, ::-1], axis=1)[:, ::-1].ravel()
    return np.maximum(suffix[: n - window + 1], prefix[window - 1 : n])


def _breakout(
    p: dict[str, Any], high: np.ndarray, low: np.ndarray, close: np.ndarray, ready: slice, sig: Signals
) -> None:
    lookback, buffer = p["lookback_bars"], p["breakout_buffer_ticks"]
    start = ready.start
    # The range of the `lookback` bars before bar i: windows ending at i − 1, i.e. starting at i − lookback.
    highest = _rolling_max(high, lookback)[start - lookback : len(close) - lookback]
    lowest = -_rolling_max(-low, lookback)[start - lookback : len(close) - lookback]
    c = close[ready]
    up = c > highest + buffer
    down = c < lowest - buffer
    sig.want[ready] = np.where(up, 1, np.where(down, -1, 0))
    sig.signal[ready] = np.where(
        up, CODE[strategies.BREAKOUT_UP], np.where(down, CODE[strategies.BREAKOUT_DOWN], CODE[strategies.NO_SIGNAL])
    )


def _mean_reversion(p: dict[str, Any], close: np.ndarray, ready: slice, tick_size: Decimal, sig: Signals) -> None:
    n_ = p["lookback_bars"]
    entry, exit_ = p["entry_zscore"], p["exit_zscore"]
    c = _centered(close, n_)
    start = ready.start
    total = _window_sums(c, n_)[start - n_ + 1 :]
    squares = _window_sums(c * c, n_)[start - n_ + 1 :]
    last = c[ready]
    # z = (close − mean) / stdev = (n·close − Σ) / √(n·Σx² − (Σ)²), the tick size cancelling out.
    num = n_ * last - total
    var = n_ * squares - total * total  # exact; 0 exactly when every close is equal
    flat = var == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.asarray(num, dtype=np.float64) / np.sqrt(np.asarray(var, dtype=np.float64))
    z[flat] = 0.0
    e, x = float(entry), float(exit_)
    above, below = z > e, z < -e
    exit_long, exit_short = z >= -x, z <= x
    near = np.zeros(len(z), dtype=bool)
    for t in (e, -e, x, -x):
        near |= np.abs(z - t) <= _Z_MARGIN * (1 + abs(t))
    near &= ~flat
    for j in np.flatnonzero(near):
        zd = _reference_zscore(close, start + j - n_ + 1, start + j + 1, n_, tick_size)
        above[j], below[j] = zd > entry, zd < -entry
        exit_long[j], exit_short[j] = zd >= -exit_, zd <= exit_
    above &= ~flat
    below &= ~flat
    sig.want[ready] = np.where(above, -1, np.where(below, 1, 0))
    sig.signal[ready] = np.where(
        flat,
        CODE[strategies.ZERO_VOLATILITY],
        np.where(
            above,
            CODE[strategies.ZSCORE_ABOVE_ENTRY],
            np.where(below, CODE[strategies.ZSCORE_BELOW_ENTRY], CODE[strategies.NO_SIGNAL]),
        ),
    )
    sig.exit_long[ready] = exit_long & ~flat
    sig.exit_short[ready] = exit_short & ~flat


def _reference_zscore(close: np.ndarray, lo: int, hi: int, lookback: int, tick_size: Decimal) -> Decimal:
    """decide()'s z-score of the closes [lo, hi), in its Decimal arithmetic (for near-tie bars)."""
    return _z([int(v) * tick_size for v in close[lo:hi]], lookback)


@indicators.in_context
def _z(closes: list[Decimal], lookback: int) -> Decimal:
    mean, stdev = indicators.mean_and_stdev(closes, lookback)
    return (closes[-1] - mean) / stdev


# -- the protective stop ----------------------------------------------------------------------------


def _true_ranges(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """tr[i] of bar i against close[i − 1] (tr[0] = 0: never read, as every ATR needs 2p + 1 bars)."""
    tr = np.zeros(len(close), dtype=np.int64)
    prev = close[:-1]
    tr[1:] = np.maximum(high[1:] - low[1:], np.maximum(np.abs(high[1:] - prev), np.abs(low[1:] - prev)))
    return tr


def _stops(
    p: dict[str, Any],
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    ready: slice,
    tick_size: Decimal,
    sig: Signals,
) -> None:
    """zero_atr at every ready bar, and the stop at the bars that want a side.

    The ATR at bar i is Wilder's over the true ranges of bars i − 2p + 1 … i: the first p averaged
    into the seed, then p smoothing steps, which makes it a fixed weighted sum of those 2p ranges
    (seed ranges (1/p)(1 − 1/p)^p each, the k-th smoothing range (1/p)(1 − 1/p)^(p − k))."""
    period = p["atr_period"]
    span = 2 * period
    start = ready.start
    tr = _true_ranges(high, low, close)
    sums = _window_sums(tr, span)[start - span + 1 :]
    sig.zero_atr[ready] = sums == 0
    idx = np.flatnonzero((sig.want[ready] != 0) & (sums != 0))
    if not len(idx):
        return
    bars = idx + start
    q = 1.0 - 1.0 / period
    weights = np.empty(span)
    weights[:period] = q**period / period
    weights[period:] = q ** np.arange(period - 1, -1, -1) / period
    # atr[j] over tr[j .. j + span − 1], i.e. at bar j + span − 1.
    atr = np.convolve(tr.astype(np.float64), weights[::-1], mode="valid")[bars - span + 1]
    multiple = p["stop_atr_multiple"]
    distance = float(multiple) * atr  # in ticks
    nearest = np.rint(distance)
    near = np.abs(distance - nearest) <= _STOP_MARGIN + 1e-12 * distance
    ticks = np.ceil(distance).astype(np.int64)
    side = sig.want[bars].astype(np.int64)
    sig.stop[bars] = close[bars] - side * ticks
    for b, s in zip(bars[near], side[near], strict=True):
        sig.stop[b] = _reference_stop(int(s), high, low, close, int(b), period, multiple, tick_size)


def _reference_stop(
    side: int,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    i: int,
    period: int,
    multiple: Decimal,
    tick_size: Decimal,
) -> int:
    """decide()'s stop at bar i, in ticks, with its own Decimal arithmetic (for near-grid bars)."""
    lo = i - strategies.atr_window(period) + 1
    highs, lows, closes = ([int(v) * tick_size for v in a[lo : i + 1]] for a in (high, low, close))
    atr = indicators.atr(highs, lows, closes, period)
    stop = strategies._stop(side, closes[-1], atr, multiple, tick_size)
    return int(CONTEXT.divide(stop, tick_size))
