"""Reconcile against the SIM ledger and against the Tradovate stub: missed fills applied once, an
order that never reached the broker closed as such, an ambiguous send settled without a second
order, and the fail-closed cases (positions unreadable, a position that differs, an external
order) that halt the bot or refuse the start."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from apps.bots.models import Bot
from apps.integrations.orders import OrderRequest
from apps.integrations.services import integration_verify
from apps.integrations.tradovate import client as tradovate
from apps.integrations.tradovate.client import TradovateClient
from apps.runners.models import Runner
from apps.telemetry.models import AuditEvent
from apps.telemetry.services import heartbeat_record
from apps.trading import services
from apps.trading.models import AccountRisk, Fill, Order, Position, ReconcileReport, TradingState
from tests.bots.factories import BotFactory

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
    plan = services.OrderPlan(
        bot_id=bot.pk,
        generation=1,
        mode="LIVE",
        venue="tradovate",
        account=ACCOUNT,
        instrument="MES",
        contract="MESZ5",
        bar_ts=BAR,
        leg="entry",
        side="BUY",
        quantity=1,
        risk_limits=bot.risk_limits,
        reference_price=D("5000.00"),
        reference_price_at=BAR,
        trading_day_start=BAR - timedelta(hours=17),
        now=BAR + timedelta(seconds=2),
        trace_id="t-rec",
    )
    return replace(plan, **changes)


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


def test_an_order_the_broker_never_got_is_closed_not_guessed(token_client: Any, live: Any) -> None:
    bot, stub = live
    Order.objects.create(
        client_order_id="TRO-never-sent", bot_id=bot.pk, generation=1, mode="LIVE", venue="tradovate",
        account=ACCOUNT, instrument="MES", contract="MESZ5", side="BUY", quantity=1, bar_ts=BAR, trace_id="t",
        placed_at=BAR, status=Order.Status.UNKNOWN,
    )  # fmt: skip
    body = _reconcile(token_client("operator"), bot)
    assert body["status"] == "FIXED"
    order = Order.objects.get()
    assert (order.status, order.reason_code) == ("REJECTED", "NOT_AT_BROKER")


def test_positions_that_cannot_be_read_fail_the_reconcile_and_are_never_taken_as_flat(
    token_client: Any, live: Any
) -> None:
    bot, stub = live
    stub.mode = "positions_down"
    body = _reconcile(token_client("operator"), bot)
    assert body["status"] == "FAILED" and body["failure"]
    assert not TradingState.objects.filter(bot_id=bot.pk, state="HALTED").exists()


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
    # A LIVE start reconciles first, and refuses.
    provider_stub("databento")
    assert integration_verify(provider="databento").ok and integration_verify(provider="tradovate").ok
    heartbeat_record(component="beat", instance="beat@t")
    heartbeat_record(component="worker", instance="worker@t")
    start = token_client("admin").post("/api/runners/start", {"bot_id": bot.pk}, format="json")
    assert start.status_code == 409 and start.json()["error_code"] == "RECONCILE_MISMATCH", start.json()
    assert not Runner.objects.filter(bot=bot, status="RUNNING").exists()
