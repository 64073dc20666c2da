from __future__ import annotations

import socket
from typing import Any

from celery import shared_task
from django.utils import timezone
from django.utils.dateparse import parse_datetime


@shared_task(bind=True, ignore_result=True)
def telemetry_queue_probe(self: Any) -> None:
    """Sent by beat every 30 s: proves beat → broker → worker end to end and measures the queue's
    latency (the worker heartbeat alone proves only that a worker process is up)."""
    from apps.telemetry.services import heartbeat_record

    published = parse_datetime(getattr(self.request, "published_at", None) or "")
    latency_ms = round((timezone.now() - published).total_seconds() * 1000, 1) if published else None
    heartbeat_record(
        component="queue",
        instance="default",
        details={"latency_ms": latency_ms, "consumed_by": socket.gethostname()},
    )
