from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.templatetags.static import static
from django.views.decorators.csrf import csrf_exempt

from apps.core import legacy, pages
from apps.core.context import ensure_trace_id
from apps.core.errors import error_body

logger = logging.getLogger("tradeops.legacy")
logger_pages = logging.getLogger("tradeops.pages")


@csrf_exempt  # any method, any caller: the answer is always 410 and nothing is done
def legacy_function_retired(request: HttpRequest, name: str) -> JsonResponse:
    entry = legacy.lookup(name)
    trace_id = ensure_trace_id()
    logger.warning(
        "[EDGE_CALL_BLOCKED] function=%s method=%s path=%s trace_id=%s",
        name,
        request.method,
        request.path,
        trace_id,
        extra={"function": name, "classification": entry.classification.value},
    )
    fix = f"Call {entry.replacement} on TradeOps instead." if entry.replacement else entry.note or "Remove the call."
    body = error_body(
        status=410,
        error_code="EDGE_FUNCTION_RETIRED",
        message=f"The legacy function {name!r} is retired; TradeOps is the only control plane.",
        suggested_fix=fix,
        function=name,
        replacement=entry.replacement,
        note=entry.note or None,
    )
    # replacement is part of the contract even when there is none: say null, don't omit it.
    body.setdefault("replacement", None)
    return JsonResponse(body, status=410)


# --- the Observatory's error pages (config/urls.py handler403/404/500, CSRF_FAILURE_VIEW) ---------
# Under /api/ they answer the JSON envelope; elsewhere apps.core.pages renders a fragment for htmx
# and a TradeOps page otherwise. Django calls them only with DEBUG off; with DEBUG on an htmx
# request still gets the fragment (ObservatoryErrorMiddleware).


def _api_or_page(request: HttpRequest, *, status: int, **fields: Any) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(status=status, **fields), status=status)
    return pages.error_response(request, status=status, **fields)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _api_or_page(request, status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _api_or_page(request, status=404)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _api_or_page(request, status=400)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(status=500), status=500)
    # Without the request's context processors: the database may be what failed.
    return pages.error_response(request, status=500, with_request=False)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    logger_pages.warning("CSRF check failed on %s %s: %s", request.method, request.path, reason)
    title, code, message, fix = pages.CSRF_FAILED
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(status=403, error_code=code, message=message, suggested_fix=fix), status=403)
    return pages.error_response(request, status=403, title=title, error_code=code, message=message, suggested_fix=fix)


# --- sign-in and the favicon -------------------------------------------------------------------------


class SignInView(LoginView):
    """Django's sign-in, saying so when the operator was signed out in the middle of something
    (apps.core.pages.sign_in_url puts `not_done` or `signed_out` in the address)."""

    template_name = "accounts/login.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        params = self.request.POST if self.request.method == "POST" else self.request.GET
        context["signed_out_notice"] = pages.signed_out_notice(params)
        context["not_done"] = pages.not_done_label(params)
        context["signed_out"] = "1" if params.get("signed_out") else ""
        return context


def favicon(request: HttpRequest) -> HttpResponse:
    """Browsers ask /favicon.ico of any page that names no icon (the API docs, a JSON answer)."""
    return HttpResponseRedirect(static("core/favicon.svg"))
