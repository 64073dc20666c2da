"""Structured JSON logs on stdout; every line carries the trace id bound to the request or task."""

from __future__ import annotations

from config.env import env

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"trace": {"()": "apps.core.logging.TraceIdFilter"}},
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s %(trace_id)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
            "timestamp": False,
        }
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["trace"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # httpx logs every request URL at INFO; a provider that takes its key in the query string
        # would leak it. Our http module logs what matters, without URLs' query strings.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        # Celery installs its own handlers unless told not to (worker_hijack_root_logger below).
        "celery": {"level": LOG_LEVEL},
    },
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
