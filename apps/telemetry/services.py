from __future__ import annotations

import logging
from typing import Any

from django.utils import timezone

from apps.core.context import ensure_trace_id
from apps.telemetry.models import ComponentHeartbeat, IntegrationUsageEvent

logger = logging.getLogger("tradeops.telemetry")


def heartbeat_record(
    *, component: str, instance: str, details: dict[str, Any] | None = None, started: bool = False
) -> None:
    """Upsert the heartbeat row in one statement (INSERT … ON CONFLICT DO UPDATE): safe under
    concurrent workers, and a restarted process (started=True) resets started_at and stopped_at."""
    now = timezone.now()
    fields = ["last_seen_at", "stopped_at", "details"] + (["started_at"] if started else [])
    ComponentHeartbeat.objects.bulk_create(
        [
            ComponentHeartbeat(
                component=component,
                instance=instance,
                started_at=now,
                last_seen_at=now,
                stopped_at=None,
                details=details or {},
            )
        ],
        update_conflicts=True,
        unique_fields=["component", "instance"],
        update_fields=fields,
    )


def heartbeat_stop(*, component: str, instance: str) -> None:
    now = timezone.now()
    ComponentHeartbeat.objects.filter(component=component, instance=instance).update(stopped_at=now, last_seen_at=now)


def usage_event_record(
    *,
    provider: str,
    operation: str,
    ok: bool,
    latency_ms: float | None,
    bot_id: int | None = None,
    error_code: str = "",
    http_status: int | None = None,
) -> None:
    """Record one proof-of-use row. Never raises and never makes the caller wait for the
    database (see apps/telemetry/usage_writer.py for how nothing is lost)."""
    from apps.telemetry import usage_writer

    try:
        usage_writer.record(
            {
                "provider": provider,
                "operation": operation,
                "status": IntegrationUsageEvent.Status.OK if ok else IntegrationUsageEvent.Status.ERROR,
                "latency_ms": latency_ms,
                "bot_id": bot_id,
                "trace_id": ensure_trace_id(),
                "error_code": error_code,
                "http_status": http_status,
                "created_at": timezone.now(),
            }
        )
    except Exception:
        logger.exception("could not record a usage event for %s.%s", provider, operation)


def usage_events_flush(*, timeout: float) -> bool:
    """Wait (at most `timeout` seconds) until this process's buffered usage events are written.
    For a page that is about to show a count including a call it just made."""
    from apps.telemetry import usage_writer

    return usage_writer.flush(timeout)


# Alerts (SPEC §11): the implementation is in apps/telemetry/alerts.py.
from apps.telemetry.alerts import AlertAlreadyAcked, AlertNoteRequired, alert_ack, alert_raise  # noqa: E402

__all__ = [
    "AlertAlreadyAcked",
    "AlertNoteRequired",
    "alert_ack",
    "alert_raise",
    "heartbeat_record",
    "heartbeat_stop",
    "usage_event_record",
    "usage_events_flush",
]
