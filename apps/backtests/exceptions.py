"""The backtests app's domain errors, each with its SPEC §2 code and HTTP status."""

from __future__ import annotations

from typing import Any

from apps.core.exceptions import ApplicationError, StateConflict


class BacktestValidationError(ApplicationError):
    """400 naming every bad field at once (`fields`), like DRF's own validation errors."""

    status_code = 400
    error_code = "VALIDATION_ERROR"
    default_message = "The backtest request is not valid."
    default_suggested_fix = "Correct the fields named in `fields` and resend."

    def __init__(self, fields: dict[str, Any], message: str | None = None) -> None:
        super().__init__(message, extra={"fields": fields})


class BacktestNotFound(ApplicationError):
    status_code = 404
    error_code = "NOT_FOUND"
    default_message = "No backtest has this id."
    default_suggested_fix = "List the backtests with GET /api/backtests."


class BacktestNotCancellable(StateConflict):
    error_code = "BACKTEST_NOT_CANCELLABLE"
    default_suggested_fix = "Nothing to cancel: the backtest has finished. Run a new one if you need another result."


class BacktestMatrixNotFound(ApplicationError):
    status_code = 404
    error_code = "NOT_FOUND"
    default_message = "No backtest matrix has this id."
    default_suggested_fix = "Create one with POST /api/backtests/matrix; its answer carries the id."
