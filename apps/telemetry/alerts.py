"""Alerts (SPEC §11): raise, acknowledge, list, count. Telemetry is the lowest app every other one
may call, so `alert_raise` lives here; the SMS for CRITICAL alerts is sent by
apps.integrations.alert_sms, which reads this table as an outbox (telemetry may not import
integrations). Re-exported from apps.telemetry.services and apps.telemetry.selectors."""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from apps.core.audit import audit_record
from apps.core.context import ensure_trace_id
from apps.core.exceptions import ApplicationError, StateConflict
from apps.telemetry.models import Alert

# While an alert is in one of these, the SMS sender may still send it.
SMS_WAITING = (Alert.SmsStatus.PENDING, Alert.SmsStatus.THROTTLED, Alert.SmsStatus.RETRYING)


class AlertAlreadyAcked(StateConflict):
    error_code = "ALERT_ALREADY_ACKED"


class AlertNoteRequired(ApplicationError):
    error_code = "VALIDATION_ERROR"
    status_code = 400


_RAISE_SQL = f"""
INSERT INTO {Alert._meta.db_table}
    (severity, code, bot_id, message, suggested_fix, trace_id, dedupe_key, created_at, last_seen_at,
     repeat_count, status, note, sms_status, sms_error, sms_attempts, sms_sent_to)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 1, 'OPEN', '', %s, '', 0, '[]'::jsonb)
ON CONFLICT (dedupe_key) WHERE status = 'OPEN'
DO UPDATE SET repeat_count = {Alert._meta.db_table}.repeat_count + 1, last_seen_at = EXCLUDED.last_seen_at
RETURNING id
"""


def alert_raise(
    severity: str,
    code: str,
    message: str,
    suggested_fix: str,
    bot_id: int | None = None,
    trace_id: str | None = None,
    dedupe_key: str | None = None,
) -> Alert:
    """Store an alert, or count a repeat of the same open condition. The condition is `dedupe_key`
    (default: code and bot): while an alert for it is OPEN, raising it again adds to repeat_count and
    last_seen_at instead of a second alert, in one statement (INSERT … ON CONFLICT on the partial
    unique index), so callers raising it every few seconds, concurrently, make one alert. Once it is
    acknowledged, the next raise opens a new one. A CRITICAL alert is queued for SMS."""
    if severity not in Alert.Severity.values:
        raise ValueError(f"unknown alert severity {severity!r}")
    key = dedupe_key or f"{code}:bot={bot_id if bot_id is not None else '-'}"
    now = timezone.now()
    sms_status = Alert.SmsStatus.PENDING if severity == Alert.Severity.CRITICAL else Alert.SmsStatus.NOT_APPLICABLE
    with connection.cursor() as cursor:
        cursor.execute(
            _RAISE_SQL,
            [
                severity,
                code[:60],
                bot_id,
                message,
                suggested_fix,
                (trace_id or ensure_trace_id())[:64],
                key[:200],
                now,
                now,
                sms_status,
            ],
        )
        (alert_id,) = cursor.fetchone()
    return Alert.objects.get(pk=alert_id)


def _snapshot(alert: Alert) -> dict[str, Any]:
    return {"status": alert.status, "note": alert.note, "sms_status": alert.sms_status}


@transaction.atomic
def alert_ack(*, alert: Alert, actor: Any, note: str) -> Alert:
    """OPEN → ACKED with the person and their note, audited. A second acknowledgement is refused
    (409): the first one's note and author stand. An SMS not yet sent is not sent any more."""
    note = (note or "").strip()
    if not note:
        raise AlertNoteRequired(
            "A note is required to acknowledge an alert.",
            suggested_fix="Say what you saw or did about it (e.g. 'restarted the runner, watching').",
            extra={"fields": {"note": ["A note is required to acknowledge an alert."]}},
        )
    before = _snapshot(alert)
    now = timezone.now()
    moved = Alert.objects.filter(pk=alert.pk, status=Alert.Status.OPEN).update(
        status=Alert.Status.ACKED, acked_by=actor, acked_at=now, note=note
    )
    if not moved:
        alert.refresh_from_db()
        who = alert.acked_by.get_username() if alert.acked_by else "someone"
        raise AlertAlreadyAcked(
            f"Alert {alert.pk} was already acknowledged by {who} at {alert.acked_at:%Y-%m-%d %H:%M:%S} UTC.",
            suggested_fix="Nothing to do: it stays acknowledged with that note. If the condition comes back, "
            "a new alert is raised.",
        )
    Alert.objects.filter(pk=alert.pk, sms_status__in=SMS_WAITING).update(
        sms_status=Alert.SmsStatus.NOT_APPLICABLE, sms_error="Not sent: acknowledged before it was sent."
    )
    alert.refresh_from_db()
    audit_record(action="alert.ack", actor=actor, target=alert, before=before, after=_snapshot(alert), reason=note)
    return alert


def alert_get(*, alert_id: int) -> Alert | None:
    return Alert.objects.select_related("acked_by").filter(pk=alert_id).first()


def alert_list(*, status: str | None = None) -> QuerySet[Alert]:
    """Newest first (stable: created_at then id)."""
    qs = Alert.objects.select_related("acked_by").order_by("-created_at", "-id")
    return qs.filter(status=status) if status else qs


def alert_open_counts() -> dict[str, int]:
    """Open alerts, in total and CRITICAL: the Observatory header, on every page (one query)."""
    counts = Alert.objects.filter(status=Alert.Status.OPEN).aggregate(
        total=Count("id"), critical=Count("id", filter=Q(severity=Alert.Severity.CRITICAL))
    )
    return {"total": counts["total"], "critical": counts["critical"]}
