"""Settings for the `celery worker` / `celery beat` processes that the job tests start: the test
database and real broker (tests/subprocess_settings.py), short leases, and the test-only handlers."""

from __future__ import annotations

from tests.subprocess_settings import *  # noqa: F403

JOB_LEASE_SECONDS = 2
CELERY_IMPORTS = ["tests.runners.job_handlers"]
