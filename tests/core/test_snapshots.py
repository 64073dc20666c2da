from __future__ import annotations

import json
from typing import Any

import pytest

from apps.core import snapshots

pytestmark = pytest.mark.django_db


def test_a_snapshot_is_reused_within_its_age_and_invalidated_on_demand(settings: Any) -> None:
    settings.STATUS_SNAPSHOT_SECONDS = 30
    calls: list[int] = []

    def compute() -> dict[str, Any]:
        calls.append(1)
        return {"n": len(calls)}

    snapshots.invalidate("test-snap")
    first = snapshots.get_or_compute("test-snap", compute)
    assert snapshots.get_or_compute("test-snap", compute) == first and len(calls) == 1
    snapshots._local.clear()  # another process: it reads the shared copy from Redis
    assert snapshots.get_or_compute("test-snap", compute) == first and len(calls) == 1
    snapshots.invalidate("test-snap")
    assert json.loads(snapshots.get_or_compute("test-snap", compute)) == {"n": 2}
    snapshots.invalidate("test-snap")


def test_the_trace_id_is_the_requests_own() -> None:
    body = snapshots.with_trace_id(b'{"status":"OK"}', "req-1")
    assert json.loads(body) == {"status": "OK", "trace_id": "req-1"}


def test_the_status_api_serves_a_snapshot_with_each_requests_trace_id(settings: Any, token_client: Any) -> None:
    settings.STATUS_SNAPSHOT_SECONDS = 30
    snapshots.invalidate("system-status")
    client = token_client("viewer")
    a = client.get("/api/system/status", headers={"X-Trace-Id": "first-1"})
    b = client.get("/api/system/status", headers={"X-Trace-Id": "second-2"})
    assert a.json()["trace_id"] == "first-1" and b.json()["trace_id"] == "second-2"
    assert a.json()["checked_at"] == b.json()["checked_at"]  # the same snapshot, its age visible
    snapshots.invalidate("system-status")
