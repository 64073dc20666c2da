"""POST /api/bots/starter-pack: the curated first bots, at LAB on sim, created once."""

from __future__ import annotations

from typing import Any

import pytest

from apps.bots.models import Bot, BotConfigVersion
from apps.telemetry.models import AuditEvent
from apps.trading import catalogue as strategies
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db

NAMES = ["MES mean reversion", "MES trend following", "MNQ breakout"]


def test_it_creates_the_starter_bots_at_lab_on_sim_with_limits(token_client: Any) -> None:
    response = token_client("operator").post("/api/bots/starter-pack", format="json")
    body = response.json()
    assert response.status_code == 201, body
    assert sorted(b["name"] for b in body["created"]) == NAMES and body["existing"] == []
    assert body["trace_id"] == response["X-Trace-Id"]
    for bot in Bot.objects.all():
        assert (bot.stage, bot.venue, bot.autonomy_tier, bot.config_version) == ("LAB", "sim", "LOCKED", 1)
        assert strategies.missing_risk_limits(bot.risk_limits) == []
        assert set(bot.parameters) == set(strategies.STRATEGIES[bot.strategy_key].defaults())
    assert {(b.instrument, b.strategy_key) for b in Bot.objects.all()} == {
        ("MES", "trend_following"),
        ("MNQ", "breakout"),
        ("MES", "mean_reversion"),
    }
    assert BotConfigVersion.objects.filter(version=1, reason="starter pack").count() == 3
    assert AuditEvent.objects.filter(action="bot.create").count() == 3
    assert AuditEvent.objects.get(action="bot.starter_pack").after["existing"] == []


def test_a_second_call_creates_nothing_and_says_so(token_client: Any) -> None:
    operator = token_client("operator")
    operator.post("/api/bots/starter-pack", format="json")
    audit_rows = AuditEvent.objects.count()
    again = operator.post("/api/bots/starter-pack", format="json")
    body = again.json()
    assert again.status_code == 200 and body["created"] == []
    assert sorted(b["name"] for b in body["existing"]) == NAMES
    assert "nothing was created" in body["message"]
    assert Bot.objects.count() == 3 and BotConfigVersion.objects.count() == 3
    assert AuditEvent.objects.count() == audit_rows  # a no-op writes nothing


def test_it_creates_only_the_missing_ones_and_leaves_existing_bots_alone(token_client: Any) -> None:
    mine = BotFactory(name="MNQ breakout", instrument="MNQ", timeframe="1m", stage=Bot.Stage.PAPER)
    body = token_client("operator").post("/api/bots/starter-pack", format="json").json()
    assert sorted(b["name"] for b in body["created"]) == ["MES mean reversion", "MES trend following"]
    assert [b["id"] for b in body["existing"]] == [mine.pk]
    mine.refresh_from_db()
    assert (mine.timeframe, mine.stage) == ("1m", "PAPER")


def test_a_viewer_cannot_run_it(token_client: Any) -> None:
    response = token_client("viewer").post("/api/bots/starter-pack", format="json")
    assert response.status_code == 403 and not Bot.objects.exists()
