from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.core import context
from apps.core.errors import error_body, error_response
from apps.core.exception_handlers import log_api_error

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
