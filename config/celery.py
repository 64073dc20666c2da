from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("tradeops")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The worker heartbeat is a worker bootstep (it must run in every worker, not once per beat tick).
app.steps["worker"].add("apps.telemetry.heartbeats.WorkerHeartbeatStep")
