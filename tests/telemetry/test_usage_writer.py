"""The background usage writer: callers do not wait, and nothing submitted is lost."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone

from apps.telemetry import usage_writer
from apps.telemetry.models import IntegrationUsageEvent, IntegrationUsageRollup


def _row(i: int) -> dict[str, Any]:
    return {
        "provider": "polygon",
        "operation": "bars",
        "status": "ok",
        "latency_ms": 1.0,
        "bot_id": None,
        "trace_id": f"t{i}",
        "error_code": "",
        "http_status": 200,
        "created_at": timezone.now(),
    }


@pytest.mark.django_db(transaction=True)
def test_background_writes_land_in_batches_and_flush_waits_for_them(settings: Any) -> None:
    settings.INTEGRATIONS_USAGE_WRITES = "background"
    for i in range(1200):
        usage_writer.record(_row(i))
    assert usage_writer.flush(timeout=20)
    assert IntegrationUsageEvent.objects.count() == 1200
    assert sum(IntegrationUsageRollup.objects.filter(granularity=300).values_list("calls", flat=True)) == 1200


@pytest.mark.django_db(transaction=True)
def test_a_full_queue_writes_inline_instead_of_dropping(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.INTEGRATIONS_USAGE_WRITES = "background"
    writer = usage_writer._get_writer()
    monkeypatch.setattr(writer.queue, "put_nowait", lambda row: (_ for _ in ()).throw(usage_writer.queue.Full()))
    usage_writer.record(_row(1))
    assert IntegrationUsageEvent.objects.filter(trace_id="t1").exists()  # written before record() returned
