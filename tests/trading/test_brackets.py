"""LIVE protective stops sent with their entry as one bracket (Tradovate's OSO), through the Tradovate
stub: the placeoso carries the stop; both rows exist before the send (the stop with the client order
id and working-from of the entry's first stop); protection_sync treats the held stop as the
position's and never places a second one; reconcile turns it WORKING once the entry has filled and
closes the position when it is hit; a refused bracket leaves nothing working, an ambiguous one is
settled by reconcile without a resend, and a stop that risk would refuse keeps the entry unsent."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from apps.integrations.tradovate import client as tradovate
from apps.integrations.tradovate.client import TradovateClient
from apps.trading import services, stops
from apps.trading.models import AccountRisk, Order, Position
from apps.trading.reconcile import reconcile_bot
from tests.stubs.tradovate import TradovateStub
from tests.trading.plans import BAR, order_plan

pytestmark = pytest.mark.django_db

ACCOUNT = "DEMO123457"  # the stub's flat account
STOP = D("4990.25")
OSO, PLACE = "/order/placeoso", "/order/placeorder"


def _alive() -> bool:
    return False


@pytest.fixture(autouse=True)
def fresh_tokens() -> Any:
    tradovate.clear_token_cache()
    yield
    tradovate.clear_token_cache()


@pytest.fixture
def stub(provider_stub: Any) -> TradovateStub:
    AccountRisk.objects.create(venue="tradovate", account=ACCOUNT, max_contracts=10)
    return provider_stub("tradovate")


def _plan(**changes: Any) -> services.OrderPlan:
    live = {"mode": "LIVE", "venue": "tradovate", "account": ACCOUNT, "contract": "MESZ5", "protective_stop": STOP}
    return order_plan(**{**live, **changes})


def _venue() -> TradovateClient:
    return TradovateClient.for_bot(1)


def _protect(seconds: int) -> dict[str, Any]:
    """The next ticks' protection_sync (the tick's plan, `seconds` after the entry's decision)."""
    return services.protection_sync(_plan(now=BAR + timedelta(seconds=seconds)), killed=_alive, venue=_venue())


def _reconcile() -> Any:
    return reconcile_bot(
        bot_id=1, mode="LIVE", venue_name="tradovate", account=ACCOUNT, instrument="MES", venue=_venue()
    )


def test_a_live_entry_goes_out_with_its_stop_as_one_oso_and_the_stop_is_the_positions_until_it_is_hit(
    stub: TradovateStub,
) -> None:
    sub = services.order_submit(_plan(), killed=_alive, venue=_venue())

    entry, stop = sub.order, sub.bracket_stop
    assert stop is not None
    (request,) = stub.calls(OSO)
    body = request.json()
    assert (body["clOrdId"], body["action"], body["orderType"], body["orderQty"]) == (
        entry.client_order_id,
        "Buy",
        "Market",
        1,
    )
    assert body["bracket1"] == {
        "action": "Sell",
        "clOrdId": stop.client_order_id,
        "orderType": "Stop",
        "stopPrice": float(STOP),  # the decision's stop price
        "timeInForce": "Day",
    }
    assert stub.calls(PLACE) == []  # nothing went alone
    # Both rows: the stop exactly as stops.py names the entry's first stop, held by the venue.
    assert (entry.status, stop.status) == ("WORKING", "HELD")
    assert stop.client_order_id == services.client_order_id_for(
        bot_id=1, bar_ts=entry.bar_ts, leg=stops.stop_leg(entry_id=entry.pk, quantity=1, sequence=0)
    )
    assert (stop.bar_ts, stop.bracket_entry_id, stop.side, stop.quantity, stop.stop_price) == (
        BAR,
        entry.pk,
        "SELL",
        1,
        STOP,
    )
    entry_id, stop_id = int(entry.venue_order_id), int(stop.venue_order_id)
    assert stub.orders[entry_id]["action"] == "Buy" and stub.orders[stop_id]["action"] == "Sell"
    # Risk checked the stop too (as a protective stop against the position the entry opens).
    stop_checks = {c["name"]: c for c in sub.checks if c["name"].startswith("protective_stop.")}
    assert (
        stop_checks["protective_stop.order_rate"]["passed"]
        and "protective stop" in (stop_checks["protective_stop.order_rate"]["detail"])
    )

    # The next tick, before reconcile has seen the fill: the held stop is the entry's; nothing placed
    # beside it, nothing cancelled (the ledger is still flat).
    synced = _protect(60)
    assert synced["held"] == [stop.client_order_id] and synced["cancelled"] == [] and "placed" not in synced
    assert Order.objects.count() == 2 and stub.calls(PLACE) == []

    # Reconcile: the entry filled, its stop works at the broker and is matched to its row.
    report = _reconcile()
    assert report.status == "FIXED", report.report
    entry.refresh_from_db()
    stop.refresh_from_db()
    assert (entry.status, stop.status, stop.venue_order_id) == ("FILLED", "WORKING", str(stop_id))
    assert Position.objects.get(bot_id=1).quantity == 1
    synced = _protect(120)
    assert synced["stop"] == stop.client_order_id and not synced.get("placed") and "held" not in synced
    assert stub.calls(PLACE) == [] and len(stub.calls(OSO)) == 1 and Order.objects.count() == 2

    # The market reaches the stop: the broker fills it; reconcile closes the position as for any stop.
    stub.fill(stop_id, price=4990.0)
    report = _reconcile()
    assert report.status == "FIXED", report.report
    stop.refresh_from_db()
    assert (stop.status, stop.avg_fill_price) == ("FILLED", D("4990.0"))
    assert Position.objects.get(bot_id=1).quantity == 0
    assert _protect(180)["stop"] is None and stub.calls(PLACE) == []
    assert _reconcile().status == "MATCHED"


def test_a_refused_oso_closes_both_rows_and_leaves_nothing_working(stub: TradovateStub) -> None:
    stub.mode = "reject"
    sub = services.order_submit(_plan(), killed=_alive, venue=_venue())

    entry, stop = sub.order, sub.bracket_stop
    assert stop is not None
    assert (entry.status, stop.status) == ("REJECTED", "REJECTED")
    assert entry.closed_at is not None and stop.closed_at is not None
    assert "MaxPosLimitReached" in entry.detail and entry.client_order_id in stop.detail
    assert len(stub.calls(OSO)) == 1 and stub.working() == [] and stub.held == {}
    stub.mode = "ok"
    synced = _protect(60)
    assert synced["stop"] is None and "placed" not in synced and stub.calls(PLACE) == []


def test_an_oso_without_an_answer_leaves_both_unknown_and_reconcile_settles_them_without_a_resend(
    stub: TradovateStub,
) -> None:
    _venue().list_orders(account=ACCOUNT)  # signed in before the stall
    stub.mode = "timeout_after_accept"
    sub = services.order_submit(_plan(), killed=_alive, venue=_venue())
    entry, stop = sub.order, sub.bracket_stop
    assert stop is not None and (entry.status, stop.status) == ("UNKNOWN", "UNKNOWN")
    stub.mode = "ok"
    again = services.order_submit(_plan(now=BAR + timedelta(seconds=9)), killed=_alive, venue=_venue())
    assert not again.created and again.bracket_stop == stop and len(stub.calls(OSO)) == 1

    # Until reconcile says otherwise, the unknown stop is the entry's: nothing placed beside it.
    assert _protect(60)["held"] == [stop.client_order_id] and stub.calls(PLACE) == []
    report = _reconcile()
    assert report.status == "FIXED", report.report
    entry.refresh_from_db()
    stop.refresh_from_db()
    assert (entry.status, stop.status) == ("FILLED", "WORKING")
    assert entry.venue_order_id and stop.venue_order_id
    assert len(stub.calls(OSO)) == 1 and stub.calls(PLACE) == []


def test_a_stop_risk_would_refuse_keeps_its_entry_from_being_sent(stub: TradovateStub, settings: Any) -> None:
    # One order per burst window: the entry fits, its stop (the second order) would not.
    settings.TRADING_RISK_POLICY = {"burst_limit": 1}
    sub = services.order_submit(_plan(), killed=_alive, venue=_venue())

    entry = sub.order
    assert (entry.status, entry.reason_code) == ("REJECTED_RISK", "RISK_ORDER_RATE")
    assert entry.detail.startswith("its protective stop would be refused (order_rate)")
    assert sub.bracket_stop is None and Order.objects.count() == 1
    assert next(c for c in sub.checks if c["name"] == "order_rate")["passed"]
    assert not next(c for c in sub.checks if c["name"] == "protective_stop.order_rate")["passed"]
    assert stub.calls(OSO) == [] and stub.calls(PLACE) == []


def test_an_entry_cancelled_before_it_fills_takes_its_held_stop_with_it(stub: TradovateStub) -> None:
    stub.fill_market = False  # the entry rests at the broker
    sub = services.order_submit(_plan(), killed=_alive, venue=_venue())
    entry, stop = sub.order, sub.bracket_stop
    assert stop is not None
    report = _reconcile()
    assert report.status == "MATCHED", report.report
    stop.refresh_from_db()
    assert stop.status == "HELD" and any("HELD" in m and stop.client_order_id in m for m in report.report["matched"])

    assert services.order_cancel(entry, venue=_venue(), reason="the operator cancelled it")
    assert _reconcile().status == "FIXED"
    stop.refresh_from_db()
    assert stop.status == "CANCELLED" and stop.closed_at is not None
    assert stub.working() == [] and Position.objects.filter(bot_id=1).first() is None


def test_an_entry_that_does_not_open_from_flat_goes_alone(stub: TradovateStub) -> None:
    """A reversal's quantity is not the position it leaves: its stop follows the fill instead."""
    held = Order.objects.create(
        client_order_id="TRO-held", bot_id=1, generation=1, mode="LIVE", venue="tradovate", account=ACCOUNT,
        instrument="MES", contract="MESZ5", side="SELL", quantity=1, bar_ts=BAR - timedelta(minutes=5),
        trace_id="t", placed_at=BAR - timedelta(minutes=5),
    )  # fmt: skip
    services.fill_apply(
        held, venue_fill_id="F1", quantity=1, price=D("5000"), fee=D(0), slippage=D(0),
        filled_at=BAR - timedelta(minutes=5), point_value=D(5),
    )  # fmt: skip
    sub = services.order_submit(_plan(quantity=2), killed=_alive, venue=_venue())
    assert sub.order.status == "WORKING" and sub.bracket_stop is None
    assert stub.calls(OSO) == [] and len(stub.calls(PLACE)) == 1
