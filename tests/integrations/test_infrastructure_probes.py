"""Redis and PostgreSQL are connected while they answer their probes, and the probes are their
proof of use (issue 9 item 3): the status rows, the summary counts and the cards agree."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.integrations.models import IntegrationCheck
from apps.telemetry.models import IntegrationUsageEvent

pytestmark = pytest.mark.django_db


def _rows(token_client: Any) -> dict[str, dict[str, Any]]:
    body = token_client("viewer").get("/api/integrations/status").json()
    return {r["provider"]: r for r in body["integrations"]}


def test_reachable_infrastructure_is_configured_and_connected_with_probe_counts(token_client: Any) -> None:
    rows = _rows(token_client)
    for provider in ("redis", "postgres"):
        row = rows[provider]
        assert row["configured"] and row["connected"] and row["error_code"] is None
        assert row["proof_of_use_count_24h"] >= 1 and row["last_used_at"] and row["last_verified_at"]
        assert row["last_check_operation"] == "probe" and row["accepts_keys"] is False
        assert IntegrationUsageEvent.objects.filter(provider=provider, operation="probe", status="ok").exists()
        assert IntegrationCheck.objects.get(provider=provider).ok


def test_each_probe_counts_as_use(token_client: Any) -> None:
    first = _rows(token_client)["redis"]["proof_of_use_count_24h"]
    assert _rows(token_client)["redis"]["proof_of_use_count_24h"] > first


def test_summary_counts_agree_with_the_rows_and_the_overview(token_client: Any, viewer: Any) -> None:
    status = token_client("viewer").get("/api/system/status").json()
    rows = _rows(token_client)
    assert status["integrations"]["connected"] == sum(r["connected"] for r in rows.values()) == 2
    assert status["integrations"]["providers"]["postgres"]["connected"] is True
    client = Client()
    client.force_login(viewer)
    overview = client.get("/").content.decode()
    total = status["integrations"]["total"]
    assert f"2 of {total} connected" in overview
    for card in ("card-postgres-summary", "card-redis-summary"):
        body = overview.split(f'id="{card}"', 1)[1].split("</article>", 1)[0]
        assert '<p class="ok">connected</p>' in body and "not connected" not in body


def test_unreachable_redis_is_not_connected_and_says_why(token_client: Any, settings: Any, tmp_path: Any) -> None:
    settings.REDIS_URL = f"unix://{tmp_path}/no-redis.sock"
    row = _rows(token_client)["redis"]
    assert row["configured"] and not row["connected"] and row["error_code"] == "INTEGRATION_NETWORK_ERROR"
    assert "REDIS_URL" in row["suggested_fix"]
    assert IntegrationUsageEvent.objects.filter(provider="redis", operation="probe", status="error").exists()
