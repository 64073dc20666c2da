from __future__ import annotations

import logging
from typing import Any

import pytest
from django.apps import apps

from apps.core import legacy

pytestmark = pytest.mark.django_db


def _row_counts() -> dict[str, int]:
    return {m._meta.label: m.objects.count() for m in apps.get_models()}


@pytest.mark.parametrize(
    ("name", "replacement"),
    [
        ("promote-bot", "POST /api/bots/{id}/promote"),
        ("create-starter-bots", "POST /api/bots/starter-pack"),
        ("reconcile-bot-execution", "POST /api/bots/{id}/reconcile"),
        ("system-proof", "GET /api/system/status"),
        ("kill-engine", "POST /api/bots/{id}/kill"),
        ("backtest-classify", "POST /api/backtests"),
        ("strategy-lab-worker", "POST /api/strategy-lab/experiments"),
        ("sim-execute-order", None),
        ("never-heard-of-it", None),
    ],
)
@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
def test_every_method_is_retired_with_its_replacement(
    client: Any, caplog: Any, name: str, replacement: str | None, method: str
) -> None:
    before = _row_counts()
    with caplog.at_level(logging.WARNING, logger="tradeops.legacy"):
        response = client.generic(
            method.upper(), f"/functions/v1/{name}", data='{"bot_id": 1}', content_type="application/json"
        )
    assert response.status_code == 410
    body = response.json()
    assert body["error_code"] == "EDGE_FUNCTION_RETIRED"
    assert body["replacement"] == replacement
    assert body["trace_id"] == response["X-Trace-Id"]
    lines = [r.getMessage() for r in caplog.records if "[EDGE_CALL_BLOCKED]" in r.getMessage()]
    assert len(lines) == 1 and name in lines[0] and body["trace_id"] in lines[0]
    assert _row_counts() == before, "a legacy call must never act"


def test_the_rpc_path_is_retired_too(client: Any) -> None:
    response = client.post("/rest/v1/rpc/promote-bot", data={}, content_type="application/json")
    assert response.status_code == 410
    assert response.json()["replacement"] == "POST /api/bots/{id}/promote"


def test_it_needs_no_auth_and_no_csrf_to_be_refused(db: Any) -> None:
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post("/functions/v1/promote-bot")
    assert response.status_code == 410


def test_sub_paths_are_retired(client: Any) -> None:
    assert client.get("/functions/v1/runner-tick/extra/path").status_code == 410


def test_the_table_covers_the_brief_decision_table() -> None:
    must = {
        "kill-engine",
        "promote-bot",
        "promotion-engine",
        "demotion-engine",
        "runner-controller",
        "runner-heartbeat",
        "start-runner",
        "restart-runner",
        "job-dispatcher",
        "job-processor",
        "job-watchdog",
        "job-worker",
        "force-tick",
        "autonomy-watchdog",
        "system-proof",
        "broker-ironbeam",
        "broker-tradovate",
        "runner-tick",
        "sim-execute-order",
        "risk-engine",
        "run-backtest",
        "historical-data",
        "market-hours",
        "send-2fa-code",
        "verify-2fa-code",
        "send-sms-alert",
        "create-starter-bots",
        "reconcile-bot-execution",
    }
    assert {name for name in must if legacy.lookup(name) is legacy.UNKNOWN} == set()
    assert legacy.lookup("promote-bot").decision == legacy.Decision.DELETE
    assert legacy.lookup("strategy-lab-ranker").decision == legacy.Decision.MIGRATE
