from __future__ import annotations

from django.apps import AppConfig


class StrategylabConfig(AppConfig):
    name = "apps.strategylab"
    label = "strategylab"
    verbose_name = "Strategy lab"
