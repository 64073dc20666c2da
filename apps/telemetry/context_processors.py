from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError
from django.http import HttpRequest

from apps.telemetry.selectors import alert_open_counts

logger = logging.getLogger("tradeops.alerts")


def open_alerts(request: HttpRequest) -> dict[str, Any]:
    """The open-alert count in the Observatory header, on every page for a signed-in user. If it cannot
    be read, the header says so (None), rather than showing 0."""
    user = getattr(request, "user", None)
    if not (user and user.is_authenticated):
        return {}
    try:
        return {"alert_counts": alert_open_counts()}
    except DatabaseError:
        logger.warning("could not count open alerts for the header", exc_info=True)
        return {"alert_counts": None}
