"""Parity (SPEC §1.5, §9): for each catalogue strategy, the pure engine a backtest runs and a SIM
runner ticking over the same stored bars — replayed with `as_of`, on time, or late — make the same decisions
(outcome, the stage that stopped it, reason code, at every bar's close) and the same fills (bar,
side, price, quantity, fee). The window crosses the CME daily close (16:00–17:00 CT), so closed
ticks, stops tried on their entry's fill bar, reversals, exits and risk refusals are all on it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from apps.bots.models import Bot
from apps.market import hours, instruments
from apps.market.arrays import bar_arrays
from apps.runners.models import Runner
from apps.runners.services import tick
from apps.telemetry.models import DecisionTrace
from apps.trading import catalogue, engine
from apps.trading import services as execution
from apps.trading.models import Fill
from tests.backtests.factories import store_walk
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db

WINDOW_START = datetime(2025, 12, 16, 19, 30, tzinfo=UTC)  # 13:30 CT
WINDOW_END = datetime(2025, 12, 16, 23, 45, tzinfo=UTC)  # 17:45 CT: across the daily close
TF = 60

# Short lookbacks and tight stops, so a few hundred bars hold entries, reversals, exits and stops.
PARAMETERS: dict[str, dict[str, Any]] = {
    "trend_following": {"fast_period": 3, "slow_period": 8, "atr_period": 5, "stop_atr_multiple": 1.0},
    "breakout": {"lookback_bars": 6, "breakout_buffer_ticks": 0, "atr_period": 5, "stop_atr_multiple": 0.8},
    "mean_reversion": {
        "lookback_bars": 10,
        "entry_zscore": 1.2,
        "exit_zscore": 0.3,
        "atr_period": 5,
        "stop_atr_multiple": 0.8,
    },
}
# Tight enough that some orders are refused (daily orders): risk must refuse the same ones on both sides.
RISK_LIMITS = {"max_position_contracts": 1, "max_daily_loss": 400.0, "max_orders_per_day": 40}


# How the SIM runner ticks each bar: replayed with as_of, on time (2 s after the close), or late
# (90 s after it: the next bar has closed, so its order fills at once; later than the risk
# policy's max_reference_age, 120 s, risk refuses to trade on the old close, as it should).
TIMINGS = {"as_of": None, "on_time": timedelta(seconds=2), "late": timedelta(seconds=90)}


def _sim_ticks(
    bot: Bot, timing: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    runner = Runner.objects.create(bot=bot, status=Runner.Status.RUNNING, mode=Runner.Mode.SIM, generation=1)
    slots = hours.bar_slots_between("MES", TF, int(WINDOW_START.timestamp()), int(WINDOW_END.timestamp()))
    delay = TIMINGS[timing]
    clock: dict[str, datetime] = {}
    if delay is not None:
        monkeypatch.setattr(timezone, "now", lambda: clock["now"])
    for s in slots:  # every window bar's close, in order
        bar_ts = datetime.fromtimestamp(s + TF, UTC)
        if delay is None:
            tick.tick_run(runner_id=runner.pk, bar_ts=bar_ts, replay=True)
        else:
            clock["now"] = bar_ts + delay
            tick.tick_run(runner_id=runner.pk, bar_ts=bar_ts)
    monkeypatch.undo()
    decisions = []
    for t in DecisionTrace.objects.filter(runner_id=runner.pk).order_by("bar_ts"):
        if t.outcome == "TRADE":
            decisions.append((t.bar_ts, "TRADE", "", t.decision["reasons"][0]["code"]))
        else:
            decisions.append((t.bar_ts, "NO_TRADE", t.stopped_at, t.reason_code))
    fills = [
        (f.filled_at, f.side, f.price, f.quantity, f.fee)
        for f in Fill.objects.filter(bot_id=bot.pk, filled_at__lt=WINDOW_END).order_by("filled_at", "id")
    ]
    return decisions, fills


def _backtest(bot: Bot) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], engine.EngineResult]:
    spec = instruments.get("MES")
    needed = catalogue_required(bot)
    warm = hours.bar_slots_before("MES", TF, int(WINDOW_START.timestamp()), needed - 1)
    arrays = bar_arrays(instrument="MES", timeframe="1m", start=datetime.fromtimestamp(warm[0], UTC), end=WINDOW_END)
    config = engine.EngineConfig(
        strategy_key=bot.strategy_key,
        parameters=bot.parameters,
        instrument="MES",
        tick_size=spec.tick_size,
        point_value=spec.point_value,
        timeframe_seconds=TF,
        fill_model=execution.sim_fill_model(),
        risk_limits=bot.risk_limits,
        risk_policy=execution.policy(),
        account_limit_contracts=settings.TRADING_SIM_ACCOUNT_MAX_CONTRACTS,
    )
    result = engine.run(arrays, config, start=WINDOW_START, record_decisions=True)
    assert result.decision_log is not None
    decisions = [(d.bar_ts, d.outcome, d.stage, d.reason_code) for d in result.decision_log]
    fills = [(f.ts, f.side, f.price, f.quantity, f.fee) for f in result.fills]
    return decisions, fills, result


def catalogue_required(bot: Bot) -> int:
    from apps.trading import strategies

    return strategies.required_bars(bot.strategy_key, bot.parameters)


@pytest.mark.parametrize("timing", sorted(TIMINGS))
@pytest.mark.parametrize("key", sorted(catalogue.STRATEGIES))
def test_a_backtest_and_a_sim_runner_make_the_same_decisions_and_fills(
    key: str, timing: str, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    assert set(PARAMETERS) == set(catalogue.STRATEGIES), "every catalogue strategy is held to parity"
    store_walk(seed=7, start=WINDOW_START - timedelta(hours=2), end=WINDOW_END + timedelta(minutes=5))
    bot = BotFactory(
        stage=Bot.Stage.PAPER, timeframe="1m", strategy_key=key, parameters=PARAMETERS[key], risk_limits=RISK_LIMITS
    )
    settings.MARKET_DATA_RECENT_HOURS = 24 * 365 * 20  # the generated bars are final, however "recent"
    sim_decisions, sim_fills = _sim_ticks(bot, timing, monkeypatch)
    bt_decisions, bt_fills, result = _backtest(bot)

    assert bt_decisions == sim_decisions
    assert bt_fills == sim_fills
    # The window really exercises the rules: trades both ways, a stop, closed ticks at the daily halt.
    outcomes = {(d[1], d[2]) for d in sim_decisions}
    assert ("TRADE", "") in outcomes and ("NO_TRADE", "market_hours") in outcomes
    assert {"BUY", "SELL"} <= {f[1] for f in sim_fills}
    assert any(t.exit_reason == "STOP" for t in result.trades), [t.exit_reason for t in result.trades]
    # And the engine's accounting agrees with the SIM position's.
    held = execution.position_state(bot_id=bot.pk, instrument="MES")
    assert int(result.position[-1]) == held.quantity
