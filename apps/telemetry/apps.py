from __future__ import annotations

from django.apps import AppConfig


class TelemetryConfig(AppConfig):
    name = "apps.telemetry"
    label = "telemetry"
    verbose_name = "Telemetry"

    def ready(self) -> None:
        from apps.telemetry import signals  # noqa: F401  (flushes usage events when a worker process exits)
