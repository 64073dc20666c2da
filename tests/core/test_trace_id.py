from __future__ import annotations

import logging
from typing import Any

import pytest

pytestmark = pytest.mark.django_db


def test_it_keeps_a_valid_incoming_trace_id(client: Any) -> None:
    response = client.get("/api/health", headers={"X-Trace-Id": "desk-42-abc"})
    assert response["X-Trace-Id"] == "desk-42-abc"
    assert response.json()["trace_id"] == "desk-42-abc"


@pytest.mark.parametrize("bad", ["has spaces", "x" * 65, "semi;colon", "<script>"])
def test_it_replaces_an_invalid_trace_id(client: Any, bad: str) -> None:
    response = client.get("/api/health", headers={"X-Trace-Id": bad})
    assert response["X-Trace-Id"] != bad
    assert len(response["X-Trace-Id"]) == 32


def test_it_generates_a_distinct_trace_id_per_request(client: Any) -> None:
    assert client.get("/api/health")["X-Trace-Id"] != client.get("/api/health")["X-Trace-Id"]


def test_every_response_carries_it_html_included(client: Any) -> None:
    assert client.get("/login/")["X-Trace-Id"]


def test_log_lines_carry_the_request_trace_id_as_json(client: Any, caplog: Any) -> None:
    from apps.core.logging import TraceIdFilter

    with caplog.at_level(logging.INFO):
        client.get("/api/no-such-route", headers={"X-Trace-Id": "trace-in-logs-1"})
    records = [r for r in caplog.records if r.name.startswith(("django.request", "tradeops"))]
    assert records and all(r.trace_id == "trace-in-logs-1" for r in records)

    # The configured formatter renders it as a JSON field.
    from pythonjsonlogger.json import JsonFormatter

    formatter = JsonFormatter("%(levelname)s %(name)s %(message)s %(trace_id)s")
    TraceIdFilter().filter(records[0])
    assert '"trace_id": "trace-in-logs-1"' in formatter.format(records[0])
