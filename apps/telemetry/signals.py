from __future__ import annotations

from typing import Any

from celery.signals import worker_process_shutdown

from apps.telemetry import usage_writer


@worker_process_shutdown.connect
def _flush_usage_events(**kwargs: Any) -> None:
    # Pool processes may exit without running atexit handlers: write what is buffered first.
    usage_writer.flush(timeout=10)
