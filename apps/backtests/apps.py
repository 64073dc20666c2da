from __future__ import annotations

from django.apps import AppConfig


class BacktestsConfig(AppConfig):
    name = "apps.backtests"
    label = "backtests"
    verbose_name = "Backtests"
