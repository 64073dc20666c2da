from __future__ import annotations

from typing import Any

import pytest

from apps.bots.models import Bot
from apps.integrations.services import integration_verify
from apps.telemetry.services import heartbeat_record


@pytest.fixture
def running_bot(provider_stub: Any, token_client: Any) -> Bot:
    """A PAPER bot started through the API: Databento verified against its stub, live heartbeats."""
    provider_stub("databento")
    assert integration_verify(provider="databento").ok
    heartbeat_record(component="beat", instance="b")
    heartbeat_record(component="worker", instance="w")
    bot = Bot.objects.create(name="MNQ breakout", strategy_key="breakout", instrument="MNQ", stage=Bot.Stage.PAPER)
    started = token_client("operator", username="starter").post("/api/runners/start", {"bot_id": bot.pk}, format="json")
    assert started.status_code == 200
    return bot
