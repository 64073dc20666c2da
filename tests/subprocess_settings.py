"""Settings for real worker/beat/web processes that a test starts: they must use the test
database that pytest-django created (its name is passed in TRADEOPS_TEST_DB_NAME) and the real broker."""

from __future__ import annotations

import os

from config.settings.test import *  # noqa: F403
from config.settings.test import DATABASES

DATABASES["default"]["NAME"] = os.environ["TRADEOPS_TEST_DB_NAME"]
CELERY_TASK_ALWAYS_EAGER = False
HEARTBEAT_INTERVAL_SECONDS = 1
HEARTBEAT_STALE_AFTER_SECONDS = 5
