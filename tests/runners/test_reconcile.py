"""Reconcile against the SIM ledger and against the Tradovate stub: missed fills applied once, an
order that never reached the broker closed as such (only past the in-flight window and after two
spaced lookups: a reconcile racing a send leaves it UNKNOWN, J3), an ambiguous send settled without
a second order, and the fail-closed cases (positions unreadable, a position that differs, an
external order) that halt the bot or refuse the start (J10)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from apps.bots.models import Bot
from apps.integrations.ironbeam import client as ironbeam
from apps.integrations.ironbeam.client import IronbeamClient
from apps.integrations.orders import OrderRequest
from apps.integrations.services import integration_verify
from apps.integrations.tradovate import client as tradovate
from apps.integrations.tradovate.client import TradovateClient
from apps.market.instruments import trade_date_start
from apps.runners.models import Runner
from apps.runners.services.runners import bot_reconcile
from apps.telemetry.models import AuditEvent
from apps.telemetry.services import heartbeat_record
from apps.trading import services, stops
from apps.trading.models import AccountRisk, Fill, Order, Position, ReconcileReport, TradingState
from apps.trading.reconcile import reconcile_bot
from apps.trading.symbols import venue_symbol
from tests.bots.factories import BotFactory
from tests.trading.plans import order_plan

pytestmark = pytest.mark.django_db

ACCOUNT = "DEMO123457"  # the stub's flat account
BAR = datetime(2025, 12, 16, 16, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_tokens() -> Any:
    tradovate.clear_token_cache()
    yield
    tradovate.clear_token_cache()


@pytest.fixture
def live(provider_stub: Any) -> tuple[Bot, Any]:
    stub = provider_stub("tradovate")
    bot = BotFactory(stage=Bot.Stage.LIVE, venue=Bot.Venue.TRADOVATE, broker_account=ACCOUNT, timeframe="1m")
    AccountRisk.objects.create(venue="tradovate", account=ACCOUNT, max_contracts=10)
    return bot, stub


def _plan(bot: Bot, **changes: Any) -> services.OrderPlan:
    live = {
        "bot_id": bot.pk,
        "mode": "LIVE",
        "venue": "tradovate",
        "account": ACCOUNT,
        "contract": "MESZ5",
        "risk_limits": bot.risk_limits,
        "now": BAR + timedelta(seconds=2),
        "trace_id": "t-rec",
    }
    return order_plan(**{**live, **changes})


def _reconcile(client: Any, bot: Bot) -> dict[str, Any]:
    response = client.post(f"/api/bots/{bot.pk}/reconcile", format="json")
    assert response.status_code == 200, response.json()
    return response.json()


def test_sim_reconcile_settles_a_lost_status_flip_and_rebuilds_a_position_from_its_fills(token_client: Any) -> None:
    bot = BotFactory(stage=Bot.Stage.PAPER)
    services.order_submit(
        services.OrderPlan(**{**_plan(bot).__dict__, "mode": "SIM", "venue": "sim", "account": ""}),
        killed=lambda: False,
    )
    Order.objects.update(status=Order.Status.PENDING_SUBMIT)  # the worker died before the flip
    Position.objects.create(bot_id=bot.pk, venue="sim", instrument="MES", quantity=3)  # drifted
    body = _reconcile(token_client("operator"), bot)
    assert body["status"] == "FIXED"
    assert Order.objects.get().status == "WORKING"
    assert Position.objects.get(bot_id=bot.pk).quantity == 0  # no fills: the truth is flat
    assert _reconcile(token_client("operator"), bot)["status"] == "MATCHED"
    assert ReconcileReport.objects.count() == 2


def test_an_ambiguous_send_is_settled_from_the_broker_without_a_second_order(token_client: Any, live: Any) -> None:
    bot, stub = live
    stub.mode = "timeout_after_accept"
    sub = services.order_submit(_plan(bot), killed=lambda: False, venue=TradovateClient.for_bot(bot.pk))
    assert sub.order.status == Order.Status.UNKNOWN
    stub.mode = "ok"
    body = _reconcile(token_client("operator"), bot)
    assert body["status"] == "FIXED", body
    order = Order.objects.get()
    assert order.status == "FILLED" and order.avg_fill_price == D("5000.25") and order.venue_order_id
    assert Fill.objects.get(order=order).quantity == 1 and Position.objects.get(bot_id=bot.pk).quantity == 1
    # The tick runs again (a redelivered job): same intent, no second order at the venue.
    services.order_submit(_plan(bot), killed=lambda: False, venue=TradovateClient.for_bot(bot.pk))
    assert len(stub.placed) == 1
    assert _reconcile(token_client("operator"), bot)["status"] == "MATCHED"


def test_a_worker_killed_between_submit_and_status_update_leaves_one_order(token_client: Any, live: Any) -> None:
    bot, stub = live
    coid = services.client_order_id_for(bot_id=bot.pk, bar_ts=BAR, leg="entry")
    # What a SIGKILL after the broker accepted and before the row was updated leaves behind:
    Order.objects.create(
        client_order_id=coid, bot_id=bot.pk, generation=1, mode="LIVE", venue="tradovate", account=ACCOUNT,
        instrument="MES", contract="MESZ5", side="BUY", quantity=1, bar_ts=BAR, trace_id="t", placed_at=BAR,
    )  # fmt: skip
    TradovateClient.for_bot(bot.pk).place_order(
        OrderRequest(coid, ACCOUNT, "MESZ5", "BUY", 1, "MARKET")
    )  # fmt: skip
    tradovate.clear_token_cache()  # a new worker process
    again = services.order_submit(_plan(bot), killed=lambda: False, venue=TradovateClient.for_bot(bot.pk))
    assert not again.created and len(stub.placed) == 1
    assert _reconcile(token_client("operator"), bot)["status"] == "FIXED"
    assert Order.objects.get().status == "FILLED" and len(stub.placed) == 1


def _unknown_order(bot: Bot, coid: str = "TRO-never-sent") -> Order:
    """An order whose send timed out: UNKNOWN, no broker id, sent just now."""
    return Order.objects.create(
        client_order_id=coid, bot_id=bot.pk, generation=1, mode="LIVE", venue="tradovate",
        account=ACCOUNT, instrument="MES", contract="MESZ5", side="BUY", quantity=1, bar_ts=BAR, trace_id="t",
        placed_at=BAR, status=Order.Status.UNKNOWN, submitted_at=datetime.now(UTC),
    )  # fmt: skip


def _ready_to_start(provider_stub: Any) -> None:
    provider_stub("databento")
    assert integration_verify(provider="databento").ok and integration_verify(provider="tradovate").ok
    heartbeat_record(component="beat", instance="beat@t")
    heartbeat_record(component="worker", instance="worker@t")


def test_an_order_the_broker_never_got_is_closed_only_past_the_window_after_two_spaced_lookups(
    token_client: Any, live: Any, settings: Any
) -> None:
    bot, stub = live
    settings.TRADING_INFLIGHT_WINDOW_SECONDS = 1.5
    settings.TRADING_NOT_AT_BROKER_LOOKUP_SPACING_SECONDS = 1.0
    settings.TRADING_NOT_AT_BROKER_LOOKUPS = 2
    _unknown_order(bot)
    operator = token_client("operator")
    first = _reconcile(operator, bot)
    assert first["status"] == "PENDING" and first["pending"][0]["order"] == "TRO-never-sent", first
    assert "does not list it yet" in first["pending"][0]["problem"]
    assert (Order.objects.get().status, Order.objects.get().broker_misses) == ("UNKNOWN", 1)
    again = _reconcile(operator, bot)  # a second look right away is not a second, spaced lookup
    assert again["status"] == "PENDING" and Order.objects.get().broker_misses == 1
    assert not TradingState.objects.filter(bot_id=bot.pk, state="HALTED").exists()
    time.sleep(1.6)  # past the in-flight window and the spacing
    body = _reconcile(operator, bot)
    assert body["status"] == "FIXED", body
    order = Order.objects.get()
    assert (order.status, order.reason_code, order.broker_misses) == ("REJECTED", "NOT_AT_BROKER", 2)
    assert "2 lookups" in order.detail and order.closed_at is not None
    alert = AuditEvent.objects.get(action="alert.raised")
    assert (alert.after["severity"], alert.after["code"]) == ("WARNING", "NOT_AT_BROKER")


def test_one_look_never_closes_an_order_even_an_old_one(token_client: Any, live: Any, settings: Any) -> None:
    bot, stub = live
    settings.TRADING_NOT_AT_BROKER_LOOKUP_SPACING_SECONDS = 0.3
    order = _unknown_order(bot)
    Order.objects.filter(pk=order.pk).update(submitted_at=datetime.now(UTC) - timedelta(minutes=10))
    body = _reconcile(token_client("operator"), bot)
    assert body["status"] == "PENDING" and "missed on 1 of the 2 lookups" in body["pending"][0]["problem"], body
    assert Order.objects.get().status == "UNKNOWN"
    time.sleep(0.35)
    assert _reconcile(token_client("operator"), bot)["status"] == "FIXED"
    assert Order.objects.get().reason_code == "NOT_AT_BROKER"


def test_a_reconcile_racing_a_send_leaves_the_order_unknown_and_a_later_one_takes_the_broker_state(
    token_client: Any, live: Any, settings: Any
) -> None:
    """J3 with a real delay: the broker books the order 2 s after the send's answer failed. The
    reconciles in between must not close it; the one after applies what the broker says."""
    bot, stub = live
    settings.TRADING_NOT_AT_BROKER_LOOKUP_SPACING_SECONDS = 0.1
    stub.mode, stub.accept_after = "late_accept", 2.0
    sub = services.order_submit(_plan(bot), killed=lambda: False, venue=TradovateClient.for_bot(bot.pk))
    assert sub.order.status == Order.Status.UNKNOWN and not stub.orders
    stub.mode = "ok"
    during = _reconcile(token_client("operator"), bot)
    assert during["status"] == "PENDING", during
    assert Order.objects.get().status == "UNKNOWN" and not stub.orders  # still not at the broker
    time.sleep(0.15)
    assert _reconcile(token_client("operator"), bot)["status"] == "PENDING"  # a second look, still in flight
    assert Order.objects.get().status == "UNKNOWN"
    assert not TradingState.objects.filter(bot_id=bot.pk, state="HALTED").exists()
    deadline = time.monotonic() + 5
    while not stub.orders and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(stub.orders) == 1  # the broker accepted (and filled) it after all
    after = _reconcile(token_client("operator"), bot)
    assert after["status"] == "FIXED", after
    order = Order.objects.get()
    assert (order.status, order.avg_fill_price) == ("FILLED", D("5000.25")) and order.venue_order_id
    assert Position.objects.get(bot_id=bot.pk).quantity == 1 and len(stub.placed) == 1
    assert _reconcile(token_client("operator"), bot)["status"] == "MATCHED"


class _LooksTooEarly:
    """The broker client, except that its order lookups ran just before the broker booked the
    order: find_order misses it, the positions read a moment later include its fill."""

    def __init__(self, client: TradovateClient) -> None:
        self._client = client
        self.provider = client.provider

    def find_order(self, *, account: str, client_order_id: str) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def test_a_position_that_an_in_flight_order_explains_is_pending_not_a_mismatch(live: Any, settings: Any) -> None:
    bot, stub = live
    stub.mode, stub.accept_after = "late_accept", 0.0
    services.order_submit(_plan(bot), killed=lambda: False, venue=TradovateClient.for_bot(bot.pk))
    deadline = time.monotonic() + 5
    while not stub.orders and time.monotonic() < deadline:
        time.sleep(0.05)
    stub.mode = "ok"
    report = reconcile_bot(
        bot_id=bot.pk, mode="LIVE", venue_name="tradovate", account=ACCOUNT, instrument="MES",
        venue=_LooksTooEarly(TradovateClient.for_bot(bot.pk)),  # type: ignore[arg-type]
    )  # fmt: skip
    assert report.status == "PENDING", report.report
    assert any(p.get("position") == "MES" and p["broker"] == 1 for p in report.report["pending"])
    assert not TradingState.objects.filter(bot_id=bot.pk, state="HALTED").exists()
    # Without an order in flight the same difference is a mismatch.
    Order.objects.update(status=Order.Status.CANCELLED)
    assert bot_reconcile(bot=bot).status == "MISMATCH"


def test_positions_that_cannot_be_read_fail_the_reconcile_and_are_never_taken_as_flat(
    token_client: Any, live: Any
) -> None:
    bot, stub = live
    stub.mode = "positions_down"
    body = _reconcile(token_client("operator"), bot)
    assert body["status"] == "FAILED" and "INTEGRATION_PROVIDER_ERROR" in body["failure"]
    # Not running: nothing trades, so nothing to halt; its start is refused (below).
    assert not TradingState.objects.filter(bot_id=bot.pk, state="HALTED").exists()


def test_a_running_live_bot_whose_positions_cannot_be_read_is_halted_and_cannot_start_until_a_reconcile_succeeds(
    token_client: Any, live: Any, provider_stub: Any
) -> None:
    bot, stub = live
    _ready_to_start(provider_stub)
    admin = token_client("admin")
    assert admin.post("/api/runners/start", {"bot_id": bot.pk}, format="json").status_code == 200
    assert Runner.objects.get(bot=bot).mode == "LIVE"
    stub.mode = "positions_down"
    report = bot_reconcile(bot=bot, trigger="schedule", actor_label="system:reconcile")  # the 5-minute sweep
    assert report.status == "FAILED"
    state = TradingState.objects.get(bot_id=bot.pk)
    assert (state.state, state.reason_code) == ("HALTED", "RECONCILE_FAILED")
    assert f"reconcile {report.pk} could not read tradovate" in state.reason
    alert = AuditEvent.objects.get(action="alert.raised")
    assert alert.after["severity"] == "CRITICAL" and alert.after["code"] == "RECONCILE_FAILED"
    assert alert.after["reconcile_id"] == report.pk and alert.after["suggested_fix"]
    assert alert.target_id == str(bot.pk)
    # Only a person returns it to ACTIVE, and not before a reconcile succeeds.
    url = f"/api/bots/{bot.pk}/trading-state"
    refused = token_client("operator").post(url, {"state": "ACTIVE", "reason": "looks fine"}, format="json")
    assert refused.status_code == 409 and refused.json()["error_code"] == "RECONCILE_FAILED", refused.json()
    assert TradingState.objects.get(bot_id=bot.pk).state == "HALTED"
    # A (re)start reconciles first and stays refused while the broker cannot be read.
    assert admin.post("/api/runners/stop", {"bot_id": bot.pk}, format="json").status_code == 200
    assert integration_verify(provider="tradovate").ok  # its sign-in and accounts answer: only positions fail
    start = admin.post("/api/runners/start", {"bot_id": bot.pk}, format="json")
    body = start.json()
    assert start.status_code == 409 and body["error_code"] == "RECONCILE_FAILED", body
    assert "refused until a reconcile succeeds" in body["message"] and "Connections" in body["suggested_fix"]
    assert body["trace_id"] and Runner.objects.get(bot=bot).status == "STOPPED"
    assert AuditEvent.objects.filter(action="runner.start_refused").exists()
    # The broker answers again: a reconcile succeeds, the start goes through, and a person re-arms it.
    stub.mode = "ok"
    assert _reconcile(token_client("operator"), bot)["status"] == "MATCHED"
    assert admin.post("/api/runners/start", {"bot_id": bot.pk}, format="json").status_code == 200
    assert TradingState.objects.get(bot_id=bot.pk).state == "HALTED"  # a reconcile never clears a halt
    rearmed = token_client("operator").post(url, {"state": "ACTIVE", "reason": "broker back"}, format="json")
    assert rearmed.status_code == 200 and TradingState.objects.get(bot_id=bot.pk).state == "ACTIVE"


def test_a_position_the_ledger_does_not_have_halts_the_bot_and_refuses_the_start(
    token_client: Any, live: Any, provider_stub: Any
) -> None:
    bot, stub = live
    Order.objects.create(
        client_order_id="TRO-x", bot_id=bot.pk, generation=1, mode="LIVE", venue="tradovate", account=ACCOUNT,
        instrument="MES", contract="MESZ5", side="BUY", quantity=1, bar_ts=BAR, trace_id="t", placed_at=BAR,
        status=Order.Status.CANCELLED,
    )  # fmt: skip
    # Someone traded the account by hand: the broker holds 1 MESZ5 that no bot's ledger has.
    TradovateClient.for_bot().place_order(OrderRequest("manual-1", ACCOUNT, "MESZ5", "BUY", 1, "MARKET"))
    body = _reconcile(token_client("operator"), bot)
    assert body["status"] == "MISMATCH"
    assert any(u.get("position") == "MES" and u["broker"] == 1 for u in body["unsettled"])
    state = TradingState.objects.get(bot_id=bot.pk)
    assert (state.state, state.reason_code) == ("HALTED", "RECONCILE_MISMATCH")
    assert AuditEvent.objects.filter(action="trading.state_changed").exists()
    alert = AuditEvent.objects.get(action="alert.raised")
    assert (alert.after["severity"], alert.after["code"]) == ("CRITICAL", "RECONCILE_MISMATCH")
    # A LIVE start reconciles first, and refuses.
    _ready_to_start(provider_stub)
    start = token_client("admin").post("/api/runners/start", {"bot_id": bot.pk}, format="json")
    assert start.status_code == 409 and start.json()["error_code"] == "RECONCILE_MISMATCH", start.json()
    assert not Runner.objects.filter(bot=bot, status="RUNNING").exists()


def test_an_ironbeam_entry_goes_alone_and_the_reconcile_that_sees_its_fill_places_its_stop_at_once(
    provider_stub: Any,
) -> None:
    """Ironbeam has no bracket TradeOps can use: the entry is sent alone, and its stop is placed by
    the reconcile that applies the fill, not by a tick later."""
    ironbeam.clear_token_cache()
    stub = provider_stub("ironbeam")
    account = "51395670"  # the stub's flat account
    bot = BotFactory(stage=Bot.Stage.LIVE, venue=Bot.Venue.IRONBEAM, broker_account=account, timeframe="1m")
    AccountRisk.objects.create(venue="ironbeam", account=account, max_contracts=10)
    Runner.objects.create(bot=bot, status=Runner.Status.RUNNING, mode=Runner.Mode.LIVE, generation=3)
    now = datetime.now(UTC)
    decided = now.replace(second=0, microsecond=0)
    contract = venue_symbol("MES", "ironbeam", now)
    venue = IronbeamClient.for_bot(bot.pk)
    entry = services.order_submit(
        order_plan(
            bot_id=bot.pk, generation=3, mode="LIVE", venue="ironbeam", account=account, contract=contract,
            risk_limits=bot.risk_limits, bar_ts=decided, reference_price_at=decided, now=now,
            trading_day_start=trade_date_start(now), protective_stop=D("4990.25"),
        ),
        killed=lambda: False,
        venue=venue,
    )  # fmt: skip
    assert entry.order.status == "WORKING" and entry.bracket_stop is None
    (sent,) = stub.placed
    assert "stopLoss" not in sent and "stopLossOffset" not in sent  # alone
    assert not Order.objects.filter(order_type="STOP").exists()

    report = bot_reconcile(bot=bot, trigger="schedule", actor_label="system:reconcile")

    assert report.status == "FIXED", report.report
    assert Position.objects.get(bot_id=bot.pk).quantity == 1
    protection = report.report["protection"]
    stop = Order.objects.get(bot_id=bot.pk, order_type="STOP")
    assert protection["placed"] is True and protection["stop"] == stop.client_order_id
    # The entry's first stop: the id and working-from stops.py gives it, working at the broker.
    assert stop.client_order_id == services.client_order_id_for(
        bot_id=bot.pk, bar_ts=decided, leg=stops.stop_leg(entry_id=entry.order.pk, quantity=1, sequence=0)
    )
    assert (stop.status, stop.side, stop.quantity, stop.stop_price, stop.generation) == (
        "WORKING",
        "SELL",
        1,
        D("4990.25"),
        3,
    )
    working = stub.working()
    assert [(o["side"], o["orderType"], o["stopPrice"]) for o in working] == [("SELL", "3", 4990.25)]
    # Found again by the next reconcile and the next tick's protection: nothing placed twice.
    again = bot_reconcile(bot=bot, trigger="schedule", actor_label="system:reconcile")
    assert again.status == "MATCHED" and "protection" not in again.report
    tick_plan = order_plan(
        bot_id=bot.pk, mode="LIVE", venue="ironbeam", account=account, contract=contract, now=now,
        reference_price_at=decided, trading_day_start=trade_date_start(now), bar_ts=decided + timedelta(minutes=1),
    )  # fmt: skip
    synced = services.protection_sync(tick_plan, killed=lambda: False, venue=venue)
    assert synced["stop"] == stop.client_order_id and not synced.get("placed")
    assert len(stub.placed) == 2
    ironbeam.clear_token_cache()
