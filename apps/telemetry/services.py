from __future__ import annotations

from typing import Any

from django.utils import timezone

from apps.telemetry.models import ComponentHeartbeat


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
    ComponentHeartbeat.objects.filter(component=component, instance=instance).update(
        stopped_at=now, last_seen_at=now
    )
