"""System status follows what each bot needs (SPEC §3, §5): BLOCKED only when nothing can run;
DEGRADED, with a blocker naming the bot, the provider and the fix, when a non-retired bot's data
provider (or a LIVE bot's broker) is missing, unverified or stale."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.bots.models import Bot
from apps.integrations.models import IntegrationCheck
from apps.integrations.services import integration_verify
from apps.telemetry.models import IntegrationUsageEvent
from apps.telemetry.services import heartbeat_record

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _scheduler_alive() -> None:
    heartbeat_record(component="beat", instance="beat@test")
    heartbeat_record(component="worker", instance="worker@test")


@pytest.fixture
def databento_verified(provider_stub: Any) -> None:
    provider_stub("databento")
    assert integration_verify(provider="databento").ok


def _status(token_client: Any) -> dict[str, Any]:
    return token_client("viewer").get("/api/system/status").json()


def _bot_blockers(status: dict[str, Any], provider: str) -> list[dict[str, Any]]:
    return [b for b in status["blockers"] if b.get("scope") == "bot" and b["component"] == provider]


def test_no_verified_data_provider_is_blocked(token_client: Any, provider_stub: Any) -> None:
    provider_stub("databento")  # configured, never verified
    Bot.objects.create(name="MES trend", strategy_key="trend_following", instrument="MES", stage=Bot.Stage.PAPER)
    status = _status(token_client)
    assert status["status"] == "BLOCKED"
    market = next(b for b in status["blockers"] if b["component"] == "market_data")
    assert market["scope"] == "system" and market["code"] == "INTEGRATION_NOT_CONNECTED"


def test_a_bot_whose_data_provider_is_missing_degrades_and_is_named(
    token_client: Any, databento_verified: None
) -> None:
    Bot.objects.create(
        name="MES on polygon", strategy_key="trend_following", instrument="MES", stage=Bot.Stage.PAPER,
        data_provider=Bot.DataProvider.POLYGON,
    )  # fmt: skip
    status = _status(token_client)
    # One verified data provider: something can run, so not BLOCKED; but this bot cannot.
    assert status["status"] == "DEGRADED" and not [b for b in status["blockers"] if b.get("scope") == "system"]
    (blocker,) = _bot_blockers(status, "polygon")
    assert blocker["code"] == "INTEGRATION_KEY_MISSING" and blocker["missing_env_vars"] == ["POLYGON_API_KEY"]
    assert "MES on polygon" in blocker["message"] and "Polygon" in blocker["message"]
    assert [b["name"] for b in blocker["bots"]] == ["MES on polygon"] and blocker["bot_count"] == 1
    assert "POLYGON_API_KEY" in blocker["suggested_fix"] and "Connections" in blocker["suggested_fix"]
    assert blocker["fix_url"] == "/connections/#card-polygon"
    # Not also a non-degrading warning for the same provider.
    assert not [w for w in status["warnings"] if w["component"] == "polygon"]


def test_a_configured_but_unverified_data_provider_degrades_naming_the_bot(
    token_client: Any, databento_verified: None, provider_stub: Any
) -> None:
    provider_stub("polygon")  # keys present, never verified
    Bot.objects.create(
        name="MNQ polygon", strategy_key="breakout", instrument="MNQ", stage=Bot.Stage.LAB,
        data_provider=Bot.DataProvider.POLYGON,
    )  # fmt: skip
    status = _status(token_client)
    assert status["status"] == "DEGRADED"
    (blocker,) = _bot_blockers(status, "polygon")
    assert blocker["code"] == "INTEGRATION_NOT_CONNECTED" and "never been verified" in blocker["message"]
    assert "MNQ polygon" in blocker["message"] and "Verify" in blocker["suggested_fix"]

    assert integration_verify(provider="polygon").ok
    status = _status(token_client)
    assert not _bot_blockers(status, "polygon")


def test_a_live_bot_without_its_broker_degrades_naming_the_bot(token_client: Any, databento_verified: None) -> None:
    Bot.objects.create(
        name="live MES", strategy_key="trend_following", instrument="MES", stage=Bot.Stage.LIVE,
        venue=Bot.Venue.TRADOVATE, broker_account="DEMO1",
    )  # fmt: skip
    Bot.objects.create(  # a PAPER bot on the same venue does not need the broker
        name="paper MES", strategy_key="trend_following", instrument="MES", stage=Bot.Stage.PAPER,
        venue=Bot.Venue.IRONBEAM,
    )  # fmt: skip
    status = _status(token_client)
    assert status["status"] == "DEGRADED"
    (blocker,) = _bot_blockers(status, "tradovate")
    assert "live MES" in blocker["message"] and "broker" in blocker["message"]
    assert blocker["code"] == "INTEGRATION_KEY_MISSING" and "TRADOVATE_USERNAME" in blocker["missing_env_vars"]
    assert not _bot_blockers(status, "ironbeam")


def test_a_stale_verify_degrades_naming_the_bot(
    token_client: Any, databento_verified: None, provider_stub: Any
) -> None:
    provider_stub("polygon")
    assert integration_verify(provider="polygon").ok
    Bot.objects.create(
        name="stale feed", strategy_key="breakout", instrument="MES", stage=Bot.Stage.PAPER,
        data_provider=Bot.DataProvider.POLYGON,
    )  # fmt: skip
    assert not _bot_blockers(_status(token_client), "polygon")
    long_ago = timezone.now() - timedelta(days=3)
    IntegrationCheck.objects.filter(provider="polygon").update(checked_at=long_ago)
    IntegrationUsageEvent.objects.filter(provider="polygon").update(created_at=long_ago)
    status = _status(token_client)
    assert status["status"] == "DEGRADED"
    (blocker,) = _bot_blockers(status, "polygon")
    assert "stale feed" in blocker["message"] and "too old" in blocker["message"]


def test_retired_bots_need_nothing(token_client: Any, databento_verified: None) -> None:
    Bot.objects.create(
        name="old", strategy_key="breakout", instrument="MES", stage=Bot.Stage.RETIRED,
        data_provider=Bot.DataProvider.POLYGON,
    )  # fmt: skip
    status = _status(token_client)
    assert not [b for b in status["blockers"] if b.get("scope") == "bot"]
    # Still DEGRADED, for the one reason left, worded for operators.
    assert status["status"] == "DEGRADED"
    supervisor = next(w for w in status["warnings"] if w["code"] == "SUPERVISOR_UNAVAILABLE")
    words = (supervisor["message"] + supervisor["suggested_fix"]).lower()
    assert "not built" not in words and "autonomy" in words


def test_the_overview_names_the_bot_with_a_link_to_the_fix(viewer: Any, databento_verified: None) -> None:
    from django.test import Client

    Bot.objects.create(
        name="MES on polygon", strategy_key="trend_following", instrument="MES", stage=Bot.Stage.PAPER,
        data_provider=Bot.DataProvider.POLYGON,
    )  # fmt: skip
    client = Client()
    client.force_login(viewer)
    html = client.get("/").content.decode()
    assert "<strong>DEGRADED</strong>" in html and "MES on polygon" in html
    assert 'href="/connections/#card-polygon"' in html
