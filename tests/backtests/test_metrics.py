"""apps.backtests.metrics: the figures of small hand-worked backtests, the nulls and their reasons,
the trade date of a close, the equity curve's downsampling, and every verdict path. Pure: no
database (the engine's result is built by hand)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from apps.backtests import metrics as m
from apps.market.arrays import expected_slots
from apps.market.instruments import trade_date
from apps.trading import catalogue, engine
from apps.trading.engine import EngineResult, EngineTrade

CAPITAL = Decimal(10000)
MONDAY = int(datetime(2025, 3, 3, tzinfo=UTC).timestamp())
START = datetime(2024, 3, 5, 13, 0, tzinfo=UTC)  # 07:00 CT, trade date 2024-03-05
END = datetime(2024, 3, 8, tzinfo=UTC)
LIMITS = {
    "min_trades": 3,
    "min_trading_days": 3,
    "min_profit_factor": "1.2",
    "min_expectancy": "0",
    "max_drawdown_pct": "20",
}


def _epoch(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())


def _trade(pnl: str, *, fees: str = "1.70", slippage: str = "1.25", reason: str = "SIGNAL") -> EngineTrade:
    t = START + timedelta(hours=1)
    return EngineTrade(
        side="LONG",
        quantity=1,
        entry_ts=t,
        entry_price=Decimal("5000.00"),
        exit_ts=t + timedelta(hours=1),
        exit_price=Decimal("5000.00"),
        exit_reason=reason,
        pnl=Decimal(pnl),
        fees=Decimal(fees),
        slippage=Decimal(slippage),
    )


def _result(trades: list[EngineTrade], close_ts: list[int], equity: list[float], position: list[int]) -> EngineResult:
    return EngineResult(
        fills=[],
        trades=trades,
        decisions={"TRADE": {}, "NO_TRADE": {}},
        bars=len(close_ts),
        close_ts=np.asarray(close_ts, dtype=np.int64),
        equity=np.asarray(equity, dtype=np.float64),
        position=np.asarray(position, dtype=np.int64),
    )


# Six closes on three CME trade dates (early March 2024: Chicago is UTC-6). 23:30 UTC on the 5th is
# 17:30 CT, after the 17:00 CT open of the session that belongs to the 6th.
CLOSES = [
    _epoch(2024, 3, 5, 14),  # 08:00 CT, trade date 03-05
    _epoch(2024, 3, 5, 15),  # 03-05
    _epoch(2024, 3, 5, 23, 30),  # 17:30 CT: 03-06
    _epoch(2024, 3, 6, 15),  # 03-06
    _epoch(2024, 3, 7, 14),  # 03-07
    _epoch(2024, 3, 7, 15),  # 03-07
]
EQUITY = [10000.0, 10100.0, 10050.0, 9900.0, 10040.0, 10085.0]
POSITION = [0, 1, 1, 0, -1, 0]
TRADES = [_trade("100.00"), _trade("-40.00"), _trade("25.00", reason="END")]


def test_a_hand_worked_backtest_gives_its_figures() -> None:
    out = m.summarize(
        _result(TRADES, CLOSES, EQUITY, POSITION), initial_capital=CAPITAL, start=START, end=END, thresholds=LIMITS
    )
    metrics = out["metrics"]
    # net 100 - 40 + 25 = 85; fees 3 x 1.70 = 5.10, gross = 85 + 5.10; slippage 3 x 1.25.
    assert metrics["net_pnl"] == "85.00"
    assert metrics["gross_pnl"] == "90.10"
    assert metrics["fees"] == "5.10"
    assert metrics["slippage"] == "3.75"
    assert metrics["trades"] == 3
    assert metrics["win_rate"] == "0.6667"  # 2 of 3
    assert metrics["profit_factor"] == "3.1250"  # (100 + 25) / 40
    assert metrics["expectancy"] == "28.33"  # 85 / 3
    # Peak 10,100 (2nd close), trough 9,900 (4th): 200 USD, 200 / 10,100 = 1.98 % of the peak.
    assert metrics["max_drawdown"] == "200.00"
    assert metrics["max_drawdown_pct"] == "1.98"
    assert metrics["exposure"] == "0.5000"  # 3 of 6 bars closed with a position
    # Daily closes 10,100 / 9,900 / 10,085 against 10,000 / 10,100 / 9,900:
    # r = 0.01, -0.0198020, 0.0186869; mean 0.0029616, sample sd 0.0201867 → 0.0029616 / 0.0201867 × √252;
    # downside sd √(0.0198020² / 3) = 0.0114327 → 0.0029616 / 0.0114327 × √252.
    assert metrics["sharpe"] == "2.3290"
    assert metrics["sortino"] == "4.1123"
    assert metrics["unknown"] == {}
    assert out["days"] == 3
    assert set(metrics) - {"max_drawdown_pct", "unknown"} == {
        "net_pnl",
        "gross_pnl",
        "fees",
        "slippage",
        "trades",
        "win_rate",
        "profit_factor",
        "expectancy",
        "max_drawdown",
        "sharpe",
        "sortino",
        "exposure",
    }
    assert out["classification"] == {"verdict": m.PROMOTABLE, "reasons": [], "thresholds": LIMITS}
    assert out["equity_curve"][0] == {"ts": "2024-03-05T13:00:00Z", "equity": "10000.00"}
    assert out["equity_curve"][-1] == {"ts": "2024-03-07T15:00:00Z", "equity": "10085.00"}
    assert len(out["equity_curve"]) == 7


def test_the_settings_thresholds_apply_when_none_are_given(settings: Any) -> None:
    defaults = m.summarize(_result(TRADES, CLOSES, EQUITY, POSITION), initial_capital=CAPITAL, start=START, end=END)
    assert defaults["classification"]["thresholds"] == {
        "min_trades": 30,
        "min_trading_days": 20,
        "min_profit_factor": "1.2",
        "min_expectancy": "0",
        "max_drawdown_pct": "20",
    }
    assert defaults["classification"]["verdict"] == m.MARGINAL  # 3 trades on 3 days
    settings.BACKTEST_CLASSIFICATION = {**LIMITS, "min_trades": 4}
    out = m.summarize(_result(TRADES, CLOSES, EQUITY, POSITION), initial_capital=CAPITAL, start=START, end=END)
    assert out["classification"]["verdict"] == m.MARGINAL
    assert [r["message"] for r in out["classification"]["reasons"]] == ["3 trades, 4 needed"]
    given = m.summarize(
        _result(TRADES, CLOSES, EQUITY, POSITION),
        initial_capital=CAPITAL,
        start=START,
        end=END,
        thresholds={"min_trades": 2},  # on top of the settings
    )
    assert given["classification"]["verdict"] == m.PROMOTABLE


def test_no_trades_leaves_the_trade_ratios_null_with_a_reason() -> None:
    out = m.summarize(
        _result([], CLOSES, [10000.0] * 6, [0] * 6), initial_capital=CAPITAL, start=START, end=END, thresholds=LIMITS
    )
    metrics = out["metrics"]
    assert metrics["trades"] == 0
    assert metrics["net_pnl"] == metrics["fees"] == metrics["gross_pnl"] == "0.00"
    for name in ("win_rate", "profit_factor", "expectancy"):
        assert metrics[name] is None
        assert metrics["unknown"][name] == "no trades in the window"
    assert metrics["exposure"] == "0.0000"
    assert metrics["max_drawdown"] == "0.00"
    assert metrics["sharpe"] is None and metrics["sortino"] is None
    assert metrics["unknown"]["sharpe"] == "the equity did not change from one trading day to the next"


def test_only_winning_trades_leave_the_profit_factor_null() -> None:
    trades = [_trade("50.00"), _trade("35.00")]
    out = m.summarize(_result(trades, CLOSES, EQUITY, POSITION), initial_capital=CAPITAL, start=START, end=END)
    assert out["metrics"]["profit_factor"] is None
    assert out["metrics"]["unknown"] == {"profit_factor": "no losing trade, so there is no loss to divide by"}
    assert out["metrics"]["win_rate"] == "1.0000"


def test_a_trade_at_exactly_zero_is_neither_a_win_nor_a_loss() -> None:
    trades = [_trade("30.00"), _trade("0.00"), _trade("-10.00")]
    out = m.summarize(_result(trades, CLOSES, EQUITY, POSITION), initial_capital=CAPITAL, start=START, end=END)
    assert out["metrics"]["win_rate"] == "0.3333"
    assert out["metrics"]["profit_factor"] == "3.0000"
    assert out["metrics"]["expectancy"] == "6.67"


def test_no_bars_leave_every_equity_figure_null() -> None:
    out = m.summarize(_result([], [], [], []), initial_capital=CAPITAL, start=START, end=END, thresholds=LIMITS)
    for name in ("max_drawdown", "max_drawdown_pct", "exposure", "sharpe", "sortino"):
        assert out["metrics"][name] is None
        assert out["metrics"]["unknown"][name] == "no bars in the window"
    assert out["days"] == 0
    assert out["equity_curve"] == [{"ts": "2024-03-05T13:00:00Z", "equity": "10000.00"}]


def test_one_trading_day_has_no_sharpe() -> None:
    out = m.summarize(
        _result([], CLOSES[:2], [10000.0, 10100.0], [0, 1]), initial_capital=CAPITAL, start=START, end=END
    )
    assert out["days"] == 1
    assert out["metrics"]["sharpe"] is None and out["metrics"]["sortino"] is None
    assert out["metrics"]["unknown"]["sharpe"] == "1 trading day, at least 2 are needed for daily returns to vary"
    assert out["metrics"]["unknown"]["sortino"] == out["metrics"]["unknown"]["sharpe"]


def test_no_losing_day_has_a_sharpe_but_no_sortino() -> None:
    equity = [10000.0, 10100.0, 10150.0, 10300.0, 10300.0, 10400.0]
    out = m.summarize(_result(TRADES, CLOSES, equity, [1] * 6), initial_capital=CAPITAL, start=START, end=END)
    r = [10100 / 10000 - 1, 10300 / 10100 - 1, 10400 / 10300 - 1]
    mean, sd = sum(r) / 3, math.sqrt(sum((x - sum(r) / 3) ** 2 for x in r) / 2)
    assert out["metrics"]["sharpe"] == str(Decimal(repr(mean / sd * math.sqrt(252))).quantize(Decimal("0.0001")))
    assert out["metrics"]["sortino"] is None
    assert out["metrics"]["unknown"] == {"sortino": "no losing trading day, so there is no downside deviation"}
    assert out["metrics"]["max_drawdown"] == "0.00"  # a real zero: the equity never fell


def test_equity_at_or_below_zero_leaves_the_daily_ratios_null() -> None:
    equity = [9000.0, 2000.0, -500.0, -800.0, 100.0, 300.0]
    out = m.summarize(_result(TRADES, CLOSES, equity, [1] * 6), initial_capital=CAPITAL, start=START, end=END)
    reason = "the equity fell to zero or below at a day's close, so daily returns are undefined"
    assert out["metrics"]["unknown"] == {"sharpe": reason, "sortino": reason}
    assert out["metrics"]["max_drawdown"] == "10800.00"  # 10,000 down to -800
    assert out["metrics"]["max_drawdown_pct"] == "108.00"


def test_the_drawdown_percentage_is_the_deepest_fall_against_its_own_peak() -> None:
    # A 500 USD fall from 20,000 (2.5 %) and a 400 USD fall from 10,000 (4 %): the USD figure is the
    # first, the percentage the second.
    closes = CLOSES[:4]
    equity = [9600.0, 20000.0, 19500.0, 19600.0]
    out = m.summarize(_result([], closes, equity, [1] * 4), initial_capital=CAPITAL, start=START, end=END)
    assert out["metrics"]["max_drawdown"] == "500.00"
    assert out["metrics"]["max_drawdown_pct"] == "4.00"


@pytest.mark.parametrize(
    "days",
    [
        (datetime(2024, 3, 8, tzinfo=UTC), 5),  # US spring forward: Sunday 2024-03-10 02:00 CST
        (datetime(2024, 11, 1, tzinfo=UTC), 5),  # fall back: Sunday 2024-11-03 02:00 CDT
        (datetime(2024, 12, 30, tzinfo=UTC), 3),
    ],
)
def test_trade_dates_agree_with_the_market_calendar_every_minute(days: tuple[datetime, int]) -> None:
    first, count = days
    closes = np.arange(int(first.timestamp()), int((first + timedelta(days=count)).timestamp()), 60, dtype=np.int64)
    expected = [trade_date(datetime.fromtimestamp(int(t), UTC)).toordinal() for t in closes]
    assert m.trade_dates(closes).tolist() == expected


def test_the_trade_date_turns_at_17_00_chicago_time() -> None:
    # 2024-07-01 (CDT, UTC-5): 16:59 CT and 17:00 CT are 21:59 and 22:00 UTC.
    closes = np.array([_epoch(2024, 7, 1, 21, 59), _epoch(2024, 7, 1, 22, 0)], dtype=np.int64)
    first, second = m.trade_dates(closes).tolist()
    assert datetime.fromordinal(first).date().isoformat() == "2024-07-01"
    assert datetime.fromordinal(second).date().isoformat() == "2024-07-02"


def test_a_short_series_is_kept_whole() -> None:
    assert m.downsample_indices(np.arange(2000.0)).tolist() == list(range(2000))
    assert len(m.downsample_indices(np.arange(2001.0))) <= 2000


@pytest.mark.parametrize("n", [2001, 2003, 10_007, 1_000_000])
def test_downsampling_keeps_at_most_2000_points_with_every_extreme(n: int) -> None:
    rng = np.random.default_rng(n)
    values = 10000 + np.cumsum(rng.normal(0, 5, n))
    spike, dip = n // 3, (2 * n) // 3
    values[spike] = values.max() + 1000  # one bar far above everything
    values[dip] = values.min() - 1000  # one far below
    kept = m.downsample_indices(values)
    assert len(kept) <= 2000
    assert np.all(np.diff(kept) > 0)
    assert kept[0] == 0 and kept[-1] == n - 1
    assert spike in kept and dip in kept
    # Each bucket's peak and trough survive: cut the interior as the function does and check them.
    edges = np.linspace(1, n - 1, (2000 - 2) // 2 + 1).astype(np.int64)
    kept_set = set(kept.tolist())
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        assert lo + int(np.argmax(values[lo:hi])) in kept_set
        assert lo + int(np.argmin(values[lo:hi])) in kept_set


@pytest.mark.parametrize("n", [2001, 4_099, 100_000])
def test_each_bucket_keeps_its_first_lowest_and_first_highest_point_even_on_flat_stretches(n: int) -> None:
    # Equity that sits still between trades: long runs of equal values, so a bucket's extreme is
    # often held by many points; the curve keeps the first of them (argmin/argmax order).
    rng = np.random.default_rng(n)
    values = 10000 + np.cumsum(np.where(rng.random(n) < 0.05, rng.integers(-5, 6, n), 0)).astype(np.float64)
    edges = np.linspace(1, n - 1, (2000 - 2) // 2 + 1).astype(np.int64)
    expected = {0, n - 1}
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        expected |= {lo + int(np.argmin(values[lo:hi])), lo + int(np.argmax(values[lo:hi]))}
    assert m.downsample_indices(values).tolist() == sorted(expected)


def test_trade_dates_of_closes_out_of_order_are_each_closes_own() -> None:
    closes = np.array([_epoch(2024, 7, 1, 22, 0), _epoch(2024, 7, 1, 21, 59), _epoch(2024, 7, 1, 22, 30)])
    expected = [trade_date(datetime.fromtimestamp(int(t), UTC)).toordinal() for t in closes]
    assert m.trade_dates(closes).tolist() == expected


def test_the_equity_curve_is_iso_utc_with_cent_strings_and_at_most_2000_points() -> None:
    n = 50_000
    start = datetime(2024, 1, 2, tzinfo=UTC)
    closes = int(start.timestamp()) + 60 * np.arange(1, n + 1, dtype=np.int64)
    equity = 10000 + np.sin(np.arange(n) / 500.0) * 300
    curve = m.equity_curve(closes, equity, start=start, initial_capital=CAPITAL)
    assert len(curve) <= 2000
    assert curve[0] == {"ts": "2024-01-02T00:00:00Z", "equity": "10000.00"}
    assert curve[-1]["ts"] == datetime.fromtimestamp(int(closes[-1]), UTC).isoformat().replace("+00:00", "Z")
    values = [Decimal(p["equity"]) for p in curve]
    assert max(values) == Decimal("10300.00") and min(values) == Decimal("9700.00")
    assert all(p["equity"] == str(Decimal(p["equity"]).quantize(Decimal("0.01"))) for p in curve)


# ---- verdicts --------------------------------------------------------------------------------


def _metrics(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "net_pnl": "1500.00",
        "gross_pnl": "1551.00",
        "fees": "51.00",
        "slippage": "37.50",
        "trades": 30,
        "win_rate": "0.5500",
        "profit_factor": "1.5000",
        "expectancy": "50.00",
        "max_drawdown": "800.00",
        "max_drawdown_pct": "7.50",
        "sharpe": "1.2000",
        "sortino": "1.9000",
        "exposure": "0.3000",
        "unknown": {},
    }
    return {**base, **overrides}


def _classify(days: int = 40, **overrides: Any) -> dict[str, Any]:
    limits = {**LIMITS, "min_trades": 30, "min_trading_days": 20}
    return m.classify(_metrics(**overrides), days=days, initial_capital=CAPITAL, thresholds=limits)


def _codes(out: dict[str, Any]) -> list[str]:
    return [r["code"] for r in out["reasons"]]


def test_every_threshold_passing_is_promotable() -> None:
    out = _classify()
    assert out["verdict"] == m.PROMOTABLE and out["reasons"] == []


def test_thresholds_met_exactly_pass() -> None:
    # profit factor = the minimum, drawdown = the limit (2,000 of 10,000 is 20 %), trades and days = the minimum.
    out = _classify(days=20, profit_factor="1.2000", max_drawdown="2000.00", trades=30)
    assert out["verdict"] == m.PROMOTABLE


def test_too_few_trades_alone_is_marginal() -> None:
    out = _classify(trades=12)
    assert out["verdict"] == m.MARGINAL
    assert out["reasons"] == [
        {"code": "TOO_FEW_TRADES", "threshold": "min_trades", "verdict": m.MARGINAL, "message": "12 trades, 30 needed"}
    ]


def test_too_few_days_alone_is_marginal() -> None:
    out = _classify(days=14)
    assert out["verdict"] == m.MARGINAL
    assert [r["message"] for r in out["reasons"]] == ["14 trading days, 20 needed"]


def test_a_profit_factor_below_the_minimum_is_rejected() -> None:
    out = _classify(profit_factor="1.1000")
    assert out["verdict"] == m.REJECTED
    assert [r["message"] for r in out["reasons"]] == ["profit factor 1.1000, at least 1.2 needed"]


def test_a_losing_strategy_is_rejected_whatever_its_sample() -> None:
    out = _classify(trades=5, days=3, profit_factor="0.8000", expectancy="-12.40")
    assert out["verdict"] == m.REJECTED
    assert _codes(out) == ["TOO_FEW_TRADES", "TOO_FEW_TRADING_DAYS", "PROFIT_FACTOR_TOO_LOW", "EXPECTANCY_TOO_LOW"]
    messages = [r["message"] for r in out["reasons"]]
    assert messages[2] == "profit factor 0.8000 (the losing trades outweigh the winning ones), at least 1.2 needed"
    assert messages[3] == (
        "expectancy -12.40 USD per trade (the trades lose money on average), more than 0.00 USD needed"
    )


def test_an_expectancy_of_exactly_zero_is_rejected() -> None:
    out = _classify(expectancy="0.00")
    assert out["verdict"] == m.REJECTED and _codes(out) == ["EXPECTANCY_TOO_LOW"]


def test_an_expectancy_below_a_configured_minimum_is_rejected() -> None:
    limits = {**LIMITS, "min_trades": 30, "min_trading_days": 20, "min_expectancy": "75"}
    out = m.classify(_metrics(), days=40, initial_capital=CAPITAL, thresholds=limits)
    assert out["verdict"] == m.REJECTED
    assert out["reasons"][0]["message"] == "expectancy 50.00 USD per trade, at least 75.00 USD needed"


def test_a_drawdown_past_the_limit_is_rejected() -> None:
    out = _classify(max_drawdown="2500.00")
    assert out["verdict"] == m.REJECTED
    assert out["reasons"] == [
        {
            "code": "DRAWDOWN_TOO_DEEP",
            "threshold": "max_drawdown_pct",
            "verdict": m.REJECTED,
            "message": "maximum drawdown 2,500.00 USD, 25.00% of the 10,000.00 USD capital; at most 20% allowed",
        }
    ]


def test_a_figure_that_cannot_be_computed_fails_its_threshold_as_marginal() -> None:
    unknown = {"profit_factor": "no losing trade, so there is no loss to divide by"}
    out = _classify(profit_factor=None, unknown=unknown)
    assert out["verdict"] == m.MARGINAL
    assert out["reasons"] == [
        {
            "code": "PROFIT_FACTOR_UNKNOWN",
            "threshold": "min_profit_factor",
            "verdict": m.MARGINAL,
            "message": "the profit factor cannot be computed (no losing trade, so there is no loss to divide by); "
            "at least 1.2 needed",
        }
    ]


def test_a_backtest_without_trades_or_bars_is_never_promotable() -> None:
    no_trades = m.summarize(
        _result([], CLOSES, [10000.0] * 6, [0] * 6), initial_capital=CAPITAL, start=START, end=END, thresholds=LIMITS
    )
    assert no_trades["classification"]["verdict"] == m.MARGINAL
    assert _codes(no_trades["classification"]) == ["TOO_FEW_TRADES", "PROFIT_FACTOR_UNKNOWN", "EXPECTANCY_UNKNOWN"]
    no_bars = m.summarize(_result([], [], [], []), initial_capital=CAPITAL, start=START, end=END, thresholds=LIMITS)
    assert no_bars["classification"]["verdict"] == m.MARGINAL
    assert "DRAWDOWN_UNKNOWN" in _codes(no_bars["classification"])
    assert "TOO_FEW_TRADING_DAYS" in _codes(no_bars["classification"])


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ({"min_profit_factor": "0.9"}, "min_profit_factor must be at least 1"),
        ({"min_expectancy": "-1"}, "min_expectancy must be at least 0"),
        ({"max_drawdown_pct": "0"}, "max_drawdown_pct must be above 0"),
        ({"min_trades": -1}, "min_trades must be a whole number"),
        ({"min_trades": "30"}, "min_trades must be a whole number"),
        ({"min_expectancy": "abc"}, "min_expectancy must be a number"),
        ({"max_sharpe": 3}, "unknown ['max_sharpe']"),
    ],
)
def test_thresholds_that_would_promote_a_loss_or_make_no_sense_are_refused(
    override: dict[str, Any], words: str
) -> None:
    with pytest.raises(ValueError, match=words.replace("[", r"\[").replace("]", r"\]")):
        m.thresholds_resolve({**LIMITS, **override})


def test_inconsistent_engine_arrays_are_refused() -> None:
    with pytest.raises(ValueError, match="one value per window bar"):
        m.summarize(_result([], CLOSES, EQUITY[:5], POSITION), initial_capital=CAPITAL, start=START, end=END)
    with pytest.raises(ValueError, match="increase"):
        m.summarize(_result([], CLOSES[::-1], EQUITY, POSITION), initial_capital=CAPITAL, start=START, end=END)
    with pytest.raises(ValueError, match="finite"):
        m.summarize(
            _result([], CLOSES, [*EQUITY[:5], float("nan")], POSITION), initial_capital=CAPITAL, start=START, end=END
        )


# ---- over a real engine run ------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(catalogue.STRATEGIES))
def test_the_figures_of_an_engine_run_agree_with_its_trades_and_equity(key: str) -> None:
    """The engine's own output (generated one-minute bars over several weeks, no database): the figures
    agree with the trades and the equity curve recomputed here the slow way."""
    slots = expected_slots("MES", 60, MONDAY, MONDAY + 86400 * 40)[:30000]
    rng = np.random.default_rng(7)
    close = 20000 + np.cumsum(rng.integers(-4, 5, size=len(slots)))
    open_ = np.concatenate([[20000], close[:-1]])
    bars = SimpleNamespace(
        ts=slots,
        open=open_,
        high=np.maximum(open_, close) + rng.integers(0, 3, size=len(slots)),
        low=np.minimum(open_, close) - rng.integers(0, 3, size=len(slots)),
        close=close,
        tick_size=Decimal("0.25"),
    )
    config = engine.EngineConfig(
        strategy_key=key,
        parameters=catalogue.STRATEGIES[key].defaults(),
        instrument="MES",
        tick_size=Decimal("0.25"),
        point_value=Decimal(5),
        timeframe_seconds=60,
    )
    start = datetime.fromtimestamp(int(slots[200]), UTC)
    end = datetime.fromtimestamp(int(slots[-1]) + 60, UTC)
    result = engine.run(bars, config, start=start)
    assert len(result.trades) >= 5
    out = m.summarize(result, initial_capital=CAPITAL, start=start, end=end)
    metrics = out["metrics"]

    net = sum((t.pnl for t in result.trades), Decimal(0))
    assert Decimal(metrics["net_pnl"]) == net.quantize(Decimal("0.01"))
    assert float(metrics["net_pnl"]) == pytest.approx(result.equity[-1] - 10000, abs=0.01)
    assert metrics["trades"] == len(result.trades)
    assert Decimal(metrics["fees"]) == sum((f.fee for f in result.fills), Decimal(0)).quantize(Decimal("0.01"))
    peak, deepest = 10000.0, 0.0
    for value in result.equity:
        peak = max(peak, float(value))
        deepest = max(deepest, peak - float(value))
    assert float(metrics["max_drawdown"]) == pytest.approx(deepest, abs=0.005)
    held = sum(1 for p in result.position if p != 0)
    assert Decimal(metrics["exposure"]) == (Decimal(held) / result.bars).quantize(Decimal("0.0001"))
    days = {trade_date(datetime.fromtimestamp(int(t), UTC)) for t in result.close_ts}
    assert out["days"] == len(days) >= 20
    curve = out["equity_curve"]
    assert len(curve) <= 2000 < result.bars
    assert curve[-1]["equity"] == f"{result.equity[-1]:.2f}"
    assert max(Decimal(p["equity"]) for p in curve) == Decimal(f"{max(10000.0, result.equity.max()):.2f}")
    assert min(Decimal(p["equity"]) for p in curve) == Decimal(f"{min(10000.0, result.equity.min()):.2f}")
    assert out["classification"]["verdict"] in (m.PROMOTABLE, m.MARGINAL, m.REJECTED)
