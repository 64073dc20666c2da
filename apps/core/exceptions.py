"""The one domain error type. Every app subclasses ApplicationError; the API's exception handler
renders it as the SPEC §2 envelope, and HTMX views render its message and suggested fix."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    error_code = "INTERNAL_ERROR"
    status_code = 500
    default_message = "TradeOps could not complete the request."
    default_suggested_fix = "Retry; if it persists, report the trace id to the TradeOps operators."

    def __init__(
        self,
        message: str | None = None,
        *,
        error_code: str | None = None,
        status_code: int | None = None,
        suggested_fix: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.message = message or self.default_message
        if error_code is not None:
            self.error_code = error_code
        if status_code is not None:
            self.status_code = status_code
        self.suggested_fix = suggested_fix or self.default_suggested_fix
        # Detail fields of the envelope: missing_env_vars, gates, fields, replacement, ...
        self.extra = extra or {}
        super().__init__(self.message)


class StateConflict(ApplicationError):
    """A valid request that the system's current state refuses (gates, keys, kill)."""

    status_code = 409
    error_code = "STATE_CONFLICT"


class ServiceUnavailable(ApplicationError):
    """TradeOps itself cannot serve, e.g. the database is down."""

    status_code = 503
    error_code = "SERVICE_UNAVAILABLE"
    default_message = "TradeOps cannot reach a service it depends on."
    default_suggested_fix = "Check GET /api/health for which dependency is down."
