from __future__ import annotations

from celery import shared_task


@shared_task(ignore_result=True, expires=30)
def alert_sms_dispatch() -> None:
    """Sent by beat every 15 s: texts OPEN CRITICAL alerts waiting for SMS (apps.integrations.alert_sms)."""
    from apps.integrations import alert_sms

    alert_sms.alert_sms_dispatch()
