"""bench.settings plus the proposed CELERY_DB_REUSE_MAX. Without it, Celery's Django fixup closes
the database connection before and after every task, so each task that touches Postgres opens a
new connection (about 10 ms here); with it, a worker keeps its connection across tasks."""

from __future__ import annotations

from bench.settings import *  # noqa: F403

CELERY_DB_REUSE_MAX = 1000
