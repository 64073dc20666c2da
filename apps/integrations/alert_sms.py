"""SMS for CRITICAL alerts through Twilio (SPEC §11; issue 12 item 5).

apps.telemetry stores alerts and may not import integrations, so the Alert table is the outbox:
`alert_sms_dispatch` (a beat task, apps.integrations.tasks) picks up OPEN CRITICAL alerts waiting for
SMS and, for each one:
- claims it with a conditional UPDATE (waiting → SENDING): a second sender, or the same one run twice,
  finds nothing to claim, so an alert is texted once (R4);
- throttles: at most ALERT_SMS_MAX_PER_WINDOW alerts claimed per ALERT_SMS_WINDOW_SECONDS, counted and
  claimed under a transaction-scoped advisory lock so two senders cannot both take the last slot;
  throttled alerts wait (THROTTLED) and go in a later run;
- sends through the metered TwilioClient (each call is a usage event), one message per number in
  ALERT_SMS_TO, remembering the numbers already reached so a retry never texts them twice;
- records the outcome on the alert: SENT, or the error in sms_error and RETRYING with a backoff until
  ALERT_SMS_MAX_ATTEMPTS, then FAILED. A claim whose sender died mid-send becomes UNKNOWN (it may have
  gone): never resent, shown on the Alerts page.
Twilio not configured, or no numbers: the alert's sms_status is NOT_CONFIGURED and sms_error says what
is missing. An alert acknowledged before its SMS went is not texted any more.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.integrations import credentials as creds
from apps.integrations.errors import IntegrationError
from apps.integrations.twilio.client import E164, MAX_BODY_CHARS, TwilioClient
from apps.telemetry.alerts import SMS_WAITING
from apps.telemetry.models import Alert

logger = logging.getLogger("tradeops.alerts.sms")

# pg_advisory_xact_lock key: "alerts-sms" (any constant unique to this use).
_LOCK_KEY = 0x616C6572_74736D73 & 0x7FFFFFFFFFFFFFFF


@dataclass
class DispatchResult:
    sent: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    throttled: list[int] = field(default_factory=list)
    not_configured: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)


def sms_configuration_problem() -> str | None:
    """Why CRITICAL alerts cannot be texted now, in operator words; None when they can."""
    twilio = creds.for_provider("twilio")
    if twilio.missing:
        return (
            f"SMS is not configured: Twilio is missing {', '.join(twilio.missing)} "
            "(set them in the environment or on the Connections page)."
        )
    numbers = settings.ALERT_SMS_TO
    if not numbers:
        return "SMS is not configured: no number to text (set ALERT_SMS_TO, comma-separated E.164 numbers)."
    bad = [n for n in numbers if not E164.fullmatch(n)]
    if bad:
        return f"SMS is not configured: ALERT_SMS_TO has numbers not in E.164 form ({', '.join(bad)[:100]})."
    return None


def sms_body(alert: Alert) -> str:
    bot = f" bot {alert.bot_id}" if alert.bot_id is not None else ""
    text = f"TradeOps {alert.severity} {alert.code}{bot}: {alert.message}"
    if alert.suggested_fix:
        text += f" Fix: {alert.suggested_fix}"
    tail = f" Trace {alert.trace_id}"
    return text[: MAX_BODY_CHARS - len(tail) - 1].rstrip() + tail


def _waiting(now: datetime) -> Q:
    return Q(status=Alert.Status.OPEN, sms_status__in=SMS_WAITING) & (
        Q(sms_next_attempt_at__isnull=True) | Q(sms_next_attempt_at__lte=now)
    )


def _release_stale_claims(now: datetime, result: DispatchResult) -> None:
    stale = now - timedelta(seconds=settings.ALERT_SMS_SENDING_STALE_SECONDS)
    ids = list(
        Alert.objects.filter(sms_status=Alert.SmsStatus.SENDING, sms_claimed_at__lt=stale).values_list("id", flat=True)
    )
    if ids:
        Alert.objects.filter(id__in=ids, sms_status=Alert.SmsStatus.SENDING, sms_claimed_at__lt=stale).update(
            sms_status=Alert.SmsStatus.UNKNOWN,
            sms_error="The SMS sender stopped while sending this alert: it may or may not have been delivered, "
            "so it is not sent again. Check the Twilio message log if it matters.",
        )
        result.unknown.extend(ids)


def _claim_next(now: datetime, result: DispatchResult) -> tuple[Alert, datetime] | None:
    """Under the advisory lock: the next waiting alert claimed, or None (nothing waits, or the throttle
    is full: then every waiting alert is marked THROTTLED with when it may go)."""
    window = timedelta(seconds=settings.ALERT_SMS_WINDOW_SECONDS)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        candidate = (
            Alert.objects.filter(_waiting(now), severity=Alert.Severity.CRITICAL).order_by("created_at", "id").first()
        )
        if candidate is None:
            return None
        recent = Alert.objects.filter(sms_claimed_at__gt=now - window).order_by("sms_claimed_at")
        limit = settings.ALERT_SMS_MAX_PER_WINDOW
        claimed_recently = list(recent.values_list("sms_claimed_at", flat=True)[: max(limit, 0) + 1])
        if len(claimed_recently) >= limit:
            frees_at = claimed_recently[0] + window if claimed_recently else now + window
            waiting = Alert.objects.filter(_waiting(now), severity=Alert.Severity.CRITICAL)
            result.throttled.extend(waiting.values_list("id", flat=True))
            waiting.update(
                sms_status=Alert.SmsStatus.THROTTLED,
                sms_next_attempt_at=frees_at,
                sms_error=f"Waiting: {limit} alert SMS were sent in the last {settings.ALERT_SMS_WINDOW_SECONDS} s "
                f"(the limit); this one goes after {frees_at:%H:%M:%S} UTC.",
            )
            return None
        claimed_at = alert_sms_claim(alert_id=candidate.pk, now=now)
        if claimed_at is None:
            return None  # acknowledged meanwhile
    candidate.refresh_from_db()
    return candidate, claimed_at


def alert_sms_claim(*, alert_id: int, now: datetime) -> datetime | None:
    """Waiting → SENDING in one conditional UPDATE; the claim time, or None when another sender (or an
    acknowledgement) got there first. The one thing that makes a send happen once (R4)."""
    claimed_at = timezone.now()
    moved = Alert.objects.filter(_waiting(now), pk=alert_id).update(
        sms_status=Alert.SmsStatus.SENDING, sms_claimed_at=claimed_at, sms_attempts=F("sms_attempts") + 1
    )
    return claimed_at if moved == 1 else None


def _send(alert: Alert, claimed_at: datetime, result: DispatchResult) -> None:
    sent_to = list(alert.sms_sent_to)
    error: str | None = None
    try:
        client = TwilioClient.for_bot(alert.bot_id)
        body = sms_body(alert)
        for number in settings.ALERT_SMS_TO:
            if number in sent_to:
                continue
            client.send_sms(number, body)  # metered: one usage event per call, ok or not
            sent_to.append(number)
    except IntegrationError as exc:
        error = f"{exc.message} {exc.suggested_fix}".strip()
    except Exception as exc:  # never leave a claim behind for an unexpected failure
        logger.exception("alert %s: SMS send failed unexpectedly", alert.pk)
        error = f"Unexpected error while sending ({type(exc).__name__}); see the logs under trace {alert.trace_id}."
    mine = Alert.objects.filter(pk=alert.pk, sms_status=Alert.SmsStatus.SENDING, sms_claimed_at=claimed_at)
    now = timezone.now()
    if error is None:
        mine.update(sms_status=Alert.SmsStatus.SENT, sms_sent_at=now, sms_sent_to=sent_to, sms_error="")
        result.sent.append(alert.pk)
        return
    if alert.sms_attempts >= settings.ALERT_SMS_MAX_ATTEMPTS:
        mine.update(
            sms_status=Alert.SmsStatus.FAILED,
            sms_sent_to=sent_to,
            sms_error=f"Not sent after {alert.sms_attempts} attempts: {error}",
        )
    else:
        delay = settings.ALERT_SMS_RETRY_SECONDS * 2 ** (alert.sms_attempts - 1)
        mine.update(
            sms_status=Alert.SmsStatus.RETRYING,
            sms_sent_to=sent_to,
            sms_next_attempt_at=now + timedelta(seconds=delay),
            sms_error=f"Attempt {alert.sms_attempts} of {settings.ALERT_SMS_MAX_ATTEMPTS} failed: {error}",
        )
    result.failed.append(alert.pk)


def alert_sms_dispatch(*, max_alerts: int = 50) -> DispatchResult:
    """One sender run (see the module docstring). Safe to run concurrently with itself."""
    result = DispatchResult()
    now = timezone.now()
    _release_stale_claims(now, result)
    problem = sms_configuration_problem()
    if problem is not None:
        waiting = Alert.objects.filter(_waiting(now), severity=Alert.Severity.CRITICAL)
        result.not_configured.extend(waiting.values_list("id", flat=True))
        waiting.update(sms_status=Alert.SmsStatus.NOT_CONFIGURED, sms_error=problem)
        return result
    for _ in range(max_alerts):
        claim = _claim_next(now, result)
        if claim is None:
            break
        _send(*claim, result)
    return result


def describe(result: DispatchResult) -> dict[str, Any]:
    return {k: len(v) for k, v in result.__dict__.items()}
