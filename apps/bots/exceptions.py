"""The bots app's domain errors. Each carries its SPEC §2 error code and HTTP status; the API's
exception handler renders the envelope, detail fields (`fields`, `gates`) included."""

from __future__ import annotations

from typing import Any

from apps.core.exceptions import ApplicationError, StateConflict


class BotValidationError(ApplicationError):
    """Domain validation: `fields` names every bad field, like DRF's own 400s."""

    status_code = 400
    error_code = "VALIDATION_ERROR"
    default_message = "The request is not valid."
    default_suggested_fix = "Correct the fields named in `fields` and resend."

    def __init__(self, fields: dict[str, Any], message: str | None = None) -> None:
        super().__init__(message, extra={"fields": fields})


class BotNotFound(ApplicationError):
    status_code = 404
    error_code = "NOT_FOUND"
    default_message = "No bot has this id."
    default_suggested_fix = "List the bots with GET /api/bots/."


class InvalidStageTransition(StateConflict):
    error_code = "INVALID_STAGE_TRANSITION"
    default_suggested_fix = "Promote LAB→PAPER→LIVE one step at a time; demote to any lower stage or to RETIRED."


class PromotionGateFailed(StateConflict):
    error_code = "PROMOTION_GATE_FAILED"
    default_suggested_fix = "Resolve every gate with passed=false in `gates`, then promote again."

    def __init__(self, message: str, *, gates: list[dict[str, Any]]) -> None:
        super().__init__(message, extra={"gates": gates})


class BotChangedConcurrently(StateConflict):
    """The bot's config or kill latch changed between the gate evaluation and the stage change."""

    error_code = "BOT_CHANGED_CONCURRENTLY"
    default_suggested_fix = "Re-read the bot (GET /api/bots/{id}) and retry the promotion."


class BotChangeRefused(StateConflict):
    """A valid edit that the bot's stage refuses (a LIVE bot's trading identity, a retired bot)."""

    error_code = "BOT_CHANGE_REFUSED"


class LifecyclePermissionDenied(ApplicationError):
    """The caller's role passed the endpoint's permission but not the transition's (LIVE, override)."""

    status_code = 403
    error_code = "PERMISSION_DENIED"
    default_suggested_fix = "Ask an admin to do it."


class UnkillRefused(ApplicationError):
    """403: clearing a kill is a human operator's decision, never the system's (and never a viewer's)."""

    status_code = 403
    error_code = "UNKILL_REFUSED"
    default_suggested_fix = "A signed-in operator or admin must unkill the bot, with a reason."
