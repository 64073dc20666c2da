"""The kill latch (set by apps.runners' kill switch) and unkill: one conditional UPDATE each,
idempotent, and cleared only by a person with the operator role and a reason. All audited."""

from __future__ import annotations

from typing import Any

import pytest

from apps.bots import services
from apps.bots.exceptions import BotValidationError, UnkillRefused
from apps.bots.models import Bot
from apps.telemetry.models import AuditEvent
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def killed_bot(operator: Any) -> Bot:
    bot = BotFactory()
    assert services.bot_kill_latch(bot=bot, actor=None, actor_label="system:supervisor", reason="daily loss hit")
    return bot


def test_the_latch_sets_every_kill_field_once(operator: Any) -> None:
    bot = BotFactory()
    assert services.bot_kill_latch(bot=bot, actor=operator, actor_label="", reason="runaway orders") is True
    assert bot.killed and bot.killed_at and bot.kill_reason == "runaway orders"
    assert bot.killed_by == operator.get_username()
    first_at = bot.killed_at
    # Idempotent: a second kill keeps the first one's time, reason and author, and audits nothing.
    assert services.bot_kill_latch(bot=bot, actor=None, actor_label="system:supervisor", reason="again") is False
    stored = Bot.objects.get(pk=bot.pk)
    assert (stored.killed_at, stored.kill_reason, stored.killed_by) == (first_at, "runaway orders", bot.killed_by)
    audit = AuditEvent.objects.get(action="bot.kill_latch")
    assert audit.reason == "runaway orders" and audit.after["killed"] is True


def test_the_latch_needs_a_reason() -> None:
    bot = BotFactory()
    with pytest.raises(BotValidationError):
        services.bot_kill_latch(bot=bot, actor=None, actor_label="system:supervisor", reason="  ")
    assert not Bot.objects.get(pk=bot.pk).killed


def test_a_system_kill_is_labelled_with_the_component(killed_bot: Bot) -> None:
    assert Bot.objects.get(pk=killed_bot.pk).killed_by == "system:supervisor"
    assert AuditEvent.objects.get(action="bot.kill_latch").actor_label == "system:supervisor"


def test_unkill_is_refused_without_a_reason(killed_bot: Bot, operator: Any) -> None:
    with pytest.raises(BotValidationError) as refused:
        services.bot_unkill(bot=killed_bot, actor=operator, reason=" ")
    assert "reason" in refused.value.extra["fields"]
    assert Bot.objects.get(pk=killed_bot.pk).killed
    audit = AuditEvent.objects.get(action="bot.unkill_refused")
    assert audit.after["error_code"] == "VALIDATION_ERROR" and audit.actor_id == operator.pk


@pytest.mark.parametrize("system_actor", ["system:supervisor", None])
def test_unkill_is_refused_for_the_system(killed_bot: Bot, system_actor: Any) -> None:
    with pytest.raises(UnkillRefused) as refused:
        services.bot_unkill(bot=killed_bot, actor=system_actor, reason="looks fine now")
    assert refused.value.status_code == 403 and refused.value.error_code == "UNKILL_REFUSED"
    assert Bot.objects.get(pk=killed_bot.pk).killed
    audit = AuditEvent.objects.get(action="bot.unkill_refused")
    assert audit.actor_label == (system_actor or "system") and audit.reason == "looks fine now"


def test_unkill_is_refused_for_a_viewer(killed_bot: Bot, viewer: Any) -> None:
    with pytest.raises(UnkillRefused, match="operator or admin role"):
        services.bot_unkill(bot=killed_bot, actor=viewer, reason="fixed")
    assert Bot.objects.get(pk=killed_bot.pk).killed
    assert AuditEvent.objects.get(action="bot.unkill_refused").actor_id == viewer.pk


def test_an_operator_unkills_with_a_reason(killed_bot: Bot, operator: Any) -> None:
    assert services.bot_unkill(bot=killed_bot, actor=operator, reason="feed fixed, limits reviewed") is True
    stored = Bot.objects.get(pk=killed_bot.pk)
    assert (stored.killed, stored.killed_at, stored.kill_reason, stored.killed_by) == (False, None, "", "")
    audit = AuditEvent.objects.get(action="bot.unkill")
    assert audit.reason == "feed fixed, limits reviewed" and audit.actor_id == operator.pk
    assert audit.before["kill_reason"] == "daily loss hit" and audit.before["killed_by"] == "system:supervisor"
    # Nothing left to clear: a second unkill is a no-op.
    assert services.bot_unkill(bot=killed_bot, actor=operator, reason="again") is False
    assert AuditEvent.objects.filter(action="bot.unkill").count() == 1


def test_the_kill_latch_is_not_patchable(killed_bot: Bot, token_client: Any) -> None:
    response = token_client("operator").patch(f"/api/bots/{killed_bot.pk}", {"killed": False}, format="json")
    assert response.status_code == 400 and "unkill" in response.json()["fields"]["killed"][0]
    body = token_client("viewer").get(f"/api/bots/{killed_bot.pk}").json()
    assert body["killed"] is True and body["kill_reason"] == "daily loss hit"
