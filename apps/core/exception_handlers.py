"""The single DRF exception handler: every /api/ error becomes the SPEC §2 envelope."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error

from apps.core.errors import error_body
from apps.core.exceptions import ApplicationError

logger = logging.getLogger("tradeops.api")


def _body_for(exc: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:
    if isinstance(exc, ApplicationError):
        return (
            exc.status_code,
            error_body(
                status=exc.status_code,
                error_code=exc.error_code,
                message=exc.message,
                suggested_fix=exc.suggested_fix,
                **exc.extra,
            ),
            {},
        )
    if isinstance(exc, DjangoValidationError):
        exc = drf.ValidationError(as_serializer_error(exc))
    if isinstance(exc, Http404):
        exc = drf.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        exc = drf.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        return 413, error_body(status=413), {}
    if isinstance(exc, OperationalError | InterfaceError):
        return (
            503,
            error_body(
                status=503,
                error_code="DATABASE_UNAVAILABLE",
                message="TradeOps cannot reach its database; nothing was changed.",
                suggested_fix="Check GET /api/health and the PostgreSQL server (DATABASE_URL).",
            ),
            {},
        )

    if not isinstance(exc, drf.APIException):
        return 500, error_body(status=500), {}

    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))

    status = exc.status_code
    if isinstance(exc, drf.ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        return status, error_body(status=400, fields=detail), headers
    if isinstance(exc, drf.ParseError):
        return (
            status,
            error_body(
                status=400,
                error_code="MALFORMED_JSON",
                message=f"The request body is not valid JSON: {exc.detail}",
                suggested_fix="Send a JSON object with `Content-Type: application/json`.",
            ),
            headers,
        )
    if isinstance(exc, drf.NotAuthenticated | drf.AuthenticationFailed):
        return status, error_body(status=401, message=str(exc.detail)), headers
    if isinstance(exc, drf.MethodNotAllowed | drf.UnsupportedMediaType | drf.NotAcceptable):
        return status, error_body(status=status, message=str(exc.detail)), headers
    # PermissionDenied, NotFound, Throttled and the rest keep their generic, non-leaking message.
    return status, error_body(status=status), headers


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    status, body, headers = _body_for(exc)
    if status >= 500 and not isinstance(exc, ApplicationError):
        # The log keeps the stack trace; the response never does.
        logger.error("unhandled error in %s", context.get("view").__class__.__name__, exc_info=exc)
    elif isinstance(exc, DatabaseError):
        logger.error("database error", exc_info=exc)
    log_api_error(status=status, error_code=body["error_code"])
    return Response(body, status=status, headers=headers)


def log_api_error(*, status: int, error_code: str) -> None:
    logger.info("api error %s %s", status, error_code, extra={"status": status, "error_code": error_code})
