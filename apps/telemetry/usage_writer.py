"""Writes proof-of-use rows without making the metered call wait for PostgreSQL.

`record(...)` hands the row to a per-process writer thread that inserts in batches (one INSERT per
batch, so the rollup trigger also runs once per batch). The caller never blocks on the database,
and a database failure never reaches it. Nothing is dropped silently:
- a full queue (the database is slower than the calls) makes the caller write synchronously;
- a failed batch is retried, and only after repeated failures logged with the number lost;
- `flush()` runs at interpreter exit and when a Celery worker process shuts down.
A process killed with SIGKILL loses at most the last batch interval (BATCH_SECONDS) of events.

INTEGRATIONS_USAGE_WRITES = "sync" writes inline instead (the test suite uses it, so that rows are
visible, and rolled back, inside each test's transaction).
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, transaction

logger = logging.getLogger("tradeops.telemetry.usage")

BATCH_SIZE = 500
BATCH_SECONDS = 0.05
QUEUE_SIZE = 20_000
RETRIES = 3

_lock = threading.Lock()
_writer: _Writer | None = None


def _insert(rows: list[dict[str, Any]]) -> None:
    from apps.telemetry.models import IntegrationUsageEvent

    IntegrationUsageEvent.objects.bulk_create([IntegrationUsageEvent(**row) for row in rows])


def write_now(rows: list[dict[str, Any]]) -> None:
    """Insert inline. Inside a caller's transaction, in a savepoint: a failed insert must not
    poison that transaction."""
    if connection.in_atomic_block:
        with transaction.atomic(savepoint=True):
            _insert(rows)
    else:
        _insert(rows)


class _Writer:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=QUEUE_SIZE)
        self.idle = threading.Event()
        self.idle.set()
        self.thread = threading.Thread(target=self._run, name="tradeops-usage-writer", daemon=True)
        self.thread.start()

    def submit(self, row: dict[str, Any]) -> None:
        try:
            self.idle.clear()
            self.queue.put_nowait(row)
        except queue.Full:
            logger.warning("usage-event queue full; writing inline")
            write_now([row])

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            deadline = time.monotonic() + BATCH_SECONDS
            while len(batch) < BATCH_SIZE:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(self.queue.get(timeout=remaining))
                except queue.Empty:
                    break
            self._write(batch)
            for _ in batch:
                self.queue.task_done()
            if self.queue.empty():
                self.idle.set()

    def _write(self, batch: list[dict[str, Any]]) -> None:
        for attempt in range(1, RETRIES + 1):
            try:
                close_old_connections()
                _insert(batch)
                return
            except Exception:
                if attempt == RETRIES:
                    logger.exception("could not record %d usage events after %d attempts", len(batch), RETRIES)
                    return
                connection.close()
                time.sleep(0.2 * attempt)

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.queue.unfinished_tasks == 0:
                return True
            time.sleep(0.005)
        return False


def _get_writer() -> _Writer:
    global _writer
    writer = _writer
    if writer is None or writer.pid != os.getpid():  # a forked child needs its own thread
        with _lock:
            if _writer is None or _writer.pid != os.getpid():
                _writer = _Writer()
            writer = _writer
    return writer


def record(row: dict[str, Any]) -> None:
    if settings.INTEGRATIONS_USAGE_WRITES == "sync":
        write_now([row])
    else:
        _get_writer().submit(row)


def flush(timeout: float = 10.0) -> bool:
    """Wait until every submitted row is written. True when done in time."""
    writer = _writer
    if writer is None or writer.pid != os.getpid():
        return True
    return writer.flush(timeout)


atexit.register(flush)
