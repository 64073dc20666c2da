from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(ignore_result=True)
def experiment_advance_all() -> list[Any]:
    """Beat's safety net: advance every RUNNING experiment whose runs have all closed (a run's own
    close normally does it; this covers a close that was lost)."""
    from apps.strategylab.services import experiment_advance_all as advance

    return advance()
