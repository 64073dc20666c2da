from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from apps.core import pages
from apps.core.exceptions import ApplicationError
from apps.core.http import HtmxHttpRequest
from apps.core.roles import Role, user_has_role
from apps.integrations import registry, selectors, services
from apps.integrations.forms import CredentialsForm
from apps.integrations.registry import CATEGORY_LABELS, Category
from apps.telemetry.services import usage_events_flush


def _forbidden(request: HtmxHttpRequest, role: Role) -> HttpResponse | None:
    if user_has_role(request.user, role):
        return None
    return HttpResponse(f"Your role does not allow this; it needs {role.group_name}.", status=403)


def _card_context(request: HtmxHttpRequest, provider: str, **extra: object) -> dict[str, object]:
    """Everything a re-rendered card shows, read again after the action: the row from the durable
    state and the page's summary (swapped out of band), so no figure on the page is left behind."""
    rows = selectors.integration_status_list()
    row = next((r for r in rows if r["provider"] == provider), None)
    if row is None:
        raise Http404
    return {
        "row": row,
        "summary": selectors.integration_summary(rows),
        "oob_summary": True,
        "can_verify": user_has_role(request.user, Role.OPERATOR),
        "can_edit": user_has_role(request.user, Role.ADMIN),
        **extra,
    }


@require_GET
@login_required
def connections(request: HtmxHttpRequest) -> HttpResponse:
    pages.require_viewer(request)
    rows = selectors.integration_status_list(probe_infra=True)
    groups = [{"label": CATEGORY_LABELS[c], "rows": [r for r in rows if r["category"] == c.value]} for c in Category]
    return render(
        request,
        "integrations/connections.html",
        {
            "nav": "connections",
            "groups": groups,
            "summary": selectors.integration_summary(rows),
            "can_verify": user_has_role(request.user, Role.OPERATOR),
            "can_edit": user_has_role(request.user, Role.ADMIN),
        },
    )


@require_POST
@login_required
def verify(request: HtmxHttpRequest, provider: str) -> HttpResponse:
    if registry.get(provider) is None:
        raise Http404
    if (denied := _forbidden(request, Role.OPERATOR)) is not None:
        return denied
    result = services.integration_verify(provider=provider)
    # The outcome is already durable (IntegrationCheck); wait briefly for this process's usage
    # event too, so the card's call count includes the verify it reports.
    usage_events_flush(timeout=2.0)
    return render(request, "integrations/connections_card.html", _card_context(request, provider, result=result))


@require_POST
@login_required
def credentials(request: HtmxHttpRequest, provider: str) -> HttpResponse:
    spec = registry.get(provider)
    if spec is None:
        raise Http404
    if (denied := _forbidden(request, Role.ADMIN)) is not None:
        return denied
    form = CredentialsForm(request.POST, spec=spec)
    message, error = "", ""
    if form.is_valid() and form.entered():
        try:
            stored = services.credentials_replace(provider=provider, values=form.entered(), actor=request.user)
            message = f"Stored {', '.join(stored)} (encrypted). Now Verify."
        except ApplicationError as exc:
            error = f"{exc.message} {exc.suggested_fix}"
    else:
        error = "Enter at least one value."
    return render(
        request,
        "integrations/connections_card.html",
        _card_context(request, provider, form_message=message, form_error=error),
    )


@require_GET
@login_required
def usage_popout(request: HtmxHttpRequest, provider: str) -> HttpResponse:
    pages.require_viewer(request)
    spec = registry.get(provider)
    if spec is None:
        raise Http404
    events = selectors.usage_event_list(provider=provider, limit=25)
    return render(request, "integrations/usage_events_modal.html", {"spec": spec, "events": events})


# What each category is for the system, in the order an operator should act: the minimum that
# unblocks TradeOps first (one verified market-data provider), optional providers marked optional.
_NEEDS = {
    Category.MARKET_DATA: (
        "needed",
        "One of these providers, configured and verified, unblocks TradeOps: every bot's ticks read its bars. "
        "You do not need both.",
    ),
    Category.BROKER: (
        "LIVE only",
        "Only a LIVE bot needs a broker: the one its venue names. LAB and PAPER bots trade on the simulated venue.",
    ),
    Category.AI: (
        "optional",
        "Optional: narratives of decision traces and lab reviews. Any one provider is enough; none is needed to trade.",
    ),
    Category.NOTIFICATIONS: ("optional", "Optional: SMS alerts and SMS sign-in codes."),
    Category.INFRA: (
        "built in",
        "make run starts an embedded PostgreSQL and Redis when these are unset; set them only to use your own.",
    ),
}


@require_GET
@login_required
def keys_needed(request: HtmxHttpRequest) -> HttpResponse:
    pages.require_viewer(request)
    rows = selectors.integration_status_list()
    groups = []
    for group in selectors.keys_needed():
        category = Category(group["category"])
        in_group = [r for r in rows if r["category"] == category.value]
        need, why = _NEEDS[category]
        groups.append(
            {
                **group,
                "need": need,
                "why": why,
                "blocking": category == Category.MARKET_DATA,
                "providers": in_group,
                "connected": [r["label"] for r in in_group if r["connected"]],
                "configured": [r["label"] for r in in_group if r["configured"]],
            }
        )
    market = next(g for g in groups if g["category"] == Category.MARKET_DATA.value)
    return render(
        request,
        "integrations/keys_needed.html",
        {"nav": "connections", "groups": groups, "market": market},
    )
