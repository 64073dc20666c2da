"""The kill switch: latched in Postgres first, stops the runner, needs no Redis, survives restarts,
and only an operator with a reason clears it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.bots.models import Bot
from apps.runners.models import Runner
from apps.telemetry.models import AuditEvent

pytestmark = pytest.mark.django_db


def test_kill_latches_stops_the_runner_and_is_audited(running_bot: Bot, token_client: Any) -> None:
    response = token_client("operator").post(
        f"/api/bots/{running_bot.pk}/kill", {"reason": "runaway losses", "flatten": True}, format="json"
    )
    body = response.json()
    assert response.status_code == 200 and body["latched"] and body["runner_stopped"]
    assert body["flatten"] == "requested: no open position" and body["orders"] == {}
    running_bot.refresh_from_db()
    assert running_bot.killed and running_bot.kill_reason == "runaway losses" and running_bot.killed_at
    runner = Runner.objects.get(bot=running_bot)
    assert runner.status == Runner.Status.STOPPED and runner.generation == 2  # fenced
    switch = AuditEvent.objects.get(action="bot.kill_switch")
    assert switch.reason == "runaway losses" and switch.after["scope"] == "bot" and switch.trace_id == body["trace_id"]


def test_kill_works_with_redis_down(running_bot: Bot, token_client: Any, settings: Any, tmp_path: Any) -> None:
    settings.REDIS_URL = f"unix://{tmp_path}/no-redis.sock"
    settings.CELERY_BROKER_URL = f"redis+socket://{tmp_path}/no-redis.sock"
    response = token_client("operator").post(
        f"/api/bots/{running_bot.pk}/kill", {"reason": "broker down"}, format="json"
    )
    assert response.status_code == 200
    assert Bot.objects.get(pk=running_bot.pk).killed
    assert Runner.objects.get(bot=running_bot).status == Runner.Status.STOPPED


def test_a_killed_bot_stays_killed_and_cannot_start(running_bot: Bot, token_client: Any) -> None:
    operator = token_client("operator")
    operator.post(f"/api/bots/{running_bot.pk}/kill", {"reason": "x"}, format="json")
    # A restart of TradeOps re-reads Postgres: the latch is a row, not process memory.
    assert Bot.objects.get(pk=running_bot.pk).killed
    refused = operator.post("/api/runners/start", {"bot_id": running_bot.pk}, format="json")
    assert refused.status_code == 409 and refused.json()["error_code"] == "BOT_KILLED"
    second = operator.post(f"/api/bots/{running_bot.pk}/kill", {"reason": "again"}, format="json").json()
    assert second["latched"] is False  # already latched; still killed


def test_kill_needs_a_reason_and_an_operator(running_bot: Bot, token_client: Any) -> None:
    assert token_client("operator").post(f"/api/bots/{running_bot.pk}/kill", {}, format="json").status_code == 400
    assert (
        token_client("viewer").post(f"/api/bots/{running_bot.pk}/kill", {"reason": "x"}, format="json").status_code
        == 403
    )
    assert not Bot.objects.get(pk=running_bot.pk).killed


def test_unkill_needs_an_operator_and_a_reason(running_bot: Bot, token_client: Any) -> None:
    operator = token_client("operator")
    operator.post(f"/api/bots/{running_bot.pk}/kill", {"reason": "x"}, format="json")
    assert (
        token_client("viewer").post(f"/api/bots/{running_bot.pk}/unkill", {"reason": "ok"}, format="json").status_code
        == 403
    )
    assert operator.post(f"/api/bots/{running_bot.pk}/unkill", {}, format="json").status_code == 400
    assert Bot.objects.get(pk=running_bot.pk).killed
    cleared = operator.post(f"/api/bots/{running_bot.pk}/unkill", {"reason": "fixed the feed"}, format="json")
    assert cleared.status_code == 200 and cleared.json()["killed"] is False
    # Unkill does not restart anything.
    assert Runner.objects.get(bot=running_bot).status == Runner.Status.STOPPED


def test_kill_all_kills_every_bot(running_bot: Bot, token_client: Any) -> None:
    other = Bot.objects.create(name="idle", strategy_key="mean_reversion", instrument="MES")
    response = token_client("operator").post("/api/system/kill-all", {"reason": "exchange halt"}, format="json")
    assert response.status_code == 200 and len(response.json()["killed"]) == 2
    assert set(Bot.objects.values_list("killed", flat=True)) == {True}
    assert Runner.objects.get(bot=running_bot).status == Runner.Status.STOPPED
    assert AuditEvent.objects.filter(action="system.kill_all").count() == 1
    assert other.pk in [r["bot_id"] for r in response.json()["killed"]]


def test_kill_cancels_working_sim_orders_and_says_why_it_could_not_flatten(running_bot: Bot, token_client: Any) -> None:
    from datetime import UTC, datetime

    from apps.trading.models import Order, Position

    bar = datetime(2025, 12, 16, 16, 0, tzinfo=UTC)
    Order.objects.create(
        client_order_id="TRO-w", bot_id=running_bot.pk, generation=1, mode="SIM", venue="sim", instrument="MNQ",
        side="BUY", quantity=1, bar_ts=bar, trace_id="t", placed_at=bar, status=Order.Status.WORKING,
    )  # fmt: skip
    Position.objects.create(bot_id=running_bot.pk, venue="sim", instrument="MNQ", quantity=1, avg_price=20000)
    body = (
        token_client("operator")
        .post(f"/api/bots/{running_bot.pk}/kill", {"reason": "runaway", "flatten": True}, format="json")
        .json()
    )
    assert body["orders_cancelled"] == 1 and Order.objects.get(client_order_id="TRO-w").status == "CANCELLED"
    # No fresh price for MNQ in the store: no flatten order at a made-up price; the operator is told.
    assert "not flattened (RISK_NO_REFERENCE_PRICE" in body["flatten"] and "left for the operator" in body["flatten"]


def test_kill_of_a_live_bot_cancels_its_working_order_at_the_broker(provider_stub: Any, token_client: Any) -> None:
    from datetime import UTC, datetime

    from apps.integrations.orders import OrderRequest
    from apps.integrations.tradovate import client as tradovate
    from apps.integrations.tradovate.client import TradovateClient
    from apps.trading.models import Order, Position

    tradovate.clear_token_cache()
    broker = provider_stub("tradovate")
    bot = Bot.objects.create(
        name="live MES", strategy_key="trend_following", instrument="MES", stage=Bot.Stage.LIVE,
        venue=Bot.Venue.TRADOVATE, broker_account="DEMO123457",
    )  # fmt: skip
    bar = datetime(2025, 12, 9, 16, 0, tzinfo=UTC)
    client = TradovateClient.for_bot(bot.pk)
    request = OrderRequest("TRO-live", "DEMO123457", "MESZ5", "BUY", 1, "LIMIT", limit_price=Decimal(4000))
    placed = client.place_order(request)
    Order.objects.create(
        client_order_id="TRO-live", bot_id=bot.pk, generation=1, mode="LIVE", venue="tradovate",
        account="DEMO123457", instrument="MES", contract="MESZ5", side="BUY", quantity=1, order_type="LIMIT",
        limit_price=4000, bar_ts=bar, trace_id="t", placed_at=bar, status=Order.Status.WORKING,
        venue_order_id=placed.broker_order_id,
    )  # fmt: skip
    Position.objects.create(bot_id=bot.pk, venue="tradovate", account="DEMO123457", instrument="MES", quantity=0)
    body = token_client("operator").post(f"/api/bots/{bot.pk}/kill", {"reason": "broker says no"}, format="json").json()
    assert body["orders"] == {"cancel_requested": 1} and broker.working() == []
    tradovate.clear_token_cache()
