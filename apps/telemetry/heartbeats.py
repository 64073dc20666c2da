"""Worker and beat heartbeats, recorded in Postgres so that the system can tell whether the
scheduler is alive without asking Redis (SPEC §3 `scheduler`).

- Every worker runs WorkerHeartbeatStep: a bootstep with a thread that upserts its row every
  HEARTBEAT_INTERVAL_SECONDS and marks it stopped on a clean shutdown.
- Beat runs HeartbeatDatabaseScheduler: django-celery-beat's DatabaseScheduler that also upserts
  beat's row from its tick loop, so the heartbeat stops exactly when scheduling stops.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

from celery import bootsteps
from django.conf import settings
from django.db import close_old_connections, connection
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger("tradeops.heartbeat")


def _record(component: str, instance: str, *, started: bool = False, details: dict[str, Any] | None = None) -> None:
    from apps.telemetry.services import heartbeat_record

    close_old_connections()
    heartbeat_record(
        component=component,
        instance=instance,
        details={"pid": os.getpid(), "host": socket.gethostname(), **(details or {})},
        started=started,
    )


class WorkerHeartbeatStep(bootsteps.StartStopStep):
    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._instance = ""
        self._queues: list[str] = []

    def start(self, worker: Any) -> None:
        self._instance = worker.hostname
        # The queues it consumes (`-Q`): a `backtests` worker alive says nothing about ticks.
        self._queues = sorted(worker.app.amqp.queues.consume_from)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="tradeops-heartbeat", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = True
        while True:
            try:
                _record("worker", self._instance, started=started, details={"queues": self._queues})
                started = False
            except Exception:
                # A database blip must not kill the worker; the missing heartbeat is the signal.
                logger.exception("worker heartbeat failed")
            if self._stop.wait(settings.HEARTBEAT_INTERVAL_SECONDS):
                break
        connection.close()

    def terminate(self, worker: Any) -> None:
        # A cold shutdown calls terminate, not stop; the base class would do nothing (no self.obj).
        self.stop(worker)

    def stop(self, worker: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            from apps.telemetry.services import heartbeat_stop

            close_old_connections()
            heartbeat_stop(component="worker", instance=self._instance)
        except Exception:
            logger.exception("worker heartbeat stop failed")


class HeartbeatDatabaseScheduler(DatabaseScheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._instance = f"beat@{socket.gethostname()}"
        self._last_beat = 0.0
        self._started = True
        super().__init__(*args, **kwargs)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval = super().tick(*args, **kwargs)
        now = time.monotonic()
        if now - self._last_beat >= settings.HEARTBEAT_INTERVAL_SECONDS:
            try:
                _record("beat", self._instance, started=self._started)
                self._started = False
                self._last_beat = now
            except Exception:
                logger.exception("beat heartbeat failed")
        # Wake often enough to keep the heartbeat fresh even when nothing is due.
        return min(interval, settings.HEARTBEAT_INTERVAL_SECONDS)

    def close(self) -> None:
        try:
            from apps.telemetry.services import heartbeat_stop

            heartbeat_stop(component="beat", instance=self._instance)
        except Exception:
            logger.exception("beat heartbeat stop failed")
        super().close()
