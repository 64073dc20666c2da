"""How the Observatory (every page outside /api/) answers a failure. One place, used by the error
middleware, Django's 403/404/500 handlers, the CSRF failure view and the page helpers:

- an htmx request gets an error *fragment* (code, message, fix, trace id) that static/core/tradeops.js
  shows where the request was aimed, never a whole page inside a card;
- a page request gets a TradeOps error page (extends _base.html, with the trace id and a way back);
- a request that is not signed in is sent to the sign-in page (htmx: `HX-Redirect`) with `next` set to
  the page the operator was on (never the URL of the action) and, for an action, a notice that it was
  not done.

Every error response carries `X-TradeOps-Error: <error_code>`: the script knows it can show the body,
and the middleware knows not to wrap it again."""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme

from apps.core.errors import error_body
from apps.core.roles import Role, user_has_role

logger = logging.getLogger("tradeops.pages")

ERROR_HEADER = "X-TradeOps-Error"
FRAGMENT_TEMPLATE = "errors/fragment.html"
PAGE_TEMPLATE = "errors/page.html"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

# What an operator reads on a page (the API's texts point at /api/docs/ and headers instead).
PAGE_ERRORS: dict[int, tuple[str, str, str, str]] = {
    # status: (title, error_code, message, suggested_fix)
    400: (
        "Request not valid",
        "VALIDATION_ERROR",
        "The request is not valid, so nothing was done.",
        "Go back, correct the form and try again.",
    ),
    403: (
        "Not allowed",
        "PERMISSION_DENIED",
        "Your role does not allow this, so nothing was done.",
        "Ask an admin for the role this needs (viewer reads, operator acts, admin changes keys and LIVE).",
    ),
    404: (
        "Not found",
        "NOT_FOUND",
        "Nothing exists at this address (it may have been removed).",
        "Check the address, or start again from the Overview.",
    ),
    405: (
        "Not an action address",
        "METHOD_NOT_ALLOWED",
        "This address only takes actions sent by the buttons on their page, so nothing was done.",
        "Go back to the page and use its button.",
    ),
    500: (
        "TradeOps failed",
        "INTERNAL_ERROR",
        "TradeOps failed while handling the request; nothing was reported as done.",
        "Reload the page to see the current state before trying again. If it persists, give the trace id "
        "to the TradeOps operators (the server log has the details).",
    ),
}
CSRF_FAILED = (
    "Form expired",
    "CSRF_FAILED",
    "The page's security token was missing or out of date (you may have signed in or out in another tab), "
    "so nothing was done.",
    "Reload the page and try again.",
)


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def error_context(
    *,
    status: int,
    error_code: str | None = None,
    message: str | None = None,
    suggested_fix: str | None = None,
    title: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    default = PAGE_ERRORS.get(status) or PAGE_ERRORS[500 if status >= 500 else 400]
    d_title, d_code, d_message, d_fix = default
    if status not in PAGE_ERRORS and status < 500:
        # A status without page wording of its own (409, 410, 429...): the API's generic words.
        generic = error_body(status=status)
        d_title, d_code, d_message, d_fix = (
            "Refused",
            generic["error_code"],
            generic["message"],
            generic["suggested_fix"],
        )
    body = error_body(
        status=status,
        error_code=error_code or d_code,
        message=message or d_message,
        suggested_fix=suggested_fix or d_fix,
        **extra,
    )
    return {"status": status, "title": title or d_title, "error": body}


def error_response(request: HttpRequest, *, status: int, with_request: bool = True, **fields: Any) -> HttpResponse:
    """The error as a fragment (htmx) or a TradeOps page. with_request=False renders without the
    request's context processors (the 500 handler: the database may be what failed)."""
    context = error_context(status=status, **fields)
    if is_htmx(request):
        html = render_to_string(FRAGMENT_TEMPLATE, context)
    else:
        context["trace_id"] = context["error"]["trace_id"]
        context["back_url"] = _back_url(request)
        html = render_to_string(PAGE_TEMPLATE, context, request=request if with_request else None)
    response = HttpResponse(html, status=status)
    response[ERROR_HEADER] = context["error"]["error_code"]
    return response


def _same_site_path(url: str, request: HttpRequest) -> str | None:
    """The path (and query) of url when it points at this site, else None."""
    if not url or not url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}):
        return None
    parts = urlsplit(url)
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path


def _back_url(request: HttpRequest) -> str | None:
    back = _same_site_path(request.headers.get("Referer", ""), request)
    return back if back and back != request.get_full_path() else None


def action_label(path: str) -> str:
    """The action an URL performs, in words: /bots/5/kill → "Kill", /bots/5/trading-state → "Trading state"."""
    segments = [s for s in path.split("/") if s and not s.isdigit()]
    word = segments[-1] if segments else "the action"
    return word.replace("-", " ").replace("_", " ").capitalize()


def sign_in_url(request: HttpRequest) -> str:
    """Where a request that is not signed in is sent: the sign-in page, back to the page the operator
    was on (the htmx request's HX-Current-URL, or the page that posted; never the action's own URL,
    which only takes a POST), saying which action was not done."""
    login = resolve_url(settings.LOGIN_URL)
    if is_htmx(request):
        came_from = _same_site_path(request.headers.get("HX-Current-URL", ""), request)
    elif request.method in SAFE_METHODS:
        came_from = request.get_full_path()
    else:
        came_from = _same_site_path(request.headers.get("Referer", ""), request)
    params = {"next": came_from or resolve_url(settings.LOGIN_REDIRECT_URL)}
    if request.method not in SAFE_METHODS:
        params["not_done"] = action_label(request.path)
    elif is_htmx(request):
        params["signed_out"] = "1"
    return f"{login}?{urlencode(params)}"


def is_sign_in_redirect(response: HttpResponse) -> bool:
    """login_required's answer to a request that is not signed in (a redirect to the sign-in page
    with `next`; signing out redirects there too, without it)."""
    if response.status_code not in (301, 302, 303, 307, 308) or "Location" not in response:
        return False
    location = urlsplit(response["Location"])
    return location.path == resolve_url(settings.LOGIN_URL) and "next=" in location.query


def signed_out_response(request: HttpRequest) -> HttpResponse:
    """For an htmx request that is not signed in: the browser goes to the sign-in page."""
    target = sign_in_url(request)
    if request.method not in SAFE_METHODS:
        logger.info(
            "not signed in: %s %s was not done; sent to sign-in", request.method, request.path, extra={"status": 401}
        )
    if is_htmx(request):
        # 200, not 401: htmx follows HX-Redirect whatever the status, and a 401 would only add a
        # console error in the browser on the way to the sign-in page.
        response = HttpResponse("Signed out: sign in again.", status=200, content_type="text/plain")
        response["HX-Redirect"] = target
        return response
    response = HttpResponse(status=302)
    response["Location"] = target
    return response


_LABEL = re.compile(r"^[A-Za-z][A-Za-z ]{0,39}$")


def not_done_label(params: Any) -> str:
    """The `not_done` action named in the sign-in address, if it is one of ours (a few words):
    the page never repeats arbitrary text from a link."""
    action = params.get("not_done", "")
    return action if _LABEL.match(action) else ("" if not action else "?")


def signed_out_notice(params: Any) -> str | None:
    """The sign-in page's words for an operator who was signed out (params: its GET or POST)."""
    action = not_done_label(params)
    if action == "?":
        return "You were signed out, so your last action was not done. Sign in and try again."
    if action:
        return f"You were signed out, so your last action ({action}) was not done. Sign in and try again."
    if params.get("signed_out"):
        return "You were signed out, so the page you were on stopped updating. Sign in to continue where you were."
    return None


def plain_message(response: HttpResponse) -> str | None:
    """A short plain-text body (no markup) is a message worth keeping when the response is wrapped."""
    if response.streaming:
        return None
    text = response.content.decode(response.charset or "utf-8", errors="replace").strip()
    if not text or len(text) > 300 or "<" in text:
        return None
    return text


def require_viewer(request: HttpRequest) -> None:
    """A page is seen by viewers and above; a signed-in user with no role sees nothing (404)."""
    if not user_has_role(request.user, Role.VIEWER):
        raise Http404


def refused_unless_operator(request: HttpRequest) -> HttpResponse | None:
    """None when the user may act (operator or admin, as the API); else the 403 error page or fragment."""
    if user_has_role(request.user, Role.OPERATOR):
        return None
    return error_response(
        request, status=403, message="Your role does not allow this, so nothing was done; it needs operator."
    )
