"""The pure engine (apps/trading/engine.py) on generated bars, no database: skipping the quiet bars
changes nothing, the equity curve and the trades tell the same money, a stop is tried on its entry's
fill bar before the decision at that bar's close, an open position ends as an END trade, and a
cancelled run stops."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from apps.market.arrays import expected_slots
from apps.trading import catalogue, engine, vectorized
from apps.trading.fills import FillModel

MONDAY = int(datetime(2025, 3, 3, tzinfo=UTC).timestamp())


def _bars(n: int, seed: int, *, step: int = 4) -> SimpleNamespace:
    slots = expected_slots("MES", 60, MONDAY, MONDAY + 86400 * 40)[:n]
    rng = np.random.default_rng(seed)
    close = 20000 + np.cumsum(rng.integers(-step, step + 1, size=len(slots)))
    open_ = np.concatenate([[20000], close[:-1]])
    high = np.maximum(open_, close) + rng.integers(0, 3, size=len(slots))
    low = np.minimum(open_, close) - rng.integers(0, 3, size=len(slots))
    return SimpleNamespace(ts=slots, open=open_, high=high, low=low, close=close, tick_size=Decimal("0.25"))


def _config(key: str, params: dict[str, Any] | None = None, **extra: Any) -> engine.EngineConfig:
    return engine.EngineConfig(
        strategy_key=key,
        parameters=catalogue.STRATEGIES[key].defaults() | (params or {}),
        instrument="MES",
        tick_size=Decimal("0.25"),
        point_value=Decimal(5),
        timeframe_seconds=60,
        **extra,
    )


def _start(bars: SimpleNamespace, at: int = 120) -> datetime:
    return datetime.fromtimestamp(int(bars.ts[at]), UTC)


@pytest.mark.parametrize("key", sorted(catalogue.STRATEGIES))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_skipping_quiet_bars_changes_nothing(key: str, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop runs only where something can happen; forced to visit every bar it must agree."""
    bars = _bars(6000, seed)
    limits = {"max_position_contracts": 1, "max_daily_loss": 300.0, "max_orders_per_day": 60}
    config = _config(key, risk_limits=limits, fill_model=FillModel(1, Decimal("0.85")), account_limit_contracts=100)
    fast = engine.run(bars, config, start=_start(bars), record_decisions=True)
    monkeypatch.setattr(vectorized, "actions", lambda sig, position: np.full(len(sig), vectorized.BUY, np.int8))
    slow = engine.run(bars, config, start=_start(bars), record_decisions=True)
    assert fast.fills == slow.fills and fast.trades == slow.trades
    assert fast.decision_log == slow.decision_log and fast.decisions == slow.decisions
    assert len(fast.trades) > 10


@pytest.mark.parametrize("key", sorted(catalogue.STRATEGIES))
def test_the_equity_curve_and_the_trades_tell_the_same_money(key: str) -> None:
    bars = _bars(20000, 5)
    result = engine.run(bars, _config(key), start=_start(bars))
    net = sum((t.pnl for t in result.trades), Decimal(0))
    assert float(net) == pytest.approx(result.equity[-1] - 10000, abs=1e-6)
    assert sum(f.fee for f in result.fills) == sum((t.fees for t in result.trades), Decimal(0))
    assert len(result.equity) == len(result.position) == len(result.close_ts) == result.bars
    decided = sum(sum(v.values()) for v in result.decisions.values())
    assert decided == result.bars  # one decision per window bar, closed ones included


def test_a_stop_is_tried_on_its_entry_fill_bar_before_that_bars_decision() -> None:
    """Entry decided at the close of bar k fills at bar k+1's open; bar k+1 trades through the
    stop: the position is stopped out on k+1 and the decision at k+1's close sees it flat."""
    bars = _bars(3000, 11)
    config = _config("trend_following", {"fast_period": 3, "slow_period": 8, "atr_period": 5, "stop_atr_multiple": 0.5})
    result = engine.run(bars, config, start=_start(bars), record_decisions=True)
    by_ts = {}
    for f in result.fills:
        by_ts.setdefault(f.ts, []).append(f)
    same_bar = [fs for fs in by_ts.values() if [f.order_type for f in fs] == ["MARKET", "STOP"]]
    assert same_bar, "the generated bars must hold an entry stopped out on its own fill bar"
    entry, stop = same_bar[0]
    assert stop.decided_at == entry.decided_at  # the stop works from its entry's decision
    trade = next(t for t in result.trades if t.entry_ts == entry.ts)
    assert trade.exit_reason == "STOP" and trade.exit_ts == entry.ts


def test_an_open_position_at_the_end_is_an_end_trade_at_the_last_close() -> None:
    bars = _bars(400, 3)
    result = engine.run(bars, _config("trend_following"), start=_start(bars))
    assert result.position[-1] != 0
    last = result.trades[-1]
    assert last.exit_reason == "END"
    assert last.exit_ts == datetime.fromtimestamp(int(bars.ts[-1]), UTC)
    assert last.exit_price == Decimal("0.25") * int(bars.close[-1])


def test_no_risk_limits_means_no_risk_checks_and_limits_refuse_as_sim_does() -> None:
    bars = _bars(6000, 4)
    free = engine.run(bars, _config("mean_reversion"), start=_start(bars))
    assert not any(code.startswith("RISK_") for code in free.decisions["NO_TRADE"])
    tight = _config(
        "mean_reversion",
        risk_limits={"max_position_contracts": 1, "max_daily_loss": 50.0, "max_orders_per_day": 4},
        account_limit_contracts=100,
    )
    limited = engine.run(bars, tight, start=_start(bars))
    refused = limited.decisions["NO_TRADE"]
    assert "RISK_ORDER_RATE" in refused and "RISK_LIMIT_MISSING" not in refused, refused
    # Without the SIM account's cap, risk fails closed as it does for a SIM order.
    blind = engine.run(bars, replace(tight, account_limit_contracts=None), start=_start(bars))
    assert not blind.fills and "RISK_LIMIT_MISSING" in blind.decisions["NO_TRADE"]
    assert len(limited.fills) < len(free.fills)


@pytest.mark.parametrize("use_kernel", [True, False])
def test_a_cancelled_run_stops(use_kernel: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    bars = _bars(5000, 9)
    clock = iter(range(0, 10_000))
    monkeypatch.setattr(engine._time, "monotonic", lambda: float(next(clock)))
    seen: list[float] = []
    with pytest.raises(engine.Cancelled):
        engine.run(
            bars,
            _config("breakout"),
            start=_start(bars),
            progress=seen.append,
            cancelled=lambda: len(seen) > 2,
            use_kernel=use_kernel,
        )
    assert len(seen) == 3 and all(0 <= f < 1 for f in seen)


def test_the_market_hours_mask_is_the_tick_stage_rule() -> None:
    from apps.market import hours

    ts = expected_slots("MES", 60, MONDAY, MONDAY + 86400 * 8)
    mask = engine.tradable("MES", ts, 60)
    for k in range(0, len(ts), 37):
        close = datetime.fromtimestamp(int(ts[k]) + 60, UTC)
        from datetime import timedelta

        expected = (
            hours.closed_reason("MES", close - timedelta(seconds=1)) is None
            and hours.closed_reason("MES", close) is None
        )
        assert bool(mask[k]) == expected, close
    assert not mask.all()  # daily closes are in a week
