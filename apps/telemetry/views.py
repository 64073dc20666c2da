"""The Alerts page (Observatory): open alerts first, then acknowledged ones, with an Acknowledge form
for operators. Each action calls the same service as POST /api/alerts/{id}/ack, with the same role
rule; a refusal is shown in place with its fix and trace id."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event

from apps.core import pages
from apps.core.exceptions import ApplicationError
from apps.core.http import HtmxHttpRequest
from apps.core.roles import Role, user_has_role
from apps.telemetry import selectors, services
from apps.telemetry.models import Alert

ALERT_PAGE = "telemetry/alert_list.html"
OPEN_SHOWN = 200
ACKED_PER_PAGE = 25


def _context(request: HtmxHttpRequest, **extra: Any) -> dict[str, Any]:
    open_alerts = list(selectors.alert_list(status=Alert.Status.OPEN)[: OPEN_SHOWN + 1])
    try:
        acked_page_number = max(int(request.GET.get("page", "1")), 1)
    except ValueError:
        acked_page_number = 1
    acked = Paginator(selectors.alert_list(status=Alert.Status.ACKED), ACKED_PER_PAGE).get_page(acked_page_number)
    return {
        "nav": "alerts",
        "open_alerts": open_alerts[:OPEN_SHOWN],
        "open_truncated": len(open_alerts) > OPEN_SHOWN,
        "acked_page": acked,
        "can_operate": user_has_role(request.user, Role.OPERATOR),
        "list_url": request.get_full_path() if request.method == "GET" else reverse("alert-pages:list"),
        **extra,
    }


@require_GET
@login_required
@vary_on_headers("HX-Request")
def alert_list(request: HtmxHttpRequest) -> HttpResponse:
    if not user_has_role(request.user, Role.VIEWER):
        raise Http404  # a user with no role sees nothing
    context = _context(request)
    if request.htmx:
        return render(request, f"{ALERT_PAGE}#alert-tables", context)
    return render(request, ALERT_PAGE, context)


@require_POST
@login_required
def alert_ack(request: HtmxHttpRequest, alert_id: int) -> HttpResponse:
    if not user_has_role(request.user, Role.OPERATOR):
        return pages.error_response(
            request, status=403, message="Your role does not allow this, so nothing was done; it needs operator."
        )
    alert = selectors.alert_get(alert_id=alert_id)
    if alert is None:
        raise Http404
    message, refusal = "", None
    try:
        alert = services.alert_ack(alert=alert, actor=request.user, note=request.POST.get("note", ""))
        message = f"Alert {alert.pk} ({alert.code}) acknowledged."
    except ApplicationError as exc:
        refusal = exc
    context = _context(request, message=message, refusal=refusal)
    if request.htmx:
        return trigger_client_event(render(request, f"{ALERT_PAGE}#alert-outcome", context), "alerts-changed")
    return render(request, ALERT_PAGE, context, status=refusal.status_code if refusal else 200)
