"""Alerts (SPEC §11): raised once per open condition, listed newest first, acknowledged with a note by
an operator (audited, once), on the Alerts page and counted in every page's header."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from apps.telemetry.models import Alert, AuditEvent
from apps.telemetry.services import alert_raise

pytestmark = pytest.mark.django_db


def _raise(**kw: Any) -> Alert:
    args = {
        "severity": "WARNING",
        "code": "DATA_STALE",
        "message": "ES bars are 4 minutes old.",
        "suggested_fix": "Check the Databento connection.",
        "bot_id": 7,
    }
    args.update(kw)
    return alert_raise(**args)


def test_raising_the_same_open_condition_again_counts_a_repeat_not_a_second_alert() -> None:
    first = _raise()
    again = _raise(message="ES bars are 5 minutes old.")
    assert again.pk == first.pk
    assert again.repeat_count == 2 and again.last_seen_at >= first.last_seen_at
    assert Alert.objects.count() == 1
    # Another bot, or an explicit other key, is another condition.
    assert _raise(bot_id=8).pk != first.pk
    assert _raise(dedupe_key="custom").pk != first.pk
    assert Alert.objects.count() == 3


def test_once_acknowledged_the_condition_raised_again_opens_a_new_alert(operator: Any) -> None:
    from apps.telemetry.services import alert_ack

    first = _raise()
    alert_ack(alert=first, actor=operator, note="looking")
    second = _raise()
    assert second.pk != first.pk and second.status == "OPEN" and second.repeat_count == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_raises_of_one_condition_make_one_alert() -> None:
    barrier = threading.Barrier(6)

    def go() -> None:
        try:
            barrier.wait()
            _raise()
        finally:
            connection.close()

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert list(Alert.objects.values_list("repeat_count", flat=True)) == [6]


def test_only_critical_alerts_wait_for_sms_and_the_trace_id_is_kept() -> None:
    warning = _raise()
    critical = _raise(severity="CRITICAL", code="RUNNER_HEARTBEAT_STALE", trace_id="abc-123")
    assert warning.sms_status == "NOT_APPLICABLE"
    assert critical.sms_status == "PENDING" and critical.trace_id == "abc-123"
    with pytest.raises(ValueError):
        _raise(severity="LOUD")


def test_list_newest_first_filtered_and_paginated(token_client: Any, operator: Any) -> None:
    from apps.telemetry.services import alert_ack

    a = _raise(code="A")
    b = _raise(code="B")
    c = _raise(code="C")
    alert_ack(alert=b, actor=operator, note="seen")
    client = token_client("viewer")
    body = client.get("/api/alerts").json()
    assert [r["code"] for r in body["results"]] == ["C", "B", "A"]
    assert set(body["results"][0]) >= {
        "id", "severity", "code", "bot_id", "message", "suggested_fix", "trace_id", "created_at",
        "status", "acked_by", "acked_at", "note", "sms_status", "sms_error",
    }  # fmt: skip
    assert [r["id"] for r in client.get("/api/alerts?status=OPEN").json()["results"]] == [c.pk, a.pk]
    acked = client.get("/api/alerts?status=ACKED").json()["results"]
    assert [(r["id"], r["acked_by"], r["note"]) for r in acked] == [(b.pk, operator.username, "seen")]
    page = client.get("/api/alerts?limit=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2 and page["next"]
    bad = client.get("/api/alerts?status=MAYBE")
    assert bad.status_code == 400 and bad.json()["error_code"] == "VALIDATION_ERROR"


def test_list_requires_sign_in(api_client: Any) -> None:
    response = api_client.get("/api/alerts")
    assert response.status_code == 401 and response.json()["error_code"] == "AUTHENTICATION_REQUIRED"


def test_operator_acknowledges_with_a_note_and_it_is_audited(token_client: Any) -> None:
    alert = _raise(severity="CRITICAL")
    client = token_client("operator", username="ops-anna")
    response = client.post(f"/api/alerts/{alert.pk}/ack", {"note": "restarted the runner"}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["acked_by"], body["note"]) == ("ACKED", "ops-anna", "restarted the runner")
    assert body["acked_at"] and body["trace_id"]
    # The SMS not yet sent is not sent any more: a person has seen it.
    assert body["sms_status"] == "NOT_APPLICABLE" and "acknowledged" in body["sms_error"]
    audit = AuditEvent.objects.get(action="alert.ack")
    assert (audit.target_id, audit.actor_label, audit.reason) == (str(alert.pk), "ops-anna", "restarted the runner")
    assert audit.before["status"] == "OPEN" and audit.after["status"] == "ACKED"
    assert audit.trace_id == response["X-Trace-Id"]


def test_ack_refusals_are_the_envelope(token_client: Any) -> None:
    alert = _raise()
    viewer = token_client("viewer")
    denied = viewer.post(f"/api/alerts/{alert.pk}/ack", {"note": "x"}, format="json")
    assert denied.status_code == 403 and denied.json()["error_code"] == "PERMISSION_DENIED"

    operator = token_client("operator")
    for body in ({}, {"note": ""}, {"note": "   "}):
        missing = operator.post(f"/api/alerts/{alert.pk}/ack", body, format="json")
        assert missing.status_code == 400, body
        assert missing.json()["error_code"] == "VALIDATION_ERROR" and "note" in missing.json()["fields"]
    alert.refresh_from_db()
    assert alert.status == "OPEN"

    assert operator.post(f"/api/alerts/{alert.pk}/ack", {"note": "first"}, format="json").status_code == 200
    twice = operator.post(f"/api/alerts/{alert.pk}/ack", {"note": "second"}, format="json")
    assert twice.status_code == 409
    envelope = twice.json()
    assert envelope["error_code"] == "ALERT_ALREADY_ACKED" and envelope["suggested_fix"] and envelope["trace_id"]
    alert.refresh_from_db()
    assert alert.note == "first"
    assert AuditEvent.objects.filter(action="alert.ack").count() == 1

    gone = operator.post("/api/alerts/999999/ack", {"note": "x"}, format="json")
    assert gone.status_code == 404 and gone.json()["error_code"] == "NOT_FOUND"


# --- the Observatory -------------------------------------------------------------------------------


def _signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_every_page_header_counts_open_alerts_and_critical_ones(viewer: Any, operator: Any) -> None:
    client = _signed_in(viewer)
    assert "No open alerts" in client.get("/jobs/").content.decode()
    _raise()
    _raise(severity="CRITICAL", code="RUNNER_HEARTBEAT_STALE")
    acked = _raise(code="OTHER")
    from apps.telemetry.services import alert_ack

    alert_ack(alert=acked, actor=operator, note="fine")
    for page in ("/jobs/", "/bots/", "/alerts/"):
        html = client.get(page).content.decode()
        assert 'id="alerts-badge"' in html and 'href="/alerts/"' in html
        assert "2 open alerts · 1 critical" in html, page


def test_alerts_page_lists_open_first_with_fix_trace_bot_and_sms_state(viewer: Any, operator: Any) -> None:
    from apps.telemetry.services import alert_ack

    old = _raise(code="OLD_ONE", message="the old one")
    alert_ack(alert=old, actor=operator, note="handled it")
    Alert.objects.filter(pk=old.pk).update(created_at=old.created_at.replace(year=2030))  # newest, but acked
    crit = _raise(severity="CRITICAL", code="BROKER_AUTH_FAILED", message="Tradovate answers 401.", trace_id="t-42")
    Alert.objects.filter(pk=crit.pk).update(sms_status="FAILED", sms_error="Not sent after 3 attempts: 401")
    html = _signed_in(viewer).get("/alerts/").content.decode()
    assert html.index("BROKER_AUTH_FAILED") < html.index("OLD_ONE")  # open before acknowledged
    assert "Tradovate answers 401." in html and "t-42" in html and 'href="/bots/7/"' in html
    assert "Not sent after 3 attempts: 401" in html
    assert "handled it" in html and operator.username in html
    assert "Acknowledge" not in html.split("<h2>Acknowledged")[0].split("</thead>")[-1]  # no form for viewers


def test_operator_acknowledges_on_the_page_with_htmx(operator: Any) -> None:
    alert = _raise()
    client = Client(headers={"HX-Request": "true"})
    client.force_login(operator)
    page = client.get("/alerts/")
    assert f'hx-post="/alerts/{alert.pk}/ack"' in page.content.decode()
    empty = client.post(f"/alerts/{alert.pk}/ack", {"note": ""})
    assert empty.status_code == 200 and "A note is required" in empty.content.decode()
    done = client.post(f"/alerts/{alert.pk}/ack", {"note": "on it"})
    assert done.status_code == 200 and "acknowledged" in done.content.decode()
    assert "alerts-changed" in done["HX-Trigger"]
    again = client.post(f"/alerts/{alert.pk}/ack", {"note": "again"})
    assert "ALERT_ALREADY_ACKED" in again.content.decode()
    alert.refresh_from_db()
    assert (alert.status, alert.note) == ("ACKED", "on it")


def test_a_viewer_cannot_acknowledge_on_the_page(viewer: Any) -> None:
    alert = _raise()
    response = _signed_in(viewer).post(f"/alerts/{alert.pk}/ack", {"note": "x"})
    assert response.status_code == 403
    alert.refresh_from_db()
    assert alert.status == "OPEN"
