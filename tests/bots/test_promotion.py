"""Stage changes through the gate table: LAB→PAPER fails closed without a promotable backtest (an
admin may override; tests/bots/test_backtest_gate.py has the backtest evidence), PAPER→LIVE is
admin-only and never overridable, demotion is always allowed, and a conditional UPDATE keeps two
concurrent promotions from both succeeding."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection

from apps.bots import services
from apps.bots.exceptions import BotChangedConcurrently, InvalidStageTransition
from apps.bots.models import Bot
from apps.runners.models import Runner
from apps.telemetry.models import AuditEvent
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db


def _promote(client: Any, bot: Bot, to_stage: str, **extra: Any) -> Any:
    return client.post(f"/api/bots/{bot.pk}/promote", {"to_stage": to_stage, "reason": "ready", **extra}, format="json")


def _demote(client: Any, bot: Bot, to_stage: str, reason: str = "too many losses") -> Any:
    return client.post(f"/api/bots/{bot.pk}/demote", {"to_stage": to_stage, "reason": reason}, format="json")


def _gates(response: Any) -> dict[str, dict[str, Any]]:
    body = response.json()
    assert response.status_code == 409 and body["error_code"] == "PROMOTION_GATE_FAILED", body
    assert [set(g) for g in body["gates"]] == [{"name", "passed", "detail"}] * len(body["gates"])
    return {g["name"]: g for g in body["gates"]}


def _stage(bot: Bot) -> str:
    return Bot.objects.values_list("stage", flat=True).get(pk=bot.pk)


def _broker_verified(monkeypatch: pytest.MonkeyPatch, provider: str = "tradovate") -> None:
    """The integration status row of a broker that is configured and verified."""
    row = {
        "provider": provider,
        "label": provider.title(),
        "configured": True,
        "connected": True,
        "missing_env_vars": [],
        "error_code": None,
        "suggested_fix": None,
        "last_verified_at": None,
    }
    monkeypatch.setattr("apps.bots.selectors.integration_status_list", lambda: [row])


def test_lab_to_paper_fails_closed_without_a_promotable_backtest(token_client: Any) -> None:
    bot = BotFactory()
    response = _promote(token_client("operator"), bot, "PAPER")
    gates = _gates(response)
    assert gates["backtest_promotable"]["passed"] is False
    detail = gates["backtest_promotable"]["detail"]
    assert detail.startswith(f"no backtest of {bot.name}'s current config (v1) has succeeded.")
    assert detail.endswith(
        f'Run one from the Backtests page, or POST /api/backtests with {{"bot_id": {bot.pk}, "start", "end"}} '
        "over at least 20 trading days."
    )
    assert gates["strategy_valid"]["passed"] and gates["not_killed"]["passed"]
    assert response.json()["trace_id"] == response["X-Trace-Id"]
    assert _stage(bot) == "LAB"
    refusal = AuditEvent.objects.get(action="bot.promote_refused")
    assert refusal.after["error_code"] == "PROMOTION_GATE_FAILED" and refusal.reason == "ready"


def test_an_admin_override_promotes_lab_to_paper_and_is_audited(token_client: Any) -> None:
    bot = BotFactory()
    response = _promote(token_client("admin", username="alice"), bot, "PAPER", override=True, reason="desk review")
    body = response.json()
    assert response.status_code == 200, body
    assert (body["from_stage"], body["to_stage"], body["override"]) == ("LAB", "PAPER", True)
    assert body["bot"]["stage"] == "PAPER" and _stage(bot) == "PAPER"
    gates = {g["name"]: g for g in body["gates"]}
    assert gates["backtest_promotable"]["passed"] is False  # the truth is kept; the override is its own row
    assert gates["admin_override"]["passed"] and "alice" in gates["admin_override"]["detail"]
    assert "desk review" in gates["admin_override"]["detail"]
    audit = AuditEvent.objects.get(action="bot.promote")
    assert audit.actor_label == "alice" and audit.reason == "desk review"
    assert audit.before == {"stage": "LAB"} and audit.after["overridden_gates"] == ["backtest_promotable"]


def test_an_override_needs_an_admin_and_a_reason(token_client: Any) -> None:
    bot = BotFactory()
    refused = _promote(token_client("operator"), bot, "PAPER", override=True)
    assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
    assert AuditEvent.objects.get(action="bot.promote_refused").after["error_code"] == "PERMISSION_DENIED"
    no_reason = _promote(token_client("admin"), bot, "PAPER", override=True, reason="")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["fields"]
    assert _stage(bot) == "LAB"


def test_an_override_does_not_force_past_the_kill_latch(token_client: Any) -> None:
    bot = BotFactory(killed=True, kill_reason="feed glitch", killed_by="system:supervisor")
    gates = _gates(_promote(token_client("admin"), bot, "PAPER", override=True))
    assert gates["not_killed"]["passed"] is False and "feed glitch" in gates["not_killed"]["detail"]
    assert _stage(bot) == "LAB"


def test_paper_to_live_is_refused_for_an_operator(token_client: Any) -> None:
    bot = BotFactory(live_ready=True)
    response = _promote(token_client("operator"), bot, "LIVE")
    assert response.status_code == 403 and response.json()["error_code"] == "PERMISSION_DENIED"
    assert "admin" in response.json()["message"] and _stage(bot) == "PAPER"


def test_paper_to_live_gates_fail_for_sim_missing_limits_and_a_running_runner(token_client: Any) -> None:
    bot = BotFactory(stage=Bot.Stage.PAPER, risk_limits={"max_daily_loss": 100})
    Runner.objects.create(bot=bot, status=Runner.Status.RUNNING)
    gates = _gates(_promote(token_client("admin"), bot, "LIVE"))
    assert gates["runner_stopped"]["passed"] is False and "RUNNING" in gates["runner_stopped"]["detail"]
    assert gates["broker_verified"]["passed"] is False
    assert "a LIVE bot needs a real broker venue" in gates["broker_verified"]["detail"]
    assert gates["risk_limits_set"]["passed"] is False
    assert "max_position_contracts" in gates["risk_limits_set"]["detail"]
    assert "max_daily_loss" not in gates["risk_limits_set"]["detail"]
    assert gates["paper_evidence"]["passed"] is False
    assert _stage(bot) == "PAPER"


def test_an_unconfigured_broker_fails_its_gate(token_client: Any) -> None:
    bot = BotFactory(live_ready=True)
    gate = _gates(_promote(token_client("admin"), bot, "LIVE"))["broker_verified"]
    assert gate["passed"] is False and "not configured" in gate["detail"] and "TRADOVATE_USERNAME" in gate["detail"]


def test_paper_to_live_still_fails_closed_on_paper_evidence_when_everything_else_passes(
    token_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _broker_verified(monkeypatch)
    bot = BotFactory(live_ready=True)
    Runner.objects.create(bot=bot, status=Runner.Status.STOPPED)
    gates = _gates(_promote(token_client("admin"), bot, "LIVE"))
    assert [name for name, g in gates.items() if not g["passed"]] == ["paper_evidence"]
    assert gates["paper_evidence"]["detail"].startswith("paper results are not recorded yet")
    assert _stage(bot) == "PAPER"


def test_paper_to_live_can_never_be_overridden(token_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    _broker_verified(monkeypatch)
    bot = BotFactory(live_ready=True)
    response = _promote(token_client("admin"), bot, "LIVE", override=True, reason="trust me")
    assert response.status_code == 400 and "never be overridden" in response.json()["fields"]["override"][0]
    assert _stage(bot) == "PAPER"


@pytest.mark.parametrize(
    ("stage", "to_stage"),
    [("LAB", "LIVE"), ("PAPER", "PAPER"), ("LIVE", "LIVE"), ("RETIRED", "PAPER"), ("PAPER", "LAB"), ("LAB", "RETIRED")],
)
def test_anything_but_one_step_up_is_not_a_promotion(token_client: Any, stage: str, to_stage: str) -> None:
    bot = BotFactory(stage=stage)
    response = _promote(token_client("admin"), bot, to_stage, override=True)
    assert response.status_code == 409 and response.json()["error_code"] == "INVALID_STAGE_TRANSITION"
    assert _stage(bot) == stage


@pytest.mark.parametrize(
    ("stage", "to_stage"), [("LAB", "PAPER"), ("PAPER", "LIVE"), ("PAPER", "PAPER"), ("RETIRED", "LAB")]
)
def test_a_demotion_must_go_down(token_client: Any, stage: str, to_stage: str) -> None:
    bot = BotFactory(stage=stage)
    response = _demote(token_client("operator"), bot, to_stage)
    assert response.status_code == 409 and response.json()["error_code"] == "INVALID_STAGE_TRANSITION"
    assert _stage(bot) == stage


@pytest.mark.parametrize(
    ("stage", "to_stage"),
    [
        ("LIVE", "PAPER"),
        ("LIVE", "LAB"),
        ("LIVE", "RETIRED"),
        ("PAPER", "LAB"),
        ("PAPER", "RETIRED"),
        ("LAB", "RETIRED"),
    ],
)
def test_demotion_is_always_allowed(token_client: Any, stage: str, to_stage: str) -> None:
    # Killed, a running runner, no limits, sim venue: none of it stops a demotion.
    bot = BotFactory(stage=stage, autonomy_tier=Bot.Tier.LIVE_FULL, killed=True, risk_limits={})
    Runner.objects.create(bot=bot, status=Runner.Status.RUNNING)
    response = _demote(token_client("operator"), bot, to_stage)
    body = response.json()
    assert response.status_code == 200, body
    assert body["bot"]["stage"] == to_stage and body["bot"]["autonomy_tier"] == "LOCKED"
    audit = AuditEvent.objects.get(action="bot.demote")
    assert audit.before == {"stage": stage, "autonomy_tier": "LIVE_FULL"} and audit.reason == "too many losses"


def test_a_demotion_needs_a_reason_and_an_operator(token_client: Any) -> None:
    bot = BotFactory(stage=Bot.Stage.PAPER)
    assert "reason" in _demote(token_client("operator"), bot, "LAB", reason="").json()["fields"]
    assert _demote(token_client("viewer"), bot, "LAB").status_code == 403
    assert _stage(bot) == "PAPER"


def test_a_system_component_may_demote_with_its_name(db: Any) -> None:
    bot = BotFactory(stage=Bot.Stage.LIVE)
    change = services.bot_demote(
        bot=bot, to_stage="PAPER", reason="daily loss breaker", actor=None, actor_label="system:supervisor"
    )
    assert change.bot.stage == "PAPER" and _stage(bot) == "PAPER"
    assert AuditEvent.objects.get(action="bot.demote").actor_label == "system:supervisor"


def test_a_stale_promotion_loses_to_the_conditional_update(admin_user: Any) -> None:
    bot = BotFactory()
    seen_by_first, seen_by_second = Bot.objects.get(pk=bot.pk), Bot.objects.get(pk=bot.pk)
    services.bot_promote(bot=seen_by_first, to_stage="PAPER", reason="a", actor=admin_user, override=True)
    # The second caller read LAB, so its gates pass with the override; the UPDATE finds PAPER.
    with pytest.raises(InvalidStageTransition, match="no longer LAB"):
        services.bot_promote(bot=seen_by_second, to_stage="PAPER", reason="b", actor=admin_user, override=True)
    assert AuditEvent.objects.filter(action="bot.promote").count() == 1


def test_a_config_change_during_the_gates_refuses_the_promotion(admin_user: Any, operator: Any) -> None:
    judged = BotFactory()
    services.bot_update(bot=Bot.objects.get(pk=judged.pk), actor=operator, parameters={"fast_period": 5})
    with pytest.raises(BotChangedConcurrently):
        services.bot_promote(bot=judged, to_stage="PAPER", reason="a", actor=admin_user, override=True)
    assert _stage(judged) == "LAB"


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_promotions_cannot_both_succeed(admin_user: Any) -> None:
    bot_id = BotFactory().pk
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def promote(reason: str) -> None:
        try:
            bot = Bot.objects.get(pk=bot_id)
            barrier.wait(timeout=10)
            services.bot_promote(bot=bot, to_stage="PAPER", reason=reason, actor=admin_user, override=True)
            outcomes.append("promoted")
        except InvalidStageTransition:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=promote, args=(f"caller {i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(outcomes) == ["promoted", "refused"]
    assert _stage(Bot(pk=bot_id)) == "PAPER"
    assert AuditEvent.objects.filter(action="bot.promote").count() == 1
