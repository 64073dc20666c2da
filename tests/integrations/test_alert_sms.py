"""CRITICAL alerts by SMS through the metered Twilio client (issue 12 item 5): once per alert even with
two senders at once, throttled (waiting, not dropped), a failed send recorded on the alert and retried a
bounded number of times, and "not configured" said on the alert when Twilio or the numbers are missing."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from apps.integrations.alert_sms import alert_sms_dispatch
from apps.telemetry.models import Alert, IntegrationUsageEvent
from apps.telemetry.services import alert_ack, alert_raise

pytestmark = pytest.mark.django_db

TO_A = "+15558675310"
TO_B = "+15558675311"


@pytest.fixture
def sms(settings: Any, provider_stub: Any) -> Any:
    settings.ALERT_SMS_TO = [TO_A, TO_B]
    settings.ALERT_SMS_MAX_PER_WINDOW = 10
    settings.ALERT_SMS_MAX_ATTEMPTS = 3
    settings.ALERT_SMS_RETRY_SECONDS = 60
    return provider_stub("twilio")


def _critical(code: str = "RUNNER_HEARTBEAT_STALE", **kw: Any) -> Alert:
    return alert_raise(
        "CRITICAL", code, "Runner of bot 7 silent for 90 s.", "Check the worker; the bot is HALTED.", bot_id=7, **kw
    )


def _sent(stub: Any) -> list[dict[str, str]]:
    return [
        {k: v[0] for k, v in parse_qs(r.body.decode()).items()}
        for r in stub.requests
        if r.method == "POST" and r.path.endswith("/Messages.json")
    ]


def _refresh(alert: Alert) -> Alert:
    alert.refresh_from_db()
    return alert


def test_a_critical_alert_is_texted_once_to_each_number_and_metered(sms: Any) -> None:
    alert = _critical(trace_id="trace-sms-1")
    alert_raise("WARNING", "DATA_STALE", "bars late", "wait", bot_id=7)  # not critical: never texted
    result = alert_sms_dispatch()
    assert result.sent == [alert.pk]
    messages = _sent(sms)
    assert [m["To"] for m in messages] == [TO_A, TO_B]
    assert messages[0]["Body"].startswith("TradeOps CRITICAL RUNNER_HEARTBEAT_STALE bot 7: Runner of bot 7 silent")
    assert "Fix: Check the worker" in messages[0]["Body"] and messages[0]["Body"].endswith("Trace trace-sms-1")
    alert = _refresh(alert)
    assert (alert.sms_status, alert.sms_error, alert.sms_attempts) == ("SENT", "", 1)
    assert alert.sms_sent_at is not None and alert.sms_sent_to == [TO_A, TO_B]
    # Proof of use: one usage event per Twilio call, tied to the bot.
    events = IntegrationUsageEvent.objects.filter(provider="twilio", operation="sms.send")
    assert [(e.status, e.bot_id) for e in events] == [("ok", 7), ("ok", 7)]
    # A second run, or a repeat of the same open condition, sends nothing more.
    _critical()
    assert alert_sms_dispatch().sent == []
    assert len(_sent(sms)) == 2


@pytest.mark.django_db(transaction=True)
def test_two_senders_at_once_send_each_alert_once(sms: Any) -> None:
    sms.delay = 0.2
    sms.mode = "timeout"  # every answer is slowed by `delay`: the senders overlap (the client waits 10 s)
    alerts = [_critical(code=f"C{i}") for i in range(3)]
    barrier = threading.Barrier(2)
    results: list[Any] = []

    def sender() -> None:
        try:
            barrier.wait()
            results.append(alert_sms_dispatch())
        finally:
            connection.close()

    threads = [threading.Thread(target=sender) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(pk for r in results for pk in r.sent) == sorted(a.pk for a in alerts)
    assert len(_sent(sms)) == 3 * 2  # three alerts, two numbers, each exactly once
    assert {_refresh(a).sms_status for a in alerts} == {"SENT"}


def test_a_claim_is_taken_once_whoever_read_the_alert_as_waiting(sms: Any) -> None:
    """Two senders that both saw the alert waiting: only the first conditional UPDATE claims it."""
    from apps.integrations.alert_sms import alert_sms_claim

    alert = _critical()
    now = timezone.now()
    assert alert_sms_claim(alert_id=alert.pk, now=now) is not None
    assert alert_sms_claim(alert_id=alert.pk, now=now) is None
    alert = _refresh(alert)
    assert (alert.sms_status, alert.sms_attempts) == ("SENDING", 1)


def test_throttled_alerts_wait_and_go_in_a_later_window(sms: Any, settings: Any) -> None:
    settings.ALERT_SMS_TO = [TO_A]
    settings.ALERT_SMS_MAX_PER_WINDOW = 2
    settings.ALERT_SMS_WINDOW_SECONDS = 600
    alerts = [_critical(code=f"C{i}") for i in range(3)]
    result = alert_sms_dispatch()
    assert result.sent == [alerts[0].pk, alerts[1].pk] and result.throttled == [alerts[2].pk]
    waiting = _refresh(alerts[2])
    assert waiting.sms_status == "THROTTLED" and "limit" in waiting.sms_error
    assert waiting.sms_next_attempt_at > timezone.now()
    assert alert_sms_dispatch().sent == []  # still within the window
    # The window passes: the earlier sends are older than it.
    past = timezone.now() - timedelta(seconds=601)
    Alert.objects.filter(pk__in=[alerts[0].pk, alerts[1].pk]).update(sms_claimed_at=past)
    Alert.objects.filter(pk=alerts[2].pk).update(sms_next_attempt_at=past)
    assert alert_sms_dispatch().sent == [alerts[2].pk]
    assert len(_sent(sms)) == 3


def test_a_failed_send_is_recorded_retried_and_bounded(sms: Any, settings: Any) -> None:
    settings.ALERT_SMS_MAX_ATTEMPTS = 2
    alert = _critical()
    sms.mode = "bad_key"  # Twilio answers 401
    result = alert_sms_dispatch()
    assert result.failed == [alert.pk]
    alert = _refresh(alert)
    assert alert.sms_status == "RETRYING" and alert.sms_attempts == 1
    assert "Attempt 1 of 2 failed" in alert.sms_error and "Twilio" in alert.sms_error
    assert alert.sms_next_attempt_at > timezone.now()
    assert alert_sms_dispatch().failed == []  # not before its backoff
    assert IntegrationUsageEvent.objects.filter(provider="twilio", status="error").count() == 1

    Alert.objects.filter(pk=alert.pk).update(sms_next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert alert_sms_dispatch().failed == [alert.pk]
    alert = _refresh(alert)
    assert alert.sms_status == "FAILED" and alert.sms_error.startswith("Not sent after 2 attempts")
    Alert.objects.filter(pk=alert.pk).update(sms_next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert alert_sms_dispatch().failed == []  # bounded: no third attempt
    assert IntegrationUsageEvent.objects.filter(provider="twilio", status="error").count() == 2


def test_a_retry_after_a_partial_send_texts_only_the_numbers_not_yet_reached(sms: Any) -> None:
    sms.invalid_numbers = {TO_B}  # Twilio refuses the second number (400, error 21211)
    alert = _critical()
    alert_sms_dispatch()
    alert = _refresh(alert)
    assert alert.sms_status == "RETRYING" and alert.sms_sent_to == [TO_A] and "21211" in alert.sms_error
    sms.invalid_numbers = set()
    Alert.objects.filter(pk=alert.pk).update(sms_next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert alert_sms_dispatch().sent == [alert.pk]
    assert [m["To"] for m in _sent(sms)] == [TO_A, TO_B, TO_B]  # A once, B failed then sent


def test_the_failure_is_shown_on_the_alerts_page(sms: Any, viewer: Any) -> None:
    sms.mode = "bad_key"
    _critical()
    alert_sms_dispatch()
    client = Client()
    client.force_login(viewer)
    html = client.get("/alerts/").content.decode()
    assert "Send failed, will retry" in html and "Attempt 1 of 3 failed" in html


def test_without_twilio_alerts_are_stored_and_say_sms_is_not_configured(settings: Any) -> None:
    settings.ALERT_SMS_TO = [TO_A]
    alert = _critical()
    result = alert_sms_dispatch()
    assert result.not_configured == [alert.pk] and result.sent == []
    alert = _refresh(alert)
    assert alert.status == "OPEN" and alert.sms_status == "NOT_CONFIGURED"
    assert "TWILIO_ACCOUNT_SID" in alert.sms_error
    assert not IntegrationUsageEvent.objects.filter(provider="twilio").exists()


def test_without_numbers_sms_is_not_configured(provider_stub: Any, settings: Any) -> None:
    stub = provider_stub("twilio")
    settings.ALERT_SMS_TO = []
    alert = _critical()
    alert_sms_dispatch()
    alert = _refresh(alert)
    assert alert.sms_status == "NOT_CONFIGURED" and "ALERT_SMS_TO" in alert.sms_error
    assert _sent(stub) == []


def test_an_alert_acknowledged_before_its_sms_is_not_texted(sms: Any, operator: Any) -> None:
    alert = _critical()
    alert_ack(alert=alert, actor=operator, note="saw it on the desk")
    assert alert_sms_dispatch().sent == []
    assert _sent(sms) == []


def test_a_sender_that_died_mid_send_leaves_the_alert_unknown_not_resent(sms: Any) -> None:
    alert = _critical()
    Alert.objects.filter(pk=alert.pk).update(
        sms_status="SENDING", sms_claimed_at=timezone.now() - timedelta(hours=1), sms_attempts=1
    )
    result = alert_sms_dispatch()
    assert result.unknown == [alert.pk] and result.sent == []
    alert = _refresh(alert)
    assert alert.sms_status == "UNKNOWN" and "may or may not" in alert.sms_error
    assert _sent(sms) == []


def test_the_beat_entry_is_declared() -> None:
    from apps.core.management.commands.setup_periodic_tasks import PERIODIC_TASKS

    assert any(s.task == "apps.integrations.tasks.alert_sms_dispatch" for s in PERIODIC_TASKS)
