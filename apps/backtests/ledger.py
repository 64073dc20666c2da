"""The job ledger, as backtests use it: enqueue a run's job, enqueue a matrix's jobs in bulk,
cancel queued ones, close one by hand. The ledger lives in runners, above backtests in the app
order (docs/architecture.md, "Dependency direction"), so backtests never imports it: runners plugs
its ledger in when Django starts (`apps.runners.apps.RunnersConfig.ready` calls `connect`), in every
process that has the runners app installed (web, workers, beat, management commands, tests).
"""

from __future__ import annotations

from typing import Any, Protocol

from django.core.exceptions import ImproperlyConfigured


class Ledger(Protocol):
    def job_enqueue(self, **kwargs: Any) -> Any: ...
    def job_enqueue_many(self, **kwargs: Any) -> Any: ...
    def job_cancel_queued(self, **kwargs: Any) -> Any: ...
    def job_cancel(self, **kwargs: Any) -> Any: ...

    JobNotCancellable: type[Exception]


_connected: Any = None


def connect(ledger: Any) -> None:
    """Runners' ready(): the module (apps.runners.services.jobs) backtests enqueue through."""
    global _connected
    _connected = ledger


def ledger() -> Ledger:
    if _connected is None:
        raise ImproperlyConfigured(
            "No job ledger is connected to backtests: the runners app (apps.runners) must be installed."
        )
    return _connected  # type: ignore[no-any-return]
