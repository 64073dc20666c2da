from __future__ import annotations

from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "apps.integrations"
    label = "integrations"
    verbose_name = "Integrations"

    def ready(self) -> None:
        from django.core import checks

        from apps.integrations.http import check_network_config

        checks.register(check_network_config, "integrations")
