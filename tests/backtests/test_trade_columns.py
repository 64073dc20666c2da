"""A kernel run's trades measured and stored from its integer columns (Columns.money, .trade_rows)
give the very figures and rows the trades' Decimals give (the dataclass path: EngineTrade, built
with the Python loop's own expressions), digit for digit in the metrics and value for value in the
stored rows, over generated series, fill models with and without commission and slippage, long and
short trades, stops, reversals and END trades; and without building a dataclass."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from apps.backtests import metrics, services
from apps.trading import engine, engine_kernel
from apps.trading.fills import FillModel
from tests.trading.test_engine_kernel import _config, _parameters, _series

FILL_MODELS = tuple(
    FillModel(slippage, Decimal(commission)) for commission in ("0", "0.62", "1.25") for slippage in (0, 1, 2)
)
KEYS = ("trend_following", "breakout", "mean_reversion")


def _dataclass_path(result: engine.EngineResult) -> engine.EngineResult:
    """The same run without its columns: its figures and rows come from the EngineTrades."""
    return engine.EngineResult(
        fills=result.fills, trades=result.trades, decisions=result.decisions, bars=result.bars,
        close_ts=result.close_ts, equity=result.equity, position=result.position,
    )  # fmt: skip


def _runs(count: int, seed: int, fill_models: tuple[FillModel, ...] = FILL_MODELS) -> Any:
    rng = np.random.default_rng(seed)
    for n in range(count):
        key = KEYS[n % len(KEYS)]
        bars = _series(rng)
        config = _config(key, _parameters(key, rng), fill_models[n % len(fill_models)])
        start = datetime.fromtimestamp(int(bars.ts[int(rng.integers(0, len(bars.ts) // 2))]), UTC)
        yield f"series {n}: {key} {config.parameters} {config.fill_model}", bars, config, start


def _summary(result: engine.EngineResult, start: datetime) -> dict[str, Any]:
    end = datetime.fromtimestamp(int(result.close_ts[-1]) + 1 if len(result.close_ts) else start.timestamp() + 1, UTC)
    return metrics.summarize(result, initial_capital=Decimal(10000), start=start, end=end)


def test_the_columns_make_the_trades_figures_and_rows_exactly() -> None:
    seen = {"LONG": 0, "SHORT": 0, "STOP": 0, "END": 0, "reversal": 0, "winner": 0, "loser": 0, "kernel": 0}
    by_model: dict[FillModel, int] = {}
    for where, bars, config, start in _runs(900, 20260107):
        result = engine.run(bars, config, start=start)
        if result.columns is None:
            continue  # the Python loop ran it: nothing to compare
        seen["kernel"] += 1
        summary = _summary(result, start)
        rows = services._trade_rows(result)
        # Measured and stored without the dataclasses.
        assert result._trades is None and result._fills is None, where
        assert result.columns.money() is not None, where
        reference = _dataclass_path(result)
        assert reference.columns is None
        assert summary == _summary(reference, start), where
        assert rows == services._trade_rows(reference.trades), where
        # Each value of the row is the trade's (same type too: Decimals, aware datetimes, ints, str).
        for row, trade in zip(rows, reference.trades, strict=True):
            fields = ("side", "quantity", "entry_ts", "entry_price", "exit_ts", "exit_price", "exit_reason")
            fields += ("pnl", "fees", "slippage")
            assert [type(v) for v in row] == [type(getattr(trade, f)) for f in fields], where
            assert str(row[3]) == str(trade.entry_price) and str(row[5]) == str(trade.exit_price), where
        by_model[config.fill_model] = by_model.get(config.fill_model, 0) + len(rows)
        for trade in reference.trades:
            seen[trade.side] += 1
            seen[trade.exit_reason] = seen.get(trade.exit_reason, 0) + 1
            seen["winner" if trade.pnl > 0 else "loser"] += trade.pnl != 0
        seen["reversal"] += sum(f.quantity == 2 for f in reference.fills)
    # The series must reach what the figures depend on, or the comparison proves little.
    assert all(v >= 50 for v in seen.values()), seen
    assert len(by_model) == len(FILL_MODELS) and min(by_model.values()) >= 50, by_model


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"fill_model": FillModel(1, Decimal("0.1234567890123456789"))}, id="quantum past 10^-18"),
        pytest.param({"point_value": Decimal("5.000000000000000001")}, id="tick value past 10^-18"),
        pytest.param({"tick_size": Decimal("25E-2")}, id="an exponent form"),
    ],
)
def test_a_quantum_past_int64_uses_the_trades_and_gives_their_figures(change: dict[str, Any]) -> None:
    checked = 0
    for where, bars, config, start in _runs(30, 7):
        config = dataclasses.replace(config, **change)
        result = engine.run(bars, config, start=start)
        if result.columns is None or not len(result.columns.trade_columns):
            continue
        exact = "tick_size" in change  # 0.25 written otherwise: still 10^-2
        assert (result.columns.money() is not None) == exact, where
        summary, rows = _summary(result, start), services._trade_rows(result)
        reference = _dataclass_path(result)
        assert summary == _summary(reference, start), where
        assert rows == services._trade_rows(reference.trades), where
        checked += 1
    assert checked >= 10


def test_figures_too_large_for_int64_use_the_trades(monkeypatch: pytest.MonkeyPatch) -> None:
    checked = 0
    for where, bars, config, start in _runs(30, 11):
        result = engine.run(bars, config, start=start)
        if result.columns is None or not len(result.columns.trade_columns):
            continue
        # A bound this low (10 USD in cents, below any price in ticks) stands for figures past int64.
        monkeypatch.setattr(result.columns, "MAX_MAGNITUDE", 1_000)
        assert result.columns.money() is None, where
        assert result.columns.trade_rows() is None
        reference = _dataclass_path(result)
        assert _summary(result, start) == _summary(reference, start), where
        assert services._trade_rows(result) == services._trade_rows(reference.trades), where
        checked += 1
    assert checked >= 10


@pytest.mark.django_db
def test_the_stored_rows_of_the_columns_are_the_trades_rows() -> None:
    from apps.backtests.models import BacktestTrade
    from tests.backtests.factories import BacktestFactory

    fields = ("seq", "side", "quantity", "entry_ts", "entry_price", "exit_ts", "exit_price", "exit_reason", "pnl")
    fields += ("fees", "slippage")
    stored = 0
    for where, bars, config, start in _runs(12, 3, (FillModel(2, Decimal("0.62")), FillModel(1, Decimal("0.333")))):
        result = engine.run(bars, config, start=start)
        if result.columns is None:
            continue
        columns, trades = BacktestFactory(), BacktestFactory()
        services._trades_copy(columns.pk, result)
        assert result._trades is None, where
        services._trades_copy(trades.pk, result.trades)
        rows = [
            list(BacktestTrade.objects.filter(backtest=b).order_by("seq").values_list(*fields))
            for b in (columns, trades)
        ]
        assert rows[0] == rows[1], where
        stored += len(rows[0])
    assert stored >= 20


def test_the_kernel_warmed_up_is_the_one_a_run_calls() -> None:
    """warm() compiles run_chunk for the very argument types a run passes: a run after it compiles
    nothing more (a worker that warmed a different signature would still compile on its first run)."""
    engine_kernel.warm()
    compiled = list(engine_kernel.run_chunk.signatures)
    for _, bars, config, start in _runs(6, 5):
        engine.run(bars, config, start=start)
    assert engine_kernel.run_chunk.signatures == compiled
