"""Celery (https://docs.celeryq.dev/en/stable/userguide/configuration.html). The broker URL is set
in base.py beside REDIS_URL. Postgres is the truth for every job; the broker only carries ids."""

from __future__ import annotations

from config.env import env

CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
# JSON only: no pickle, so a message can never execute code when it is decoded.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# Results live in Postgres rows written by services, not in a result backend.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_TASK_ACKS_LATE = False  # opt in per task, only where the service has an idempotency guard
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# Beat's schedule lives in Postgres (editable in the admin); our subclass records beat's heartbeat.
CELERY_BEAT_SCHEDULER = "apps.telemetry.heartbeats.HeartbeatDatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = False
# A job lease: longer than any handler runs; after it, the watchdog takes the job back (worker lost).
JOB_LEASE_SECONDS = env.int("JOB_LEASE_SECONDS", default=120)
# How long a worker holds a job's close for the claim of its next job, which sends both in one
# statement (apps/runners/services/jobs.py, _hold_close): at most this long after its handler
# returned, a job still reads RUNNING. 0 closes every job at once, waiting for the disk.
JOB_CLOSE_HOLD_SECONDS = env.float("JOB_CLOSE_HOLD_SECONDS", default=0.05)
# Keep a worker's database connection across tasks (Celery's Django fixup otherwise closes it
# around every task: a new PostgreSQL connection per job). A connection broken by a database
# restart fails the one task that finds it broken (the job watchdog recovers that job); the next
# task gets a new connection (apps/runners/tasks.py replaces a connection psycopg marked closed).
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
# A backtest job's hard time limit (its soft limit is 90 % of it). Longer than the lease: a
# backtest extends its own lease while it works, so the watchdog only takes back a lost one.
BACKTEST_JOB_TIME_LIMIT_SECONDS = env.int("BACKTEST_JOB_TIME_LIMIT_SECONDS", default=3600)
