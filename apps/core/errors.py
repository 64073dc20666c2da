"""The error envelope of SPEC §2 and the generic codes' defaults. Codes are extended, never renamed."""

from __future__ import annotations

from typing import Any

from django.http import JsonResponse

from apps.core.context import ensure_trace_id

# status -> (error_code, message, suggested_fix) for errors that carry no domain detail.
GENERIC_ERRORS: dict[int, tuple[str, str, str]] = {
    400: (
        "VALIDATION_ERROR",
        "The request is not valid.",
        "Correct the fields named in `fields` and resend.",
    ),
    401: (
        "AUTHENTICATION_REQUIRED",
        "Authentication credentials were not provided or are not valid.",
        "Send `Authorization: Token <token>` (create one with `python manage.py create_api_token`) or sign in.",
    ),
    403: (
        "PERMISSION_DENIED",
        "Your role does not allow this action.",
        "Ask an admin for the role this action needs (viewer, operator or admin).",
    ),
    404: ("NOT_FOUND", "Nothing exists at this address.", "Check the path and id; see /api/docs/."),
    405: (
        "METHOD_NOT_ALLOWED",
        "This method is not allowed here.",
        "See /api/docs/ for the allowed methods.",
    ),
    406: ("NOT_ACCEPTABLE", "TradeOps answers JSON only.", "Send `Accept: application/json`."),
    410: ("GONE", "This endpoint has been retired.", "Use the replacement endpoint."),
    413: (
        "PAYLOAD_TOO_LARGE",
        "The request body is larger than TradeOps accepts.",
        "Send a smaller body; the limit is DATA_UPLOAD_MAX_MEMORY_SIZE bytes.",
    ),
    415: (
        "UNSUPPORTED_MEDIA_TYPE",
        "The request body's content type is not supported.",
        "Send the body as JSON with `Content-Type: application/json`.",
    ),
    429: ("RATE_LIMITED", "Too many requests.", "Wait and retry."),
    500: (
        "INTERNAL_ERROR",
        "TradeOps failed while handling the request. Nothing was reported as done.",
        "Retry; if it persists, give the trace id to the TradeOps operators (it is in the server log).",
    ),
    503: (
        "SERVICE_UNAVAILABLE",
        "TradeOps cannot reach a service it depends on.",
        "Check GET /api/health for which dependency is down.",
    ),
}


def error_body(
    *,
    status: int,
    error_code: str | None = None,
    message: str | None = None,
    suggested_fix: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    default_code, default_message, default_fix = GENERIC_ERRORS.get(
        status, GENERIC_ERRORS[500] if status >= 500 else GENERIC_ERRORS[400]
    )
    body: dict[str, Any] = {
        "error_code": error_code or default_code,
        "message": message or default_message,
        "suggested_fix": suggested_fix or default_fix,
        "trace_id": ensure_trace_id(),
    }
    body.update({k: v for k, v in extra.items() if v is not None})
    return body


def error_response(*, status: int, **fields: Any) -> JsonResponse:
    return JsonResponse(error_body(status=status, **fields), status=status)
