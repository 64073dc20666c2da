from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.core import context, pages
from apps.core.errors import error_body, error_response
from apps.core.exception_handlers import log_api_error
from apps.core.exceptions import ApplicationError

logger = logging.getLogger("tradeops.api")

API_PREFIX = "/api/"


def client_ip(request: HttpRequest) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted proxy rewrites it,
    # and the deployment doc says to set REMOTE_ADDR at that proxy.
    return request.META.get("REMOTE_ADDR") or None


class TraceIdMiddleware:
    """Keeps a valid incoming X-Trace-Id or makes one, binds it for logs, tasks and audit rows,
    and returns it on every response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get(context.TRACE_ID_HEADER)
        trace_id = context.set_request_context(trace_id=incoming, client_ip=client_ip(request))
        request.trace_id = trace_id  # type: ignore[attr-defined]
        response = self.get_response(request)
        response[context.TRACE_ID_HEADER] = trace_id
        return response


@receiver(request_finished)
def _clear_request_context(**kwargs: object) -> None:
    # Cleared only when the response is closed, so Django's own "Not Found: …" log lines, written
    # after the middleware chain returns, still carry the trace id.
    context.clear_request_context()


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PREFIX)


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").startswith("application/json")


class ApiErrorEnvelopeMiddleware:
    """The last line of defence for /api/: whatever produced an error (an unmatched route, an
    oversized body, a crash outside DRF, Django's debug pages) the client gets the envelope."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not _is_api(request):
            return self.get_response(request)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and length > limit:
            log_api_error(status=413, error_code="PAYLOAD_TOO_LARGE")
            return error_response(status=413)
        response = self.get_response(request)
        if response.status_code >= 400 and not _is_json(response):
            body = error_body(status=response.status_code)
            log_api_error(status=response.status_code, error_code=body["error_code"])
            replacement = JsonResponse(body, status=response.status_code)
            if "Allow" in response:
                replacement["Allow"] = response["Allow"]
            return replacement
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not _is_api(request):
            return None
        logger.error("unhandled error on %s", request.path, exc_info=exception)
        log_api_error(status=500, error_code="INTERNAL_ERROR")
        return error_response(status=500)


class ObservatoryErrorMiddleware:
    """The one mechanism for failures outside /api/ (apps/core/pages.py has the words and templates).

    - An htmx request that is not signed in (login_required's redirect) answers `HX-Redirect` to the
      sign-in page, back to the page the operator was on, saying the action was not done; a plain
      POST that is not signed in goes there the same way (never `next=<the action's URL>`).
    - An htmx request that failed (4xx/5xx) answers an error fragment, whatever produced the error:
      Django's handlers, a view's plain 403, a 405, Django's debug pages when DEBUG is on.
    - A page request whose error response has no body (a 405) gets a TradeOps error page.
    - An ApplicationError that escapes a view is answered with its own status, code, message and fix.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _is_api(request):
            return self.get_response(request)
        response = self.get_response(request)
        htmx = pages.is_htmx(request)
        if pages.is_sign_in_redirect(response) and (htmx or request.method not in pages.SAFE_METHODS):
            return pages.signed_out_response(request)
        if response.status_code < 400 or pages.ERROR_HEADER in response:
            return response
        if htmx or (not response.streaming and not response.content):
            replacement = pages.error_response(
                request, status=response.status_code, message=pages.plain_message(response)
            )
            if "Allow" in response:
                replacement["Allow"] = response["Allow"]
            return replacement
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if _is_api(request) or not isinstance(exception, ApplicationError):
            return None
        logger.info(
            "refused %s %s: %s %s",
            request.method,
            request.path,
            exception.status_code,
            exception.error_code,
            extra={"status": exception.status_code, "error_code": exception.error_code},
        )
        return pages.error_response(
            request,
            status=exception.status_code,
            error_code=exception.error_code,
            message=exception.message,
            suggested_fix=exception.suggested_fix,
            title="Refused" if exception.status_code < 500 else None,
            **exception.extra,
        )
