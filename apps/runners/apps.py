from __future__ import annotations

from django.apps import AppConfig


class RunnersConfig(AppConfig):
    name = "apps.runners"
    label = "runners"
    verbose_name = "Runners and jobs"

    def ready(self) -> None:
        # Backtests sit below runners yet enqueue their runs as ledger jobs: the ledger is passed
        # down here rather than imported upward (apps/backtests/ledger.py).
        from apps.backtests import ledger
        from apps.runners.services import jobs

        ledger.connect(jobs)
