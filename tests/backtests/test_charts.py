"""apps/backtests/charts.py and presentation.py: what a backtest's page draws and says, from plain
values (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np

from apps.backtests import charts, presentation


def _bars(n: int, seed: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    ts = 1_765_800_000 + 60 * np.arange(n, dtype=np.int64)
    open_ = 24000 + np.cumsum(rng.integers(-5, 6, n))
    close = open_ + rng.integers(-6, 7, n)
    high = np.maximum(open_, close) + rng.integers(0, 4, n)
    low = np.minimum(open_, close) - rng.integers(0, 4, n)
    return ts, open_, high, low, close


def test_a_short_window_is_drawn_bar_for_bar() -> None:
    ts, o, h, lo, c = _bars(100)
    drawn = charts.candles(ts, o, h, lo, c, tick_size=Decimal("0.25"))
    assert drawn.bars_per_candle == 1 and len(drawn.rows) == 100
    assert drawn.rows[7] == {
        "time": int(ts[7]),
        "open": o[7] * 0.25,
        "high": h[7] * 0.25,
        "low": lo[7] * 0.25,
        "close": c[7] * 0.25,
    }


def test_a_long_window_fits_the_candle_limit_and_keeps_every_high_and_low() -> None:
    ts, o, h, lo, c = _bars(1_000_003)
    drawn = charts.candles(ts, o, h, lo, c, tick_size=Decimal("0.25"))
    assert len(drawn.rows) <= charts.MAX_CANDLES and drawn.bars_per_candle == 201
    assert max(r["high"] for r in drawn.rows) == h.max() * 0.25
    assert min(r["low"] for r in drawn.rows) == lo.min() * 0.25
    # Each candle is its run of bars: first open, last close, at its first bar's time.
    second = drawn.rows[1]
    run = slice(201, 402)
    assert second["time"] == int(ts[201]) and second["open"] == o[201] * 0.25 and second["close"] == c[401] * 0.25
    assert second["high"] == h[run].max() * 0.25 and second["low"] == lo[run].min() * 0.25
    assert drawn.rows[-1]["close"] == c[-1] * 0.25
    times = [r["time"] for r in drawn.rows]
    assert times == sorted(set(times))


def test_markers_sit_on_the_candle_that_holds_their_bar_in_time_order() -> None:
    times = np.array([1000, 1600, 2200], dtype=np.int64)

    def at(epoch: int) -> datetime:
        return datetime.fromtimestamp(epoch, UTC)

    trades = [
        {"side": "SHORT", "entry_ts": at(1700), "exit_ts": at(2300), "exit_reason": "STOP"},
        {"side": "LONG", "entry_ts": at(1000), "exit_ts": at(1660), "exit_reason": "SIGNAL"},
    ]
    markers = charts.trade_markers(trades, times)
    assert [(m["time"], m["text"], m["shape"]) for m in markers] == [
        (1000, "Long", "arrowUp"),
        (1600, "Short", "arrowDown"),
        (1600, "Exit", "circle"),
        (2200, "Stop", "circle"),
    ]


def test_the_drawdown_is_the_fall_from_the_running_peak() -> None:
    curve = [
        {"ts": "2025-12-15T14:00:00Z", "equity": "10000.00"},
        {"ts": "2025-12-15T14:01:00Z", "equity": "10100.00"},
        {"ts": "2025-12-15T14:02:00Z", "equity": "9950.50"},
        {"ts": "2025-12-15T14:03:00Z", "equity": "10200.00"},
    ]
    series = charts.equity_series(curve)
    assert [p["value"] for p in series["equity"]] == [10000.0, 10100.0, 9950.5, 10200.0]
    assert [p["value"] for p in series["drawdown"]] == [0.0, 0.0, -149.5, 0.0]
    assert series["equity"][0]["time"] == int(datetime(2025, 12, 15, 14, tzinfo=UTC).timestamp())


def test_cards_show_figures_in_words_and_a_null_one_with_its_reason() -> None:
    cards = {
        c["key"]: c
        for c in presentation.metric_cards(
            {
                "net_pnl": "-1234.5",
                "win_rate": "0.5833",
                "profit_factor": None,
                "trades": 1200,
                "max_drawdown": "300.00",
                "max_drawdown_pct": "2.9",
                "unknown": {"profit_factor": "no losing trade, so there is no loss to divide by"},
            }
        )
    }
    assert (cards["net_pnl"]["value"], cards["net_pnl"]["tone"]) == ("−1,234.50 USD", "bad")
    assert cards["win_rate"]["value"] == "58.3 %"
    assert cards["trades"]["value"] == "1,200"
    assert cards["profit_factor"]["value"] is None
    assert cards["profit_factor"]["reason"] == "no losing trade, so there is no loss to divide by"
    assert cards["max_drawdown"]["detail"] == "2.90 % of the peak it fell from"
    # A figure missing without a stated reason is still not shown as 0.
    assert cards["sharpe"]["value"] is None and cards["sharpe"]["reason"]


def test_decisions_are_counted_in_words_largest_first() -> None:
    rows = presentation.decision_rows(
        {"TRADE": {"TREND_UP": 4, "TREND_DOWN": 6}, "NO_TRADE": {"RISK_MAX_POSITION": 2, "SOMETHING_NEW": 1}}
    )
    assert [(r["outcome"], r["total"]) for r in rows] == [("Traded", 10), ("Did not trade", 3)]
    assert rows[0]["reasons"][0] == {
        "code": "TREND_DOWN",
        "words": "trend down (fast average below the slow one)",
        "count": 6,
    }
    assert [r["words"] for r in rows[1]["reasons"]] == [
        "refused by risk: the position would exceed its limit",
        "something new",
    ]
