"""Protective stops through the tick, against the Databento stub's bars and the brokers' stubs:
a reversal that risk refuses leaves the position's stop working, tick after tick (SIM and LIVE);
the stop is never refused by the day's order count; a stop crossed while the runner was away
fills on the bar that crossed it, however far back that bar is; a LIVE Tradovate entry sends its stop
with it as one OSO, and no tick places a second one."""

from __future__ import annotations

import importlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from apps.bots.models import Bot
from apps.market import instruments
from apps.market import services as market
from apps.runners.models import Runner
from apps.runners.services import tick
from apps.runners.services.runners import bot_reconcile
from apps.trading import services as execution
from apps.trading import strategies
from apps.trading.models import AccountRisk, Fill, Order, Position, TradingState
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db

BAR = datetime(2025, 12, 16, 16, 0, tzinfo=UTC)  # Tuesday 10:00 CT: CME open
MINUTE = timedelta(minutes=1)


def _alive() -> bool:
    return False


def _signal(bot: Bot, bar_ts: datetime) -> str:
    """The side the bot's strategy wants at the close `bar_ts` from flat (BUY or SELL)."""
    needed = strategies.required_bars(bot.strategy_key, bot.parameters)
    bars = market.bars(bot.instrument, bot.timeframe, end=bar_ts, count=needed, provider=bot.data_provider)
    made = strategies.decide(bot.strategy_key, bars, bot.parameters, 0, tick_size=Decimal("0.25"))
    assert made.side in ("BUY", "SELL"), made.reasons
    return made.side


def _plan(bot: Bot, *, bar_ts: datetime, side: str, stop: Decimal, mode: str = "SIM") -> execution.OrderPlan:
    return execution.OrderPlan(
        bot_id=bot.pk,
        generation=1,
        mode=mode,
        venue=bot.venue if mode == "LIVE" else "sim",
        account=bot.broker_account,
        instrument=bot.instrument,
        contract="MES",
        bar_ts=bar_ts,
        leg="entry",
        side=side,
        quantity=1,
        risk_limits={"max_position_contracts": 1, "max_daily_loss": 250.0, "max_orders_per_day": 50},
        reference_price=Decimal("5000"),
        reference_price_at=bar_ts,
        trading_day_start=instruments.trade_date_start(bar_ts),
        now=bar_ts + timedelta(seconds=1),
        trace_id="t-stops",
        protective_stop=stop,
    )


def _sim_position(bot: Bot, *, side: str, at: datetime, stop_distance: str = "100") -> Order:
    """A SIM position of 1 on `side`, entered at the close `at` and filled on the real next bar;
    its stop `stop_distance` points away. Answers the entry."""
    close = market.bars(bot.instrument, bot.timeframe, end=at, count=1, provider=bot.data_provider)[-1].close
    distance = Decimal(stop_distance)
    stop = close - distance if side == "BUY" else close + distance
    entry = execution.order_submit(
        replace(_plan(bot, bar_ts=at, side=side, stop=stop), reference_price=close), killed=_alive
    ).order
    nxt = market.bars(bot.instrument, bot.timeframe, end=at + MINUTE, count=1, provider=bot.data_provider)
    execution.sim_settle(bot_id=bot.pk, instrument=bot.instrument, bars=nxt, timeframe_seconds=60)
    entry.refresh_from_db()
    assert entry.status == "FILLED"
    return entry


@pytest.fixture
def paper(provider_stub: Any) -> Runner:
    provider_stub("databento")
    bot = BotFactory(stage=Bot.Stage.PAPER, timeframe="1m")
    return Runner.objects.create(bot=bot, status=Runner.Status.RUNNING, mode=Runner.Mode.SIM, generation=1)


def test_a_reversal_refused_by_risk_leaves_the_sim_stop_working_tick_after_tick(paper: Runner) -> None:
    bot = paper.bot
    ticks = [BAR, BAR + MINUTE, BAR + 2 * MINUTE]
    wanted = {_signal(bot, t) for t in ticks}
    assert len(wanted) == 1, "the fixture's bars must want one side for three bars"
    held_side = "SELL" if wanted == {"BUY"} else "BUY"
    _sim_position(bot, side=held_side, at=BAR - 5 * MINUTE)
    # One order a day: the entry spent it. The stop is still placed (it only reduces risk); the
    # reversal is refused.
    Bot.objects.filter(pk=bot.pk).update(
        risk_limits={"max_position_contracts": 1, "max_daily_loss": 250.0, "max_orders_per_day": 1}
    )
    stop_ids = set()
    for at in ticks:
        trace = tick.tick_run(runner_id=paper.pk, bar_ts=at, replay=True)
        assert trace is not None
        assert (trace.outcome, trace.stopped_at, trace.reason_code) == ("NO_TRADE", "risk", "RISK_ORDER_RATE")
        assert "the position keeps its stop" in trace.message
        (stop,) = Order.objects.filter(bot_id=bot.pk, order_type="STOP")
        assert stop.status == "WORKING" and stop.side != held_side and stop.quantity == 1
        data = next(s for s in trace.stages if s["stage"] == "market_data")
        assert data["protection"]["stop"] == stop.client_order_id and "unprotected" not in data["protection"]
        stop_ids.add(stop.client_order_id)
    assert len(stop_ids) == 1  # the same stop throughout, never cancelled, never placed again
    assert Position.objects.get(bot_id=bot.pk).quantity == (1 if held_side == "BUY" else -1)
    # Three refusals in a row halted the bot (R6); halted, it keeps its stop all the same.
    assert TradingState.objects.get(bot_id=bot.pk).state == "HALTED"

    # A person releases it and raises the limit: the reversal is accepted, replaces the stop, fills
    # on the next bar, and the new position gets its own stop on the other side.
    Bot.objects.filter(pk=bot.pk).update(
        risk_limits={"max_position_contracts": 1, "max_daily_loss": 250.0, "max_orders_per_day": 50}
    )
    execution.trading_state_set(
        bot_id=bot.pk, state="ACTIVE", reason_code="OPERATOR", reason="limit reviewed", actor_label="operator"
    )
    trace = tick.tick_run(runner_id=paper.pk, bar_ts=BAR + 3 * MINUTE, replay=True)
    assert trace is not None and trace.outcome == "TRADE", (trace.stopped_at, trace.reason_code, trace.message)
    old = Order.objects.get(client_order_id=stop_ids.pop())
    assert old.status == "CANCELLED" and trace.order["client_order_id"] in old.detail
    new = Order.objects.get(bot_id=bot.pk, order_type="STOP", status="WORKING")
    assert new.side == held_side and Position.objects.get(bot_id=bot.pk).quantity == (-1 if held_side == "BUY" else 1)


def test_a_position_whose_stop_was_cancelled_is_protected_again_on_the_next_tick(paper: Runner) -> None:
    bot = paper.bot
    side = _signal(bot, BAR)
    _sim_position(bot, side=side, at=BAR - 5 * MINUTE)
    tick.tick_run(runner_id=paper.pk, bar_ts=BAR, replay=True)  # places the stop; the signal holds
    first = Order.objects.get(bot_id=bot.pk, order_type="STOP")
    execution.order_cancel(first, venue=None, reason="cancelled at the venue by hand")
    trace = tick.tick_run(runner_id=paper.pk, bar_ts=BAR + MINUTE, replay=True)
    assert trace is not None
    again = Order.objects.get(bot_id=bot.pk, order_type="STOP", status="WORKING")
    assert again.pk != first.pk and again.client_order_id != first.client_order_id
    assert (again.side, again.quantity, again.stop_price) == (first.side, first.quantity, first.stop_price)
    data = next(s for s in trace.stages if s["stage"] == "market_data")
    assert data["stops_placed"] == [again.client_order_id] and data["protection"]["stop"] == again.client_order_id


def test_a_stop_crossed_while_the_runner_was_away_fills_on_the_bar_that_crossed_it(paper: Runner) -> None:
    bot = paper.bot
    away = BAR - timedelta(hours=3)  # the entry's decision; the runner then stopped for three hours
    needed = strategies.required_bars(bot.strategy_key, bot.parameters)
    missed = market.bars(bot.instrument, "1m", end=BAR, count=180, provider=bot.data_provider)
    assert missed[0].ts == away and len(missed) > needed
    entry = _sim_position(bot, side="BUY", at=away, stop_distance="0")
    # The stop at the lowest low the market made in the first part of the outage: before the
    # window of bars the tick reads for its decision.
    before_window = missed[1 : len(missed) - needed]
    stop_price = min(b.low for b in before_window)
    Order.objects.filter(pk=entry.pk).update(protective_stop=stop_price)
    synced = execution.protection_sync(
        replace(_plan(bot, bar_ts=away + MINUTE, side="BUY", stop=stop_price), reference_price=entry.avg_fill_price),
        killed=_alive,
        venue=None,
    )
    stop = Order.objects.get(client_order_id=synced["stop"])
    crossed = next(b for b in missed if b.low <= stop_price and b.ts >= stop.bar_ts)
    assert crossed.ts < missed[-needed].ts, "the crossing bar must lie before the tick's window"
    assert stop.status == "WORKING" and stop.bar_ts == away

    trace = tick.tick_run(runner_id=paper.pk, bar_ts=BAR, replay=True)
    assert trace is not None
    stop.refresh_from_db()
    fill = Fill.objects.get(order=stop)
    expected = min(crossed.open, stop_price) - Decimal("0.25")  # the fill model: the worse of open and stop, 1 tick
    assert (stop.status, fill.filled_at, fill.price) == ("FILLED", crossed.ts, max(expected, crossed.low))
    data = next(s for s in trace.stages if s["stage"] == "market_data")
    assert stop.client_order_id in data["filled"] and data["settled_bars"] > needed
    assert trace.inputs["position"] == 0  # the decision saw the position the stop closed


@pytest.mark.parametrize(
    ("venue", "account", "contract"), [("tradovate", "DEMO123457", "MESZ5"), ("ironbeam", "51395670", "XCME:MES.Z25")]
)
def test_a_live_reversal_refused_by_risk_leaves_the_stop_working_at_the_broker(
    provider_stub: Any, monkeypatch: pytest.MonkeyPatch, venue: str, account: str, contract: str
) -> None:
    broker_module = importlib.import_module(f"apps.integrations.{venue}.client")
    broker_module.clear_token_cache()
    provider_stub("databento")
    broker = provider_stub(venue)
    bar = datetime(2025, 12, 9, 16, 0, tzinfo=UTC)  # a Tuesday before the December roll: the Z5 contract
    bot = BotFactory(stage=Bot.Stage.LIVE, venue=venue, broker_account=account, timeframe="1m")
    Bot.objects.filter(pk=bot.pk).update(
        risk_limits={"max_position_contracts": 1, "max_daily_loss": 250.0, "max_orders_per_day": 1}
    )
    AccountRisk.objects.create(venue=venue, account=account, max_contracts=4)
    runner = Runner.objects.create(bot=bot, status=Runner.Status.RUNNING, mode=Runner.Mode.LIVE, generation=2)
    ticks = [bar, bar + MINUTE]
    wanted = {_signal(bot, t) for t in ticks}
    assert len(wanted) == 1
    clock = {"now": bar + timedelta(seconds=4)}
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])  # the ticks run live, at their bars
    held_side = "SELL" if wanted == {"BUY"} else "BUY"
    # The position as reconcile left it: an entry filled at the broker earlier today.
    before = bar - 10 * MINUTE
    entry = Order.objects.create(
        client_order_id="TRO-live-entry", bot_id=bot.pk, generation=2, mode="LIVE", venue=venue, account=account,
        instrument="MES", contract=contract, side=held_side, quantity=1, status="WORKING", venue_order_id="E1",
        protective_stop=Decimal("4000") if held_side == "BUY" else Decimal("7000"), bar_ts=before,
        trace_id="t", placed_at=before,
    )  # fmt: skip
    execution.fill_apply(
        entry, venue_fill_id="F1", quantity=1, price=Decimal("5000"), fee=Decimal("0.85"), slippage=Decimal(0),
        filled_at=before, point_value=Decimal(5),
    )  # fmt: skip
    placed_before = None
    for at in ticks:
        clock["now"] = at + timedelta(seconds=4)
        trace = tick.tick_run(runner_id=runner.pk, bar_ts=at, generation=2)
        assert trace is not None
        assert (trace.stopped_at, trace.reason_code) == ("risk", "RISK_ORDER_RATE"), trace.message
        (stop,) = Order.objects.filter(bot_id=bot.pk, order_type="STOP")
        assert stop.status == "WORKING" and stop.venue_order_id and stop.side != held_side
        assert len(broker.working()) == 1  # the stop, working at the broker
        if placed_before is None:
            placed_before = len(broker.placed)
            assert placed_before == 1  # the stop; the refused reversal never left
        assert len(broker.placed) == placed_before  # tick after tick: nothing placed again, nothing cancelled

    # The limit raised: the reversal goes to the broker, and only once it is accepted is the stop
    # cancelled there. Until reconcile brings its fill, the position is in flux: no stop is placed
    # for the old one.
    Bot.objects.filter(pk=bot.pk).update(
        risk_limits={"max_position_contracts": 1, "max_daily_loss": 250.0, "max_orders_per_day": 50}
    )
    clock["now"] = bar + 2 * MINUTE + timedelta(seconds=4)
    assert _signal_now(bot, bar + 2 * MINUTE) == wanted.pop(), "the fixture's bars must want one side for 3 bars"
    trace = tick.tick_run(runner_id=runner.pk, bar_ts=bar + 2 * MINUTE, generation=2)
    assert trace is not None and trace.outcome == "TRADE", (trace.stopped_at, trace.reason_code, trace.message)
    assert len(broker.placed) == 2 and broker.working() == []
    stop.refresh_from_db()
    reversal = trace.order["client_order_id"]
    assert stop.status == "CANCELLED" and reversal in stop.detail
    clock["now"] = bar + 3 * MINUTE + timedelta(seconds=4)
    trace = tick.tick_run(runner_id=runner.pk, bar_ts=bar + 3 * MINUTE, generation=2)
    assert trace is not None
    data = next(s for s in trace.stages if s["stage"] == "market_data")
    assert data["protection"]["waiting_for"] == [reversal] and data["protection"]["stop"] is None
    assert len(broker.placed) == 2
    broker_module.clear_token_cache()


def _signal_now(bot: Bot, bar_ts: datetime) -> str:
    needed = strategies.required_bars(bot.strategy_key, bot.parameters)
    bars = market.bars(
        bot.instrument, bot.timeframe, end=bar_ts, count=needed, provider=bot.data_provider, now=timezone.now()
    )
    return strategies.decide(bot.strategy_key, bars, bot.parameters, 0, tick_size=Decimal("0.25")).side or ""


def test_a_live_tradovate_entry_sends_its_stop_as_one_oso_and_no_tick_places_a_second_stop(
    provider_stub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stop goes with the entry (placeoso, bracket1 Stop at the decision's stop price); the ticks
    before reconcile sees the fill find it held, and the ticks after find it working: never another."""
    tradovate = importlib.import_module("apps.integrations.tradovate.client")
    tradovate.clear_token_cache()
    provider_stub("databento")
    broker = provider_stub("tradovate")
    bar = datetime(2025, 12, 9, 16, 0, tzinfo=UTC)  # a Tuesday before the December roll: the Z5 contract
    account = "DEMO123457"  # the stub's flat account
    bot = BotFactory(stage=Bot.Stage.LIVE, venue="tradovate", broker_account=account, timeframe="1m")
    AccountRisk.objects.create(venue="tradovate", account=account, max_contracts=4)
    runner = Runner.objects.create(bot=bot, status=Runner.Status.RUNNING, mode=Runner.Mode.LIVE, generation=2)
    ticks = [bar + i * MINUTE for i in range(3)]
    wanted = {_signal(bot, t) for t in ticks}
    assert len(wanted) == 1, "the fixture's bars must want one side for three bars"
    needed = strategies.required_bars(bot.strategy_key, bot.parameters)
    window = market.bars(bot.instrument, bot.timeframe, end=bar, count=needed, provider=bot.data_provider)
    made = strategies.decide(bot.strategy_key, window, bot.parameters, 0, tick_size=Decimal("0.25"))
    assert made.stop_price is not None
    clock = {"now": bar + timedelta(seconds=4)}
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])  # the ticks run live, at their bars

    trace = tick.tick_run(runner_id=runner.pk, bar_ts=bar, generation=2)
    assert trace is not None and trace.outcome == "TRADE", (trace.stopped_at, trace.reason_code, trace.message)
    (oso,) = broker.calls("/order/placeoso")
    body = oso.json()
    assert body["action"] == ("Buy" if made.side == "BUY" else "Sell") and body["orderType"] == "Market"
    assert (body["bracket1"]["orderType"], body["bracket1"]["stopPrice"]) == ("Stop", float(made.stop_price))
    assert body["bracket1"]["action"] != body["action"] and broker.placed == []
    entry = Order.objects.get(client_order_id=trace.order["client_order_id"])
    stop = Order.objects.get(bot_id=bot.pk, order_type="STOP")
    assert (entry.status, stop.status, stop.bracket_entry_id) == ("WORKING", "HELD", entry.pk)
    risk = next(s for s in trace.stages if s["stage"] == "risk")
    assert risk["bracket_stop"] == stop.client_order_id

    # The next tick: the ledger is still flat (reconcile has not run); the held stop is the entry's.
    clock["now"] = ticks[1] + timedelta(seconds=4)
    trace = tick.tick_run(runner_id=runner.pk, bar_ts=ticks[1], generation=2)
    assert trace is not None
    data = next(s for s in trace.stages if s["stage"] == "market_data")
    assert data["protection"]["held"] == [stop.client_order_id] and not data.get("stops_placed")

    # Reconcile sees the fill: the stop works at the broker; the protection it runs keeps it.
    report = bot_reconcile(bot=bot, trigger="schedule", actor_label="system:reconcile")
    assert report.status == "FIXED", report.report
    assert report.report["protection"]["stop"] == stop.client_order_id and not report.report["protection"].get("placed")
    stop.refresh_from_db()
    assert stop.status == "WORKING" and Position.objects.get(bot_id=bot.pk).quantity in (1, -1)
    clock["now"] = ticks[2] + timedelta(seconds=4)
    trace = tick.tick_run(runner_id=runner.pk, bar_ts=ticks[2], generation=2)
    assert trace is not None
    data = next(s for s in trace.stages if s["stage"] == "market_data")
    assert data["protection"]["stop"] == stop.client_order_id and not data.get("stops_placed")
    assert broker.placed == [] and len(broker.calls("/order/placeoso")) == 1
    assert Order.objects.filter(bot_id=bot.pk, order_type="STOP").count() == 1
    tradovate.clear_token_cache()
