"""The compiled kernel (apps/trading/engine_kernel.py) against the Python loop it replaces in runs
without risk limits: on thousands of small generated bar series — session closes and weekends,
missing bars, bars outside market hours, flat stretches (zero ATR, zero volatility, equal moving
averages), ties, jumps that gap through stops — for each catalogue strategy, several parameter sets
and fill models, both make the same fills, trades, decision counts, notes, equity and positions,
digit for digit. The Python loop is the reference: tests/trading/test_engine_parity.py holds it to
a SIM runner. No database."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from apps.market.arrays import expected_slots
from apps.trading import engine
from apps.trading.fills import FillModel

MONDAY = int(datetime(2025, 3, 3, tzinfo=UTC).timestamp())
SERIES_PER_STRATEGY = 1000

FILL_MODELS = (
    FillModel(0, Decimal(0)),
    FillModel(1, Decimal("0.85")),
    FillModel(2, Decimal("1.25")),
    FillModel(3, Decimal("0.333")),
)


def _parameters(key: str, rng: np.random.Generator) -> dict[str, Any]:
    multiple = float(rng.choice([0.5, 0.75, 1.0, 1.5, 2.0, 3.1]))
    atr = int(rng.integers(2, 7))
    if key == "trend_following":
        fast = int(rng.integers(2, 6))
        slow = fast + int(rng.integers(1, 8))
        return {"fast_period": fast, "slow_period": slow, "atr_period": atr, "stop_atr_multiple": multiple}
    if key == "breakout":
        return {
            "lookback_bars": int(rng.integers(2, 10)),
            "breakout_buffer_ticks": int(rng.integers(0, 3)),
            "atr_period": atr,
            "stop_atr_multiple": multiple,
        }
    entry = float(rng.choice([0.5, 0.8, 1.0, 1.2, 2.0]))
    return {
        "lookback_bars": int(rng.integers(3, 12)),
        "entry_zscore": entry,
        "exit_zscore": float(rng.choice([0.0, 0.2, 0.4])),
        "atr_period": atr,
        "stop_atr_multiple": multiple,
    }


def _series(rng: np.random.Generator) -> SimpleNamespace:
    """A short MES series in ticks: open-market minutes from a random point of a week (daily closes,
    a weekend), or plain minutes (bars outside market hours too), with some bars missing; a walk with
    flat stretches and jumps, the open away from the last close at times."""
    n = int(rng.integers(40, 400))
    offset = int(rng.integers(0, 7 * 86400)) // 60 * 60
    if rng.random() < 0.7:
        ts = expected_slots("MES", 60, MONDAY + offset, MONDAY + offset + 14 * 86400)[: n * 2]
    else:
        ts = MONDAY + offset + 60 * np.arange(n * 2, dtype=np.int64)
    ts = np.sort(rng.choice(ts, size=min(n, len(ts)), replace=False)) if rng.random() < 0.3 else ts[:n]
    n = len(ts)
    step = int(rng.choice([0, 1, 2, 4, 8]))
    moves = rng.integers(-step, step + 1, n)
    moves[rng.random(n) < rng.choice([0.0, 0.3, 0.8])] = 0  # flat stretches
    close = 20_000 + np.cumsum(moves)
    jumps = np.where(rng.random(n) < 0.03, rng.integers(-30, 31, n), 0)
    close = close + np.cumsum(jumps)
    open_ = np.concatenate([[close[0]], close[:-1]]) + jumps
    wick = int(rng.choice([0, 1, 3]))
    high = np.maximum(open_, close) + rng.integers(0, wick + 1, n)
    low = np.minimum(open_, close) - rng.integers(0, wick + 1, n)
    return SimpleNamespace(ts=ts.astype(np.int64), open=open_, high=high, low=low, close=close)


def _config(key: str, parameters: dict[str, Any], fill_model: FillModel, **extra: Any) -> engine.EngineConfig:
    return engine.EngineConfig(
        strategy_key=key,
        parameters=parameters,
        instrument="MES",
        tick_size=Decimal("0.25"),
        point_value=Decimal(5),
        timeframe_seconds=60,
        fill_model=fill_model,
        **extra,
    )


def _digits(items: list[Any]) -> list[tuple[str, ...]]:
    """Each item's fields as text: Decimals with their exponent (1.70 is not 1.7 here)."""
    return [tuple(str(getattr(x, f)) for f in x.__slots__) for x in items]


def _assert_same(kernel: engine.EngineResult, loop: engine.EngineResult, where: str) -> None:
    assert kernel.columns is not None, f"{where}: the kernel did not run"
    assert loop.columns is None, f"{where}: the reference is not the Python loop"
    assert kernel.fills == loop.fills, where
    assert _digits(kernel.fills) == _digits(loop.fills), where
    assert kernel.trades == loop.trades, where
    assert _digits(kernel.trades) == _digits(loop.trades), where
    assert kernel.decisions == loop.decisions, where
    assert kernel.notes == loop.notes, where
    assert kernel.bars == loop.bars, where
    assert np.array_equal(kernel.close_ts, loop.close_ts), where
    assert np.array_equal(kernel.position, loop.position), where
    assert np.array_equal(kernel.equity, loop.equity), where  # the same floats, bit for bit


def _both(bars: Any, config: engine.EngineConfig, start: datetime) -> tuple[engine.EngineResult, engine.EngineResult]:
    return engine.run(bars, config, start=start), engine.run(bars, config, start=start, use_kernel=False)


@pytest.mark.parametrize("key", ["trend_following", "breakout", "mean_reversion"])
def test_the_kernel_makes_the_python_loops_fills_trades_and_figures(key: str) -> None:
    rng = np.random.default_rng(len(key) * 1009)
    seen = {"fills": 0, "stops": 0, "same_bar_stops": 0, "reversals": 0, "end": 0, "closed": 0}
    for n in range(SERIES_PER_STRATEGY):
        bars = _series(rng)
        config = _config(key, _parameters(key, rng), FILL_MODELS[n % len(FILL_MODELS)])
        start = datetime.fromtimestamp(int(bars.ts[int(rng.integers(0, len(bars.ts) // 2))]), UTC)
        kernel, loop = _both(bars, config, start)
        _assert_same(kernel, loop, f"series {n} of {key}: {config.parameters}, {config.fill_model}")
        seen["fills"] += len(loop.fills)
        seen["stops"] += sum(t.exit_reason == "STOP" for t in loop.trades)
        seen["same_bar_stops"] += sum(t.exit_reason == "STOP" and t.entry_ts == t.exit_ts for t in loop.trades)
        seen["reversals"] += sum(f.quantity == 2 for f in loop.fills)
        seen["end"] += sum(t.exit_reason == "END" for t in loop.trades)
        seen["closed"] += loop.decisions["NO_TRADE"].get(engine.MARKET_CLOSED, 0)
    # The series must reach every rule the kernel copies, or the comparison proves little.
    assert all(v >= 50 for k, v in seen.items() if k != "reversals"), seen
    assert seen["reversals"] >= (0 if key == "mean_reversion" else 50), seen


def test_the_kernel_grows_its_buffers_and_stops_in_chunks_with_the_same_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tiny first buffers and chunks: it resumes where it stopped and ends where the loop ends."""
    monkeypatch.setattr(engine, "_kernel_rows", lambda window_bars: 1)
    monkeypatch.setattr(engine, "KERNEL_CHUNK", 97)
    rng = np.random.default_rng(7)
    for key in ("trend_following", "breakout", "mean_reversion"):
        ts = expected_slots("MES", 60, MONDAY, MONDAY + 30 * 86400)[:6000]
        walk = 20_000 + np.cumsum(rng.integers(-4, 5, len(ts)))
        bars = SimpleNamespace(
            ts=ts, open=np.concatenate([[20_000], walk[:-1]]), high=walk + 2, low=walk - 2, close=walk
        )
        bars.high = np.maximum(bars.high, bars.open)
        bars.low = np.minimum(bars.low, bars.open)
        config = _config(key, _parameters(key, rng), FILL_MODELS[1])
        kernel, loop = _both(bars, config, datetime.fromtimestamp(int(ts[100]), UTC))
        _assert_same(kernel, loop, key)
        assert len(loop.fills) > 200


def test_a_bar_whose_open_is_outside_its_range_fails_as_the_python_loop_does() -> None:
    rng = np.random.default_rng(3)
    ts = expected_slots("MES", 60, MONDAY, MONDAY + 3 * 86400)[:600]
    close = 20_000 + np.cumsum(rng.integers(-4, 5, len(ts)))
    open_ = np.concatenate([[20_000], close[:-1]])
    bars = SimpleNamespace(ts=ts, open=open_, high=np.maximum(open_, close), low=np.minimum(open_, close), close=close)
    bars.high = bars.high.copy()
    bars.high[300:] = bars.open[300:] - 1  # an open above the high: bad data
    config = _config(
        "trend_following",
        {"fast_period": 3, "slow_period": 8, "atr_period": 3, "stop_atr_multiple": 1.0},
        FILL_MODELS[0],
    )
    for use_kernel in (True, False):
        with pytest.raises(ValueError, match="bar open outside"):
            engine.run(bars, config, start=datetime.fromtimestamp(int(ts[20]), UTC), use_kernel=use_kernel)


def test_risk_limits_and_the_decision_log_run_the_python_loop() -> None:
    rng = np.random.default_rng(5)
    bars = _series(rng)
    limits = {"max_position_contracts": 1, "max_daily_loss": 300.0, "max_orders_per_day": 60}
    params = _parameters("breakout", rng)
    start = datetime.fromtimestamp(int(bars.ts[0]), UTC)
    limited = engine.run(bars, _config("breakout", params, FILL_MODELS[1], risk_limits=limits), start=start)
    logged = engine.run(bars, _config("breakout", params, FILL_MODELS[1]), start=start, record_decisions=True)
    assert limited.columns is None and logged.columns is None
    assert logged.decision_log is not None


def test_a_run_the_kernel_does_not_cover_is_the_python_loops() -> None:
    """Bars a minute apart read as two-minute bars: a market order works from the decided close, two
    minutes on, so the next decision adds a second order and the position grows past one contract
    (an average entry price): the kernel hands the run to the Python loop, which makes it whole."""
    rng = np.random.default_rng(11)
    ts = MONDAY + 60 * np.arange(3000, dtype=np.int64)
    close = 20_000 + np.cumsum(rng.integers(-4, 5, len(ts)))
    open_ = np.concatenate([[20_000], close[:-1]])
    bars = SimpleNamespace(
        ts=ts, open=open_, high=np.maximum(open_, close) + 1, low=np.minimum(open_, close) - 1, close=close
    )
    params = {"fast_period": 3, "slow_period": 8, "atr_period": 3, "stop_atr_multiple": 3.0}
    config = engine.EngineConfig(
        strategy_key="trend_following",
        parameters=params,
        instrument="MES",
        tick_size=Decimal("0.25"),
        point_value=Decimal(5),
        timeframe_seconds=120,
        fill_model=FILL_MODELS[1],
    )
    start = datetime.fromtimestamp(int(ts[50]), UTC)
    handed, loop = _both(bars, config, start)
    assert handed.columns is None  # the kernel gave the run back
    assert np.abs(loop.position).max() > 1
    assert handed.fills == loop.fills and handed.trades == loop.trades and handed.decisions == loop.decisions
    assert np.array_equal(handed.equity, loop.equity)
