"""Kill-all is one switch (RELIABILITY K1): a global latch in PostgreSQL that every start refuses
against, until a person releases it with a reason; both moves audited, and visible in the status."""

from __future__ import annotations

from typing import Any

import pytest

from apps.bots.models import Bot
from apps.runners.models import Runner
from apps.telemetry.models import AuditEvent

pytestmark = pytest.mark.django_db


def _kill_all(token_client: Any, reason: str = "exchange halt") -> dict[str, Any]:
    alice = token_client("operator", username="alice")
    response = alice.post("/api/system/kill-all", {"reason": reason}, format="json")
    assert response.status_code == 200
    return response.json()


def test_a_bot_created_after_kill_all_cannot_start(running_bot: Bot, token_client: Any) -> None:
    body = _kill_all(token_client)
    assert body["kill_all"]["engaged"] is True and body["kill_all"]["by"] == "alice"
    assert body["kill_all"]["reason"] == "exchange halt" and body["newly_engaged"] is True
    assert [r["bot_id"] for r in body["killed"]] == [running_bot.pk]
    assert Runner.objects.get(bot=running_bot).status == Runner.Status.STOPPED

    late = Bot.objects.create(name="late", strategy_key="breakout", instrument="MNQ", stage=Bot.Stage.PAPER)
    assert not late.killed  # not killed one by one: the global latch holds it
    refused = token_client("operator").post("/api/runners/start", {"bot_id": late.pk}, format="json")
    envelope = refused.json()
    assert refused.status_code == 409 and envelope["error_code"] == "BOT_KILLED"
    assert envelope["scope"] == "global" and envelope["kill_all"]["reason"] == "exchange halt"
    assert "exchange halt" in envelope["message"] and "alice" in envelope["message"]
    assert "/api/system/kill-all/release" in envelope["suggested_fix"] and envelope["trace_id"]
    assert not Runner.objects.filter(bot=late, status=Runner.Status.RUNNING).exists()
    assert AuditEvent.objects.filter(action="runner.start_refused", target_id=str(late.pk)).exists()
    # A restart is refused the same way, before it stops anything.
    restart = token_client("operator").post("/api/runners/restart", {"bot_id": late.pk}, format="json")
    assert restart.status_code == 409 and restart.json()["scope"] == "global"


def test_kill_all_is_audited_with_actor_scope_and_reason(running_bot: Bot, token_client: Any) -> None:
    _kill_all(token_client, reason="fat finger at the desk")
    latch = AuditEvent.objects.get(action="system.kill_all_latch")
    assert latch.actor_label == "alice" and latch.reason == "fat finger at the desk"
    assert latch.after["scope"] == "global" and latch.after["engaged"] is True
    assert AuditEvent.objects.filter(action="system.kill_all", reason="fat finger at the desk").count() == 1
    # A second kill-all keeps the first engagement (time, author, reason) and says it was already on.
    again = _kill_all(token_client, reason="second press")
    assert again["newly_engaged"] is False and again["kill_all"]["reason"] == "fat finger at the desk"


def test_status_is_blocked_naming_kill_all_while_engaged(running_bot: Bot, token_client: Any) -> None:
    viewer = token_client("viewer")
    before = viewer.get("/api/system/status").json()
    assert before["kill_all"]["engaged"] is False
    assert not [b for b in before["blockers"] if b["code"] == "KILL_ALL_ENGAGED"]

    _kill_all(token_client)
    status = viewer.get("/api/system/status").json()
    assert status["status"] == "BLOCKED" and status["autonomy_allowed"] is False
    assert status["kill_all"]["engaged"] is True and status["kill_all"]["by"] == "alice"
    assert status["kill_all"]["reason"] == "exchange halt" and status["kill_all"]["since"]
    blocker = next(b for b in status["blockers"] if b["code"] == "KILL_ALL_ENGAGED")
    assert blocker["component"] == "kill_switch" and "exchange halt" in blocker["message"]
    assert "release" in blocker["suggested_fix"]


def test_release_needs_an_operator_and_a_reason_and_unkills_nobody(running_bot: Bot, token_client: Any) -> None:
    _kill_all(token_client)
    late = Bot.objects.create(name="late", strategy_key="breakout", instrument="MNQ", stage=Bot.Stage.PAPER)
    url = "/api/system/kill-all/release"
    assert token_client("viewer").post(url, {"reason": "ok"}, format="json").status_code == 403
    missing = token_client("operator").post(url, {}, format="json")
    assert missing.status_code == 400 and "reason" in missing.json()["fields"]
    blank = token_client("operator").post(url, {"reason": "   "}, format="json")
    assert blank.status_code == 400
    assert Runner.objects.get(bot=running_bot).status == Runner.Status.STOPPED
    assert token_client("viewer").get("/api/system/status").json()["kill_all"]["engaged"] is True

    bob = token_client("operator", username="bob")
    released = bob.post(url, {"reason": "venue back, risk reviewed"}, format="json")
    body = released.json()
    assert released.status_code == 200 and body["kill_all"]["engaged"] is False
    assert body["kill_all"]["released_by"] == "bob" and body["still_killed_bot_ids"] == [running_bot.pk]
    assert "still killed" in body["message"] and "unkill" in body["message"]
    audit = AuditEvent.objects.get(action="system.kill_all_release")
    assert audit.actor_label == "bob" and audit.reason == "venue back, risk reviewed"
    assert audit.before["reason"] == "exchange halt" and audit.before["by"] == "alice"

    # The bot created meanwhile was never killed: it starts now. The one kill-all killed does not.
    operator = token_client("operator")
    assert operator.post("/api/runners/start", {"bot_id": late.pk}, format="json").status_code == 200
    still = operator.post("/api/runners/start", {"bot_id": running_bot.pk}, format="json")
    assert still.status_code == 409 and still.json()["error_code"] == "BOT_KILLED" and still.json()["scope"] == "bot"
    assert f"/api/bots/{running_bot.pk}/unkill" in still.json()["suggested_fix"]

    status = token_client("viewer").get("/api/system/status").json()
    assert status["kill_all"]["engaged"] is False
    assert not [b for b in status["blockers"] if b["code"] == "KILL_ALL_ENGAGED"]
    again = operator.post(url, {"reason": "twice"}, format="json")
    assert again.status_code == 409 and again.json()["error_code"] == "KILL_ALL_NOT_ENGAGED"


def test_kill_all_works_with_redis_down(running_bot: Bot, token_client: Any, settings: Any, tmp_path: Any) -> None:
    settings.REDIS_URL = f"unix://{tmp_path}/no-redis.sock"
    settings.CELERY_BROKER_URL = f"redis+socket://{tmp_path}/no-redis.sock"
    _kill_all(token_client)
    late = Bot.objects.create(name="late", strategy_key="breakout", instrument="MNQ", stage=Bot.Stage.PAPER)
    refused = token_client("operator").post("/api/runners/start", {"bot_id": late.pk}, format="json")
    assert refused.status_code == 409 and refused.json()["scope"] == "global"


def test_a_system_actor_cannot_release_kill_all(running_bot: Bot, token_client: Any) -> None:
    from apps.core.exceptions import ApplicationError
    from apps.trading import kill_switch

    _kill_all(token_client)
    with pytest.raises(ApplicationError) as refused:
        kill_switch.kill_all_release(actor=None, reason="the supervisor thinks it is fine")
    assert refused.value.status_code == 403
    assert kill_switch.kill_all_state().engaged
