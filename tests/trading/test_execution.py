"""Execution against real PostgreSQL: risk before the row, the row before the venue, one order per
intent, SIM fills from the real next bar, LIVE outcomes (accepted, refused, unknown), the kill latch
read at send time, repeated breaches halting the bot, and the account cap under concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest
from django.db import connection

from apps.integrations.orders import OrderOutcomeUnknown, OrderRejected, OrderRequest, PlacedOrder
from apps.market.bars import MarketBar
from apps.telemetry.models import AuditEvent
from apps.trading import services
from apps.trading.models import AccountRisk, Fill, Order, Position, TradingState
from tests.trading.plans import BAR, LIMITS, order_plan


def _plan(**changes: Any) -> services.OrderPlan:
    return order_plan(**{**{"trace_id": "t-exec"}, **changes})


def _alive() -> bool:
    return False


class FakeBroker:
    provider = "tradovate"

    def __init__(self, outcome: str = "accept") -> None:
        self.outcome = outcome
        self.placed: list[OrderRequest] = []
        self.cancelled: list[str] = []

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        self.placed.append(request)
        if self.outcome == "reject":
            raise OrderRejected("Insufficient margin", provider=self.provider, broker_reason="margin")
        if self.outcome == "unknown":
            raise OrderOutcomeUnknown("read timed out after sending", provider=self.provider)
        return PlacedOrder(broker_order_id=f"B{len(self.placed)}")

    def cancel_order(self, *, account: str, broker_order_id: str) -> None:
        self.cancelled.append(broker_order_id)


def _next_bar(open_: str = "5001.00") -> MarketBar:
    o = D(open_)
    return MarketBar(BAR, o, o + 2, o - 1, o + 1, 100)


@pytest.mark.django_db
def test_a_sim_order_is_persisted_working_and_the_same_intent_never_places_twice() -> None:
    first = services.order_submit(_plan(), killed=_alive)
    assert first.created and first.order.status == Order.Status.WORKING
    assert first.order.client_order_id == services.client_order_id_for(bot_id=1, bar_ts=BAR, leg="entry")
    again = services.order_submit(_plan(now=BAR + timedelta(seconds=9)), killed=_alive)
    assert not again.created and again.order.pk == first.order.pk
    assert Order.objects.count() == 1


@pytest.mark.django_db
def test_sim_orders_fill_on_the_real_next_bar_and_move_the_position() -> None:
    services.order_submit(_plan(quantity=2), killed=_alive)
    early = MarketBar(BAR - timedelta(minutes=1), D("4990"), D("4991"), D("4989"), D("4990"), 5)
    assert services.sim_settle(bot_id=1, instrument="MES", bars=[early], timeframe_seconds=60).filled == []
    report = services.sim_settle(bot_id=1, instrument="MES", bars=[early, _next_bar()], timeframe_seconds=60)
    (order,) = report.filled
    assert (order.status, order.filled_quantity, order.avg_fill_price) == ("FILLED", 2, D("5001.25"))
    fill = Fill.objects.get()
    assert (fill.price, fill.fee, fill.slippage, fill.filled_at) == (D("5001.25"), D("1.70"), D("2.50"), BAR)
    position = Position.objects.get(bot_id=1, instrument="MES")
    assert (position.quantity, position.avg_price, position.fees) == (2, D("5001.25"), D("1.70"))
    # Settling again applies nothing twice.
    services.sim_settle(bot_id=1, instrument="MES", bars=[_next_bar()], timeframe_seconds=60)
    assert Fill.objects.count() == 1


@pytest.mark.django_db
def test_a_risk_rejection_is_a_row_never_sent_and_audited() -> None:
    broker = FakeBroker()
    sub = services.order_submit(_plan(mode="LIVE", venue="tradovate", quantity=5), killed=_alive, venue=broker)
    assert sub.order.status == Order.Status.REJECTED_RISK and sub.order.reason_code == "RISK_MAX_ORDER_SIZE"
    assert broker.placed == []
    assert AuditEvent.objects.get(action="order.rejected_risk").after["reason_code"] == "RISK_MAX_ORDER_SIZE"
    assert {c["name"] for c in sub.checks} >= {"kill_latch", "max_position", "price_collar"}


@pytest.mark.django_db
def test_the_position_limit_counts_working_orders() -> None:  # RELIABILITY R4
    assert services.order_submit(_plan(quantity=2), killed=_alive).order.status == "WORKING"
    second = services.order_submit(_plan(leg="add", quantity=1), killed=_alive)
    assert second.order.reason_code == "RISK_MAX_POSITION"


@pytest.mark.django_db
def test_no_reference_price_no_order() -> None:  # RELIABILITY R3
    sub = services.order_submit(_plan(reference_price=None, reference_price_at=None), killed=_alive)
    assert sub.order.reason_code == "RISK_NO_REFERENCE_PRICE"


@pytest.mark.django_db
def test_the_kill_latch_blocks_at_risk_and_again_at_send() -> None:
    AccountRisk.objects.create(venue="tradovate", account="", max_contracts=10)
    broker = FakeBroker()
    killed = services.order_submit(_plan(mode="LIVE", venue="tradovate"), killed=lambda: True, venue=broker)
    assert killed.order.reason_code == "RISK_KILLED" and broker.placed == []
    # Killed between the risk check and the send: nothing leaves.
    reads = iter([False, True])
    late = services.order_submit(
        _plan(mode="LIVE", venue="tradovate", leg="late"), killed=lambda: next(reads), venue=broker
    )
    assert late.order.status == Order.Status.CANCELLED and broker.placed == []


@pytest.mark.django_db
def test_live_outcomes_accepted_refused_and_unknown() -> None:
    AccountRisk.objects.create(venue="tradovate", account="", max_contracts=10)
    accepted = services.order_submit(_plan(mode="LIVE", venue="tradovate"), killed=_alive, venue=FakeBroker())
    assert (accepted.order.status, accepted.order.venue_order_id) == ("WORKING", "B1")
    refused = services.order_submit(
        _plan(mode="LIVE", venue="tradovate", bot_id=2), killed=_alive, venue=FakeBroker("reject")
    )
    assert (refused.order.status, refused.order.reason_code) == ("REJECTED", "ORDER_REJECTED")
    broker = FakeBroker("unknown")
    unknown = services.order_submit(_plan(mode="LIVE", venue="tradovate", bot_id=3), killed=_alive, venue=broker)
    assert unknown.order.status == Order.Status.UNKNOWN
    # Never resent under a new id: the same intent finds the UNKNOWN row.
    services.order_submit(_plan(mode="LIVE", venue="tradovate", bot_id=3), killed=_alive, venue=broker)
    assert len(broker.placed) == 1


@pytest.mark.django_db
def test_a_broker_account_without_a_cap_fails_closed() -> None:
    broker = FakeBroker()
    sub = services.order_submit(_plan(mode="LIVE", venue="tradovate", account="A1"), killed=_alive, venue=broker)
    assert sub.order.reason_code == "RISK_LIMIT_MISSING" and broker.placed == []


@pytest.mark.django_db
def test_repeated_breaches_halt_the_bot_and_halted_denies_new_orders() -> None:  # RELIABILITY R6
    for leg in ("a", "b", "c"):
        sub = services.order_submit(_plan(leg=leg, quantity=9), killed=_alive)
    assert sub.halted
    state = TradingState.objects.get(bot_id=1)
    assert (state.state, state.reason_code) == ("HALTED", "RISK_REPEATED_BREACHES")
    assert AuditEvent.objects.filter(action="trading.state_changed").count() == 1
    assert services.order_submit(_plan(leg="d"), killed=_alive).order.reason_code == "RISK_HALTED"


@pytest.mark.django_db
def test_daily_pnl_is_unknown_with_an_open_position_and_no_mark() -> None:
    services.order_submit(_plan(), killed=_alive)
    services.sim_settle(bot_id=1, instrument="MES", bars=[_next_bar()], timeframe_seconds=60)
    assert services.daily_pnl(bot_id=1, instrument="MES", since=BAR, mark=None, point_value=D(5)) is None
    pnl = services.daily_pnl(bot_id=1, instrument="MES", since=BAR, mark=D("5003.25"), point_value=D(5))
    assert pnl == D("10.00") - D("0.85")


@pytest.mark.django_db
def test_kill_cancels_sim_orders_and_leaves_unidentified_live_ones_to_reconcile() -> None:
    services.order_submit(_plan(), killed=_alive)
    AccountRisk.objects.create(venue="tradovate", account="", max_contracts=10)
    later = BAR + timedelta(seconds=40)  # outside the duplicate window of the SIM order
    live = _plan(mode="LIVE", venue="tradovate", leg="x", now=later)
    placed = services.order_submit(live, killed=_alive, venue=FakeBroker()).order
    assert placed.status == "WORKING", placed.detail
    Order.objects.create(
        client_order_id="TRO-1-unknown", bot_id=1, generation=1, mode="LIVE", venue="tradovate", instrument="MES",
        side="BUY", quantity=1, status="UNKNOWN", bar_ts=BAR, trace_id="t", placed_at=BAR,
    )  # fmt: skip
    broker = FakeBroker()
    counts = services.orders_cancel_for_kill(bot_id=1, reason="runaway", venue=broker)
    assert counts == {"cancelled": 1, "cancel_requested": 1, "left_for_reconcile": 1}
    assert broker.cancelled == ["B1"]


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_submits_across_bots_never_pass_the_account_cap() -> None:  # RELIABILITY R5
    AccountRisk.objects.create(venue="sim", account="", max_contracts=10)
    barrier = threading.Barrier(50)
    errors: list[BaseException] = []

    def submit(bot_id: int) -> None:
        try:
            barrier.wait()
            services.order_submit(_plan(bot_id=bot_id, quantity=1), killed=_alive)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(bot,)) for bot in range(100, 150)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Order.objects.filter(status="WORKING").count() == 10
    assert set(Order.objects.exclude(status="WORKING").values_list("reason_code", flat=True)) == {
        "RISK_ACCOUNT_AGGREGATE"
    }


def test_each_venue_names_the_front_contract_its_own_way() -> None:
    from apps.trading.symbols import venue_symbol

    at = datetime(2026, 11, 25, 16, 0, tzinfo=UTC)  # December 2026 is the front contract
    assert venue_symbol("MES", "sim", at) == "MES"
    assert venue_symbol("MES", "tradovate", at) == "MESZ6"
    assert venue_symbol("MES", "ironbeam", at) == "XCME:MES.Z26"
    assert venue_symbol("ES", "tradovate", datetime(2026, 12, 15, 16, 0, tzinfo=UTC)) == "ESH7"  # rolled
    with pytest.raises(ValueError):
        venue_symbol("MCL", "tradovate", at)


@pytest.mark.django_db
def test_a_halted_bot_returns_to_active_only_by_a_person_with_a_reason(token_client: Any) -> None:
    from tests.bots.factories import BotFactory

    bot = BotFactory()
    TradingState.objects.create(bot_id=bot.pk, state="HALTED", reason_code="RISK_REPEATED_BREACHES")
    url = f"/api/bots/{bot.pk}/trading-state"
    assert token_client("viewer").post(url, {"state": "ACTIVE", "reason": "ok"}, format="json").status_code == 403
    assert token_client("operator").post(url, {"state": "ACTIVE"}, format="json").status_code == 400
    response = token_client("operator").post(url, {"state": "ACTIVE", "reason": "limits reviewed"}, format="json")
    assert response.status_code == 200 and response.json()["changed"] is True
    state = TradingState.objects.get(bot_id=bot.pk)
    assert (state.state, state.reason) == ("ACTIVE", "limits reviewed")
    change = AuditEvent.objects.get(action="trading.state_changed")
    assert change.before == {"state": "HALTED"} and change.actor_label.startswith("operator")


@pytest.mark.django_db
def test_the_ledger_is_read_only_in_the_admin_and_an_account_cap_is_audited(client: Any) -> None:
    from tests.factories import UserFactory

    admin_client = client
    admin_client.force_login(UserFactory(is_staff=True, is_superuser=True))
    services.order_submit(_plan(), killed=_alive)
    order = Order.objects.get()
    assert admin_client.get(f"/admin/trading/order/{order.pk}/change/").status_code == 200
    assert admin_client.post(f"/admin/trading/order/{order.pk}/change/", {"status": "FILLED"}).status_code == 403
    response = admin_client.post(
        "/admin/trading/accountrisk/add/", {"venue": "tradovate", "account": "A1", "max_contracts": 6}
    )
    assert response.status_code == 302
    assert AuditEvent.objects.get(action="trading.account_cap_set").after["max_contracts"] == 6


@pytest.mark.django_db
def test_a_filled_entry_is_protected_by_its_stop_which_fills_when_the_market_trades_through() -> None:
    entry = services.order_submit(_plan(protective_stop=D("4990.00")), killed=_alive).order
    assert services.protection_sync(_plan(), killed=_alive, venue=None)["stop"] is None  # not filled yet: nothing
    services.sim_settle(bot_id=1, instrument="MES", bars=[_next_bar()], timeframe_seconds=60)
    synced = services.protection_sync(_plan(now=BAR + timedelta(minutes=1)), killed=_alive, venue=None)
    stop = Order.objects.get(client_order_id=synced["stop"])
    assert (stop.order_type, stop.side, stop.quantity, stop.stop_price, stop.status) == (
        "STOP",
        "SELL",
        1,
        D("4990.00"),
        "WORKING",
    )
    # Synced again: the same stop, not a second one.
    assert services.protection_sync(_plan(now=BAR + timedelta(minutes=2)), killed=_alive, venue=None)["stop"] == (
        stop.client_order_id
    )
    crash = MarketBar(BAR + timedelta(minutes=1), D("4995"), D("4996"), D("4985"), D("4986"), 50)
    services.sim_settle(bot_id=1, instrument="MES", bars=[crash], timeframe_seconds=60)
    stop.refresh_from_db()
    assert stop.status == "FILLED" and stop.avg_fill_price == D("4989.75")  # the stop, one tick of slippage
    assert Position.objects.get(bot_id=1).quantity == 0
    entry.refresh_from_db()
    assert Position.objects.get(bot_id=1).realized_pnl == (D("4989.75") - entry.avg_fill_price) * 5
    assert services.protection_sync(_plan(now=BAR + timedelta(minutes=3)), killed=_alive, venue=None)["stop"] is None


def _protected_long(stop: str = "4990.00") -> Order:
    """A filled long of 1 protected by its working stop; answers the stop."""
    services.order_submit(_plan(protective_stop=D(stop)), killed=_alive)
    services.sim_settle(bot_id=1, instrument="MES", bars=[_next_bar()], timeframe_seconds=60)
    synced = services.protection_sync(_plan(now=BAR + timedelta(minutes=1)), killed=_alive, venue=None)
    return Order.objects.get(client_order_id=synced["stop"])


def _reversal(**changes: Any) -> services.OrderPlan:
    later = BAR + timedelta(minutes=1)
    replaces = tuple(o.client_order_id for o in services.working_stops(bot_id=1, instrument="MES"))
    fields = {"bar_ts": later, "side": "SELL", "quantity": 2, "now": later + timedelta(seconds=1)}
    fields |= {"reference_price_at": later, "protective_stop": D("5010.00"), "replaces": replaces}
    return _plan(**(fields | changes))


@pytest.mark.django_db
def test_an_accepted_reversal_replaces_the_stop_which_risk_counts_as_cancelled() -> None:
    stop = _protected_long()
    # With max_position_contracts 1 the working stop (a sell of 1) would block a reversal of 2 if it
    # counted: it is replaced, so risk counts it as cancelled.
    reverse = services.order_submit(_reversal(risk_limits={**LIMITS, "max_position_contracts": 1}), killed=_alive)
    assert reverse.order.status == "WORKING", reverse.order.detail
    assert reverse.replaced == [stop.client_order_id] and reverse.not_replaced == []
    stop.refresh_from_db()
    assert stop.status == "CANCELLED" and reverse.order.client_order_id in stop.detail


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("refusal", "code"),
    [
        ({"risk_limits": {**LIMITS, "max_orders_per_day": 2}}, "RISK_ORDER_RATE"),
        ({"reference_price_at": BAR - timedelta(minutes=10)}, "RISK_NO_REFERENCE_PRICE"),
        ({"halted": True}, "RISK_HALTED"),
    ],
)
def test_a_reversal_refused_by_risk_leaves_the_stop_working(refusal: dict[str, Any], code: str) -> None:
    stop = _protected_long()
    if refusal.pop("halted", False):
        TradingState.objects.create(bot_id=1, state="HALTED", reason_code="OPERATOR")
    refused = services.order_submit(_reversal(**refusal), killed=_alive)
    assert (refused.order.status, refused.order.reason_code) == ("REJECTED_RISK", code)
    assert refused.replaced == []
    stop.refresh_from_db()
    assert stop.status == "WORKING"
    # The next sync finds the position protected by the same stop: nothing cancelled, nothing placed.
    again = services.protection_sync(_plan(now=BAR + timedelta(minutes=2)), killed=_alive, venue=None)
    assert (again["stop"], again["cancelled"], again.get("placed")) == (stop.client_order_id, [], None)
    assert Order.objects.filter(order_type="STOP").count() == 1


@pytest.mark.django_db
def test_a_live_reversal_the_broker_refuses_or_leaves_unknown_keeps_the_stop_at_the_broker() -> None:
    AccountRisk.objects.create(venue="tradovate", account="", max_contracts=10)
    live = {"mode": "LIVE", "venue": "tradovate"}
    services.order_submit(_plan(protective_stop=D("4990.00"), **live), killed=_alive, venue=FakeBroker())
    entry = Order.objects.get()
    services.fill_apply(
        entry, venue_fill_id="F1", quantity=1, price=D("5000"), fee=D("0.85"), slippage=D(0),
        filled_at=BAR, point_value=D(5),
    )  # fmt: skip
    broker = FakeBroker()
    synced = services.protection_sync(_plan(now=BAR + timedelta(minutes=1), **live), killed=_alive, venue=broker)
    stop = Order.objects.get(client_order_id=synced["stop"])
    assert stop.status == "WORKING" and stop.venue_order_id == "B1"
    for n, outcome in enumerate(("reject", "unknown")):
        at = BAR + timedelta(minutes=1 + n)  # a minute apart: not duplicates of each other
        refused = services.order_submit(
            _reversal(leg=f"entry-{outcome}", bar_ts=at, reference_price_at=at, now=at + timedelta(seconds=1), **live),
            killed=_alive,
            venue=FakeBroker(outcome),
        )
        assert refused.order.status in ("REJECTED", "UNKNOWN"), (
            outcome,
            refused.order.reason_code,
            refused.order.detail,
        )
        assert refused.replaced == []
    stop.refresh_from_db()
    assert stop.status == "WORKING" and broker.cancelled == []
    # Reconcile finds the UNKNOWN one never reached the broker; then a reversal is accepted.
    Order.objects.filter(status="UNKNOWN").update(status="REJECTED", reason_code="NOT_AT_BROKER")
    accepting = FakeBroker()
    at = BAR + timedelta(minutes=3)
    accepted = services.order_submit(
        _reversal(leg="entry-ok", bar_ts=at, reference_price_at=at, now=at + timedelta(seconds=1), **live),
        killed=_alive,
        venue=accepting,
    )
    assert accepted.order.status == "WORKING" and accepted.replaced == [stop.client_order_id]
    assert accepting.cancelled == ["B1"]  # cancelled at the broker once the reversal was accepted


@pytest.mark.django_db
def test_a_live_stop_without_a_broker_id_cannot_be_replaced_and_says_so() -> None:
    Order.objects.create(
        client_order_id="TRO-stop", bot_id=1, generation=1, mode="LIVE", venue="tradovate", instrument="MES",
        side="SELL", quantity=1, order_type="STOP", stop_price=D("4990"), bar_ts=BAR, trace_id="t", placed_at=BAR,
        status=Order.Status.UNKNOWN,
    )  # fmt: skip
    assert services.protection_replaceable(bot_id=1, instrument="MES", venue=FakeBroker()) == (
        ["TRO-stop"],
        ["TRO-stop"],
    )


@pytest.mark.django_db
def test_a_cancelled_stop_is_placed_again_under_a_fresh_id_from_the_tick_that_places_it() -> None:
    stop = _protected_long()
    assert stop.bar_ts == BAR  # the first stop works from its entry's decision, like a bracket
    services.order_cancel(stop, venue=None, reason="cancelled by hand")
    later = BAR + timedelta(minutes=5)
    tick = {"bar_ts": later, "reference_price_at": later}
    synced = services.protection_sync(_plan(now=later + timedelta(seconds=2), **tick), killed=_alive, venue=None)
    assert synced["stop"], synced
    again = Order.objects.get(client_order_id=synced["stop"])
    assert synced["placed"] is True and again.pk != stop.pk and again.status == "WORKING"
    assert (again.side, again.quantity, again.stop_price) == ("SELL", 1, D("4990.00"))
    # It did not work during the bars before it was placed: a crash there does not fill it.
    assert again.bar_ts == later
    crash = MarketBar(BAR + timedelta(minutes=2), D("4995"), D("4996"), D("4985"), D("4986"), 50)
    assert services.sim_settle(bot_id=1, instrument="MES", bars=[crash], timeframe_seconds=60).filled == []
    # Synced again on the same tick: the same row, nothing new.
    same = services.protection_sync(_plan(now=later + timedelta(seconds=3), **tick), killed=_alive, venue=None)
    assert same["stop"] == again.client_order_id and Order.objects.filter(order_type="STOP").count() == 2


@pytest.mark.django_db
def test_a_protective_stop_is_placed_when_the_days_orders_are_spent() -> None:
    limits = {**LIMITS, "max_orders_per_day": 1}
    services.order_submit(_plan(protective_stop=D("4990.00"), risk_limits=limits), killed=_alive)
    services.sim_settle(bot_id=1, instrument="MES", bars=[_next_bar()], timeframe_seconds=60)
    synced = services.protection_sync(
        _plan(risk_limits=limits, now=BAR + timedelta(minutes=1)), killed=_alive, venue=None
    )
    stop = Order.objects.get(client_order_id=synced["stop"])
    assert stop.status == "WORKING" and "unprotected" not in synced


@pytest.mark.django_db
def test_orders_left_working_through_a_gap_fill_on_the_first_bar_that_reached_them_in_time_order() -> None:
    stop = _protected_long()
    # Three hours of bars later (a runner that was down): the stop is crossed on one bar in the middle.
    bars = [
        MarketBar(BAR + timedelta(minutes=m), D("4995"), D("4996"), D("4994"), D("4995"), 10) for m in range(1, 180)
    ]
    bars[99] = MarketBar(bars[99].ts, D("4988"), D("4989"), D("4980"), D("4981"), 90)  # gaps through the stop
    bars[120] = MarketBar(bars[120].ts, D("4980"), D("4981"), D("4970"), D("4971"), 90)
    report = services.sim_settle(bot_id=1, instrument="MES", bars=bars, timeframe_seconds=60)
    assert report.filled == [stop]
    fill = Fill.objects.get(order=stop)
    # It opened beyond the stop: filled at that bar's open, one tick of slippage, at that bar's time.
    assert (fill.filled_at, fill.price) == (bars[99].ts, D("4987.75"))
    assert Position.objects.get(bot_id=1).quantity == 0
