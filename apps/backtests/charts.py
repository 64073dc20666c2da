"""What a backtest's page draws, as plain data for TradingView lightweight-charts (pure: arrays and
rows in, JSON-ready lists out; no database).

- `candles`: the window's bars as at most MAX_CANDLES candles. A longer window is cut into equal
  runs of consecutive bars, each drawn as one candle (its first open, highest high, lowest low,
  last close, at its first bar's open time), so no high or low is lost; a chart of a million
  one-minute bars stays a few hundred kilobytes and draws at once.
- `trade_markers`: an entry and an exit mark per trade, at the candle holding the bar the fill
  happened on (a marker's time must be a candle's time, or the chart cannot place it).
- `drawdown`: the equity curve's fall from its running peak at each point (USD, ≤ 0), drawn under
  the equity.

Times are epoch seconds (UTC), which the chart shows as UTC."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np

MAX_CANDLES = 5000
# Markers beyond this many trades are left off (the page says how many are shown): every trade is
# in the trade table, and a chart with tens of thousands of arrows shows nothing readable anyway.
MAX_MARKED_TRADES = 2500

EXIT_WORDS = {"STOP": "Stop", "SIGNAL": "Exit", "END": "End"}


@dataclass(frozen=True)
class Candles:
    rows: list[dict[str, Any]]
    times: np.ndarray  # int64: each candle's time, ascending (for placing markers)
    bars_per_candle: int
    bars: int


def candles(
    ts: np.ndarray,
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    *,
    tick_size: Decimal,
    max_candles: int = MAX_CANDLES,
) -> Candles:
    """Bars (open times in epoch seconds, prices in whole ticks) as at most `max_candles` candles."""
    if max_candles < 1:
        raise ValueError("max_candles must be at least 1")
    n = len(ts)
    if not n:
        return Candles(rows=[], times=np.zeros(0, dtype=np.int64), bars_per_candle=1, bars=0)
    per = -(-n // max_candles)  # ceil: the fewest bars per candle that fit the limit
    starts = np.arange(0, n, per)
    ends = np.append(starts[1:], n) - 1
    times = np.asarray(ts, dtype=np.int64)[starts]
    o = np.asarray(open_)[starts]
    c = np.asarray(close)[ends]
    h = np.maximum.reduceat(np.asarray(high), starts)
    lo = np.minimum.reduceat(np.asarray(low), starts)
    # Prices back from ticks. A float is exact enough for drawing (the table shows the Decimals).
    tick = float(tick_size)
    rows = [
        {"time": int(t), "open": a * tick, "high": b * tick, "low": d * tick, "close": e * tick}
        for t, a, b, d, e in zip(times.tolist(), o.tolist(), h.tolist(), lo.tolist(), c.tolist(), strict=True)
    ]
    return Candles(rows=rows, times=times, bars_per_candle=per, bars=n)


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def trade_markers(trades: Iterable[Any], candle_times: np.ndarray) -> list[dict[str, Any]]:
    """Entry and exit markers of `trades` (objects or dicts with side, entry_ts, exit_ts,
    exit_reason), each at the candle whose bars hold its fill, sorted by time as the chart needs.
    An entry is an arrow on the side traded (up below the bar for a long, down above it for a
    short); an exit is a circle on the other side, named by why it closed."""
    if not len(candle_times):
        return []

    def get(trade: Any, name: str) -> Any:
        return trade[name] if isinstance(trade, dict) else getattr(trade, name)

    def at(moment: datetime) -> int:
        i = int(np.searchsorted(candle_times, _epoch(moment), side="right")) - 1
        return int(candle_times[max(i, 0)])

    out: list[tuple[int, int, dict[str, Any]]] = []
    for n, trade in enumerate(trades):
        long = get(trade, "side") == "LONG"
        out.append(
            (
                at(get(trade, "entry_ts")),
                2 * n,
                {
                    "position": "belowBar" if long else "aboveBar",
                    "shape": "arrowUp" if long else "arrowDown",
                    "color": "#039855" if long else "#d92d20",
                    "text": "Long" if long else "Short",
                },
            )
        )
        out.append(
            (
                at(get(trade, "exit_ts")),
                2 * n + 1,
                {
                    "position": "aboveBar" if long else "belowBar",
                    "shape": "circle",
                    "color": "#475467",
                    "text": EXIT_WORDS.get(get(trade, "exit_reason"), "Exit"),
                },
            )
        )
    out.sort(key=lambda item: (item[0], item[1]))
    return [{"time": time, **marker} for time, _, marker in out]


def equity_series(curve: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The stored equity curve ([{"ts", "equity"}], ts ISO UTC, equity a decimal string) as the
    chart's equity line and the drawdown under it: at each point the equity minus its running
    peak (the capital at the start is the first peak), in USD."""
    times: list[int] = []
    values: list[float] = []
    for point in curve:
        moment = datetime.fromisoformat(str(point["ts"]).replace("Z", "+00:00"))
        t = _epoch(moment)
        if times and t <= times[-1]:
            continue  # the chart needs strictly increasing times; the curve has them already
        times.append(t)
        values.append(float(point["equity"]))
    equity = np.asarray(values, dtype=np.float64)
    falls = equity - np.maximum.accumulate(equity) if len(equity) else equity
    return {
        "equity": [{"time": t, "value": round(v, 2)} for t, v in zip(times, values, strict=True)],
        "drawdown": [{"time": t, "value": round(float(v), 2)} for t, v in zip(times, falls.tolist(), strict=True)],
    }
