"""Verify, then Start, at once (issue 9 item 19): a verify's outcome is durable before the verify
answers, so the start gate does not wait for the proof-of-use row, which the background writer (in
its production mode here, not "sync") stores behind it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from apps.bots.models import Bot
from apps.integrations.models import IntegrationCheck
from apps.runners.models import Runner
from apps.telemetry import usage_writer
from apps.telemetry.models import IntegrationUsageEvent
from apps.telemetry.services import heartbeat_record


@pytest.fixture
def held_usage_writer(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """The production background writer, with its inserts held until the test lets them go: the
    usage row of a verify is certainly not in the database when the start runs."""
    settings.INTEGRATIONS_USAGE_WRITES = "background"
    release = threading.Event()
    insert = usage_writer._insert

    def held(rows: list[dict[str, Any]]) -> None:
        release.wait(timeout=30)
        insert(rows)

    monkeypatch.setattr(usage_writer, "_insert", held)
    try:
        yield release
    finally:
        release.set()
        assert usage_writer.flush(timeout=20)


@pytest.mark.django_db(transaction=True)
def test_start_immediately_after_verify_starts(
    held_usage_writer: threading.Event, provider_stub: Any, token_client: Any
) -> None:
    provider_stub("databento")
    heartbeat_record(component="beat", instance="b")
    heartbeat_record(component="worker", instance="w")
    bot = Bot.objects.create(name="MES trend", strategy_key="trend_following", instrument="MES", stage=Bot.Stage.PAPER)
    operator = token_client("operator")

    verified = operator.post("/api/integrations/verify", {"provider": "databento"}, format="json")
    result = verified.json()["results"][0]
    assert verified.status_code == 200 and result["ok"] is True
    assert not IntegrationUsageEvent.objects.filter(provider="databento").exists()  # still behind
    check = IntegrationCheck.objects.get(provider="databento")
    assert check.ok and check.operation == "verify" and check.latency_ms is not None
    assert result["verified_at"] == check.checked_at.isoformat()

    started = operator.post("/api/runners/start", {"bot_id": bot.pk}, format="json")
    assert started.status_code == 200, started.json()
    assert Runner.objects.get(bot=bot).status == Runner.Status.RUNNING
    row = next(
        r for r in operator.get("/api/integrations/status").json()["integrations"] if r["provider"] == "databento"
    )
    assert row["connected"] is True and row["error_code"] is None and row["last_verified_at"]

    held_usage_writer.set()  # the proof of use lands a moment later, as in production
    assert usage_writer.flush(timeout=20)
    assert IntegrationUsageEvent.objects.filter(provider="databento", operation="verify", status="ok").count() == 1


@pytest.mark.django_db
def test_a_failed_verify_is_durable_and_refuses_the_start(provider_stub: Any, token_client: Any) -> None:
    stub = provider_stub("databento")
    heartbeat_record(component="beat", instance="b")
    heartbeat_record(component="worker", instance="w")
    bot = Bot.objects.create(name="MES trend", strategy_key="trend_following", instrument="MES", stage=Bot.Stage.PAPER)
    operator = token_client("operator")

    def verify() -> dict[str, Any]:
        return operator.post("/api/integrations/verify", {"provider": "databento"}, format="json").json()["results"][0]

    assert verify()["ok"]
    stub.mode = "bad_key"
    failed = verify()
    assert failed["ok"] is False
    check = IntegrationCheck.objects.get(provider="databento")
    assert not check.ok and check.error_code == failed["error_code"]
    refused = operator.post("/api/runners/start", {"bot_id": bot.pk}, format="json")
    assert refused.status_code == 409 and refused.json()["error_code"] == "INTEGRATION_NOT_CONNECTED"
