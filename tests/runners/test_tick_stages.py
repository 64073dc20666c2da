"""The tick's named stages (apps/runners/services/tick_stages.py): the paths through tick_run no other
test walks (a runner in the wrong mode, an order whose fate at the venue is unknown), and the stages
marked pure really run without the database, as a backtest will run them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from apps.bots.models import Bot
from apps.market.bars import MarketBar
from apps.market.instruments import get as instrument
from apps.runners.models import Runner
from apps.runners.services import tick, tick_stages
from apps.telemetry.models import IntegrationUsageEvent
from apps.trading import catalogue, strategies
from apps.trading.models import Order
from tests.bots.factories import BotFactory

BAR = datetime(2025, 12, 16, 16, 0, tzinfo=UTC)  # Tuesday 10:00 CT: CME open


@pytest.mark.django_db
def test_a_runner_in_the_wrong_mode_for_its_bot_is_stopped_at_the_guard_before_any_data(provider_stub: Any) -> None:
    provider_stub("databento")
    bot = BotFactory(stage=Bot.Stage.PAPER, timeframe="1m")  # PAPER trades in SIM only
    runner = Runner.objects.create(bot=bot, status=Runner.Status.RUNNING, mode=Runner.Mode.LIVE, generation=1)
    trace = tick.tick_run(runner_id=runner.pk, bar_ts=BAR, generation=1)
    assert trace is not None
    assert (trace.outcome, trace.stopped_at, trace.reason_code) == ("NO_TRADE", "guard", "RUNNER_MODE_MISMATCH")
    assert trace.message == "runner mode LIVE does not match the bot's stage PAPER"
    assert [(s["stage"], s["outcome"]) for s in trace.stages] == [("guard", "stopped")]
    assert not IntegrationUsageEvent.objects.filter(bot_id=bot.pk).exists()  # no bars asked for
    assert not Order.objects.exists() and trace.fingerprint == ""


@pytest.mark.django_db
def test_a_live_order_the_broker_never_answered_is_traced_unknown_with_why_and_never_resent(
    provider_stub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.utils import timezone

    from apps.integrations.tradovate import client as tradovate
    from apps.trading.models import AccountRisk

    tradovate.clear_token_cache()
    provider_stub("databento")
    broker = provider_stub("tradovate")
    bar = datetime(2025, 12, 9, 16, 0, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: bar + timedelta(seconds=4))
    bot = BotFactory(stage=Bot.Stage.LIVE, venue="tradovate", broker_account="DEMO123457", timeframe="1m")
    AccountRisk.objects.create(venue="tradovate", account="DEMO123457", max_contracts=4)
    runner = Runner.objects.create(bot=bot, status=Runner.Status.RUNNING, mode=Runner.Mode.LIVE, generation=2)
    broker.mode = "timeout_after_accept"
    trace = tick.tick_run(runner_id=runner.pk, bar_ts=bar, generation=2)
    assert trace is not None and trace.outcome == "TRADE", (trace.stopped_at, trace.reason_code, trace.message)
    order = Order.objects.get(bot_id=bot.pk, client_order_id=trace.order["client_order_id"])
    assert order.status == Order.Status.UNKNOWN and trace.order["status"] == "UNKNOWN"
    assert trace.message == order.detail and order.detail  # the trace says what happened at the venue
    assert [s["stage"] for s in trace.stages][-1] == "execution" and trace.stages[-1]["status"] == "UNKNOWN"
    # The entry went with its protective stop as one OSO: both are unknown until reconcile settles them.
    assert Order.objects.get(bot_id=bot.pk, bracket_entry=order).status == Order.Status.UNKNOWN
    assert len(broker.placed_oso) == 1 and broker.placed == []
    broker.mode = "ok"
    assert tick.tick_run(runner_id=runner.pk, bar_ts=bar, generation=2).pk == trace.pk
    assert len(broker.placed_oso) == 1 and broker.placed == []  # never sent again
    tradovate.clear_token_cache()


def _bars(closes: list[str]) -> list[MarketBar]:
    out = []
    for i, close in enumerate(closes):
        c = Decimal(close)
        out.append(
            MarketBar(
                ts=BAR - timedelta(minutes=len(closes) - 1 - i),
                open=c,
                high=c + 1,
                low=c - 1,
                close=c,
                volume=100,
            )
        )
    return out


def test_the_stages_marked_pure_run_without_a_database() -> None:
    """No django_db mark: any query here fails the test (pytest-django blocks the database)."""
    spec = instrument("MES")
    assert spec is not None
    tick_stages.market_hours_stage(spec, BAR)
    with pytest.raises(tick_stages.TickStopped) as closed:
        tick_stages.market_hours_stage(spec, datetime(2025, 12, 20, 16, 0, tzinfo=UTC))  # a Saturday
    assert (closed.value.stage, closed.value.reason_code) == ("market_hours", "MARKET_CLOSED")
    parameters = catalogue.STRATEGIES["trend_following"].defaults()
    needed = strategies.required_bars("trend_following", parameters)
    rising = _bars([str(5000 + i) for i in range(needed)])
    made = tick_stages.strategy_decide("trend_following", parameters, rising, 0, spec.tick_size)
    assert tick_stages.strategy_stop(made) is None and made.side == "BUY"
    flat = tick_stages.strategy_decide("trend_following", parameters, _bars(["5000"] * needed), 0, spec.tick_size)
    stop = tick_stages.strategy_stop(flat)
    assert flat.side is None and stop is not None and stop.stage == "strategy"
    assert stop.reason_code == (flat.reasons[0].code if flat.reasons else strategies.NO_SIGNAL)
    with pytest.raises(tick_stages.TickStopped) as unknown:
        tick_stages.strategy_decide("no_such_strategy", parameters, rising, 0, spec.tick_size)
    assert (unknown.value.stage, unknown.value.reason_code) == ("strategy", "UNKNOWN_STRATEGY")
