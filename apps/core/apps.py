from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "apps.core"
    label = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        from apps.core import celery_signals  # noqa: F401  (connects the trace-id propagation)
        from apps.core.logging import install_trace_record_factory

        install_trace_record_factory()
