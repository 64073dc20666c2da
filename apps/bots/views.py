"""The Bots page of the Observatory, and the page helpers the bot-related pages share (the bot
page itself lives in apps.runners.views: its actions start, stop and kill runners, a higher app).

Views parse, call one service or selector, and render. A refused action is an answer, not an
error page: its error code, message, details and trace id are shown where the operator clicked."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from apps.bots import forms as bot_forms
from apps.bots import selectors, services
from apps.bots.exceptions import BotNotFound, BotValidationError
from apps.bots.models import Bot
from apps.core import pages
from apps.core.exceptions import ApplicationError
from apps.core.http import HtmxHttpRequest
from apps.core.roles import Role, user_has_role

BOT_LIST = "bots/bot_list.html"
BOT_CONFIG = "bots/bot_config.html"


# --- helpers shared by the bot, runner and job pages ---------------------------------------------


def forbidden(request: HtmxHttpRequest, role: Role) -> HttpResponse | None:
    """403 unless the user holds role (the same rule as the APIs' permission classes): the error
    fragment for htmx, a TradeOps page otherwise (apps.core.pages)."""
    if user_has_role(request.user, role):
        return None
    return pages.error_response(
        request, status=403, message=f"Your role does not allow this, so nothing was done; it needs {role.group_name}."
    )


def require_viewer(request: HtmxHttpRequest) -> None:
    if not user_has_role(request.user, Role.VIEWER):
        raise Http404  # a user with no role sees nothing


def render_polled(request: HtmxHttpRequest, template: str, partial: str, context: dict[str, Any]) -> HttpResponse:
    """The page; for an htmx request (a poll, or a refresh after an action) only its live partial.
    When nothing on it can change without someone acting (context["polling"] is false) the partial
    is answered with 286, which makes htmx stop polling; it is then rendered without its polling
    trigger, so the copy swapped in does not start again (an action's event restarts it)."""
    if not request.htmx:
        return render(request, template, context)
    response = render(request, f"{template}#{partial}", context)
    if context["polling"]:
        return response
    return HttpResponseStopPolling(response.content)


def render_action(
    request: HtmxHttpRequest,
    template: str,
    partial: str,
    context: dict[str, Any],
    *,
    refusal: ApplicationError | None,
    changed_event: str,
) -> HttpResponse:
    """An action's answer. For htmx: the outcome partial — a refusal with status 200 so that htmx
    swaps it in — and `changed_event`, on which the page's live regions refresh (the audit trail
    shows the refusal or the action). Without htmx: the whole page, with the refusal's status."""
    if request.htmx:
        return trigger_client_event(render(request, f"{template}#{partial}", context), changed_event)
    return render(request, template, context, status=refusal.status_code if refusal else 200)


# --- the Bots page ---------------------------------------------------------------------------------


def _list_context(request: HtmxHttpRequest, **extra: Any) -> dict[str, Any]:
    return {
        "nav": "bots",
        "bots": selectors.bot_list(),
        "polling": selectors.bot_runners_in_motion(),
        "can_operate": user_has_role(request.user, Role.OPERATOR),
        **create_form_context(),
        **extra,
    }


def create_form_context(posted: Any = None, errors: dict[str, list[str]] | None = None, **extra: Any) -> dict[str, Any]:
    """The New bot form: its choices, and after a refusal what was sent and each field's errors."""
    errors = errors or {}
    values = {name: (posted.get(name, "") if posted is not None else "") for name in bot_forms.CREATE_FIELDS}
    return {
        "create": {
            **bot_forms.create_choices(),
            "values": values,
            "errors": errors,
            "risk_rows": bot_forms.risk_limit_rows({}, posted=posted, errors=errors),
            **extra,
        }
    }


def bot_config_context(
    bot: Bot, posted: Any = None, errors: dict[str, list[str]] | None = None, **extra: Any
) -> dict[str, Any]:
    """The bot page's Configuration section and its edit form (parameters and risk limits)."""
    errors = errors or {}
    return {
        "config": {
            "parameter_rows": bot_forms.parameter_rows(bot, posted=posted, errors=errors),
            "risk_rows": bot_forms.risk_limit_rows(bot.risk_limits or {}, posted=posted, errors=errors),
            "errors": errors,
            "reason": posted.get("reason", "") if posted is not None else "",
            "editable": bot.stage != Bot.Stage.RETIRED,
            **extra,
        }
    }


@require_GET
@login_required
@vary_on_headers("HX-Request")
def bot_list(request: HtmxHttpRequest) -> HttpResponse:
    require_viewer(request)
    return render_polled(request, BOT_LIST, "bot-table", _list_context(request))


@require_POST
@login_required
def starter_pack(request: HtmxHttpRequest) -> HttpResponse:
    if (denied := forbidden(request, Role.OPERATOR)) is not None:
        return denied
    message, refusal = "", None
    try:
        result = services.bot_starter_pack(actor=request.user)
    except ApplicationError as exc:
        refusal = exc
    else:
        if result.created:
            names = ", ".join(b.name for b in result.created)
            message = f"Created {len(result.created)} starter bot(s) at LAB on the simulated venue: {names}."
        else:
            message = "The starter pack already exists; nothing was created."
    context = _list_context(request, message=message, refusal=refusal)
    return render_action(
        request, BOT_LIST, "starter-pack-outcome", context, refusal=refusal, changed_event="bots-changed"
    )


@require_POST
@login_required
def bot_create(request: HtmxHttpRequest) -> HttpResponse:
    """New bot from the Bots page: the same service and validation as POST /api/bots; each field's
    error is shown beside its input, and what was typed stays."""
    if (denied := forbidden(request, Role.OPERATOR)) is not None:
        return denied
    refusal, bot = None, None
    try:
        bot = services.bot_create(actor=request.user, **bot_forms.create_arguments(request.POST))
    except ApplicationError as exc:
        refusal = exc
    if refusal is None:
        form = create_form_context(created=bot)
    else:
        errors = (
            bot_forms.field_errors(refusal.extra.get("fields", {})) if isinstance(refusal, BotValidationError) else {}
        )
        form = create_form_context(posted=request.POST, errors=errors, refusal=refusal)
    context = _list_context(request, **form)
    if request.htmx:
        response = render(request, f"{BOT_LIST}#bot-create", context)
        return trigger_client_event(response, "bots-changed") if refusal is None else response
    return render(request, BOT_LIST, context, status=refusal.status_code if refusal else 200)


@require_POST
@login_required
def bot_edit(request: HtmxHttpRequest, bot_id: int) -> HttpResponse:
    """Edit a bot's parameters and risk limits from its page: the same service and validation as
    PATCH /api/bots/{id} (a new config version when anything changed, audited)."""
    if (denied := forbidden(request, Role.OPERATOR)) is not None:
        return denied
    try:
        bot = selectors.bot_get(bot_id=bot_id)
    except BotNotFound:
        raise Http404 from None
    before = bot.config_version
    try:
        bot = services.bot_update(bot=bot, actor=request.user, **bot_forms.update_arguments(bot, request.POST))
    except ApplicationError as exc:
        errors = bot_forms.field_errors(exc.extra.get("fields", {})) if isinstance(exc, BotValidationError) else {}
        context = {"bot": bot, **bot_config_context(bot, posted=request.POST, errors=errors, refusal=exc)}
        refusal: ApplicationError | None = exc
    else:
        changed = bot.config_version != before
        message = (
            f"Saved as config v{bot.config_version}." if changed else f"Nothing changed; still v{bot.config_version}."
        )
        context = {"bot": bot, **bot_config_context(bot, message=message)}
        refusal = None
    context.update(
        config_versions=selectors.bot_config_version_list(bot=bot, limit=5),
        can_operate=True,
    )
    if request.htmx:
        response = render(request, BOT_CONFIG, context)
        return trigger_client_event(response, "bot-changed") if refusal is None else response
    return render(request, BOT_CONFIG, context, status=refusal.status_code if refusal else 200)
