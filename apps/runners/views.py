"""The Overview (platform status and the desk), the bot page, the Runners page, the Jobs page
and the header's Kill-all control of the Observatory.

The Overview lives here, the top layer, because its desk reads bots, runners, fills and decisions
(apps.runners.selectors.desk) beside the platform status of apps.integrations.

The bot page lives here, not in apps.bots: its actions start, stop, restart and kill runners
(this app), besides promoting and unkilling through the bots services, and a lower app never
imports a higher one. Each action calls the same service as its API endpoint, with the same role
rule (viewer reads, operator acts, the service itself asks for an admin for LIVE and overrides);
a refusal is rendered with its code, message, details and trace id."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event

from apps.backtests import selectors as backtest_selectors
from apps.backtests import views as backtest_views
from apps.bots import selectors as bot_selectors
from apps.bots import services as bot_services
from apps.bots.exceptions import BotNotFound
from apps.bots.models import Bot
from apps.bots.views import bot_config_context, forbidden, render_action, render_polled, require_viewer
from apps.core.exceptions import ApplicationError
from apps.core.http import HtmxHttpRequest
from apps.core.roles import Role, user_has_role
from apps.integrations import infra, registry
from apps.integrations import selectors as integration_selectors
from apps.integrations.registry import CATEGORY_LABELS, Category
from apps.runners.models import Job
from apps.runners.selectors import desk as desk_selectors
from apps.runners.selectors import jobs as job_selectors
from apps.runners.selectors import runners as runner_selectors
from apps.runners.services import jobs as job_services
from apps.runners.services import runners as runner_services
from apps.telemetry import selectors as telemetry_selectors
from apps.trading import kill_switch
from apps.trading import services as trading_services

BOT_PAGE = "runners/bot_detail.html"
RUNNER_LIST = "runners/runner_list.html"
JOB_LIST = "runners/job_list.html"
JOBS_PER_PAGE = 50
OVERVIEW = "integrations/overview.html"
# What an action that changes bots elsewhere tells every live region on the page (HX-Trigger).
BOTS_CHANGED_EVENTS = ("bots-changed", "bot-changed", "runners-changed")


# --- the Overview ----------------------------------------------------------------------------------


def _integration_summary(status: dict[str, Any]) -> list[dict[str, Any]]:
    """Per category, from the very rows the status verdict and the Connections cards are computed
    from (status["integrations"]["providers"]), so the counts and the cards cannot disagree."""
    providers = status["integrations"]["providers"]
    out = []
    for category in Category:
        rows = [
            (name, row) for name, row in providers.items() if (spec := registry.get(name)) and spec.category == category
        ]
        out.append(
            {
                "category": category.value,
                "label": CATEGORY_LABELS[category],
                "total": len(rows),
                "configured": sum(r["configured"] for _, r in rows),
                "connected": sum(r["connected"] for _, r in rows),
                "optional": category in (Category.AI, Category.NOTIFICATIONS),
            }
        )
    return out


def _overview_context() -> dict[str, Any]:
    # The probes are metered and recorded (apps/integrations/infra.py): the cards below and the
    # status's Redis/PostgreSQL rows say the same thing, and the probes count as their use.
    database, redis = infra.probe("postgres"), infra.probe("redis")
    probes = {"postgres": database, "redis": redis}
    status = integration_selectors.system_status(probes=probes) if database["ok"] else None
    providers = status["integrations"]["providers"] if status else {}
    return {
        "nav": "overview",
        "database": database,
        "redis": redis,
        "scheduler": telemetry_selectors.scheduler_state() if database["ok"] else None,
        "status": status,
        # The infrastructure cards show the same rows the integrations count is made of.
        "postgres_row": providers.get("postgres"),
        "redis_row": providers.get("redis"),
        "integration_summary": _integration_summary(status) if status else [],
        "desk": desk_selectors.desk_overview() if database["ok"] else None,
    }


@require_GET
@login_required
@vary_on_headers("HX-Request")
def overview(request: HtmxHttpRequest) -> HttpResponse:
    context = _overview_context()
    context["can_operate"] = user_has_role(request.user, Role.OPERATOR)
    template = OVERVIEW
    if request.htmx:
        template += "#platform-status"
    return render(request, template, context)


# --- the header's Kill-all control ---------------------------------------------------------------


def _kill_all_answer(request: HtmxHttpRequest, context: dict[str, Any], status: int) -> HttpResponse:
    """The header's kill-all panel with the outcome; every live region then refreshes."""
    if not request.htmx:
        return render(request, "core/kill_all_page.html", context, status=status)
    response = render(request, "core/kill_all_panel.html", context)
    badge = render_to_string(
        "core/kill_all_badge.html", {"kill_all": kill_switch.kill_all_state(), "oob": True}, request=request
    )
    response.content += badge.encode()
    for event in BOTS_CHANGED_EVENTS:
        trigger_client_event(response, event)
    return response


def _reason_required(reason: str, *, what: str, fix: str) -> None:
    if not reason:
        raise ApplicationError(
            f"{what} needs a reason.", error_code="VALIDATION_ERROR", status_code=400, suggested_fix=fix
        )


@require_POST
@login_required
def kill_all(request: HtmxHttpRequest) -> HttpResponse:
    """Kill every bot (the same service as POST /api/system/kill-all), with a reason and a ticked
    confirmation: the global latch first, then each bot. Answers the panel with its outcome."""
    if (denied := forbidden(request, Role.OPERATOR)) is not None:
        return denied
    reason = _reason(request)
    context: dict[str, Any] = {"kill_all_posted": request.POST}
    try:
        _reason_required(reason, what="Kill-all", fix="Say why every bot must stop, then press Kill all bots again.")
        if request.POST.get("confirm") != "on":
            raise ApplicationError(
                "Kill-all was not confirmed; nothing was killed.",
                error_code="VALIDATION_ERROR",
                status_code=400,
                suggested_fix="Tick “Yes, kill every bot”, then press Kill all bots again.",
            )
        done = runner_services.system_kill_all(actor=request.user, reason=reason)
    except ApplicationError as exc:
        context.update(kill_all_refusal=exc, kill_all_refused=True)
        status = exc.status_code
    else:
        latched = sum(r.latched for r in done.reports)
        stopped = sum(r.runner_stopped for r in done.reports)
        context["kill_all_message"] = (
            f"Kill-all is engaged: no bot can start or send an order until it is released. "
            f"Killed {latched} bot{'s' if latched != 1 else ''} ({len(done.reports) - latched} already killed); "
            f"{stopped} runner{'s' if stopped != 1 else ''} stopped. Each stays killed until unkilled on its page."
        )
        status = 200
    return _kill_all_answer(request, context, status)


@require_POST
@login_required
def kill_all_release(request: HtmxHttpRequest) -> HttpResponse:
    """Release the global kill latch (the same service as POST /api/system/kill-all/release), with a
    reason. Bots stay killed: the answer names them, each needs its own unkill."""
    if (denied := forbidden(request, Role.OPERATOR)) is not None:
        return denied
    reason = _reason(request)
    context: dict[str, Any] = {"release_posted": request.POST}
    try:
        _reason_required(
            reason, what="Releasing kill-all", fix="Say why trading may resume, then press Release kill-all again."
        )
        _state, still_killed = runner_services.system_kill_all_release(actor=request.user, reason=reason)
    except ApplicationError as exc:
        context.update(release_refusal=exc, release_refused=True)
        status = exc.status_code
    else:
        context["release_message"] = "Kill-all is released: bots may be started again. " + (
            f"{len(still_killed)} bot{'s are' if len(still_killed) != 1 else ' is'} still killed; "
            "unkill each on its page, with a reason."
            if still_killed
            else "No bot is killed."
        )
        context["still_killed"] = Bot.objects.filter(pk__in=still_killed).order_by("pk")
        status = 200
    return _kill_all_answer(request, context, status)


# --- the bot page ----------------------------------------------------------------------------------


BOT_BACKTESTS_SHOWN = 10


def bot_backtests_context(bot: Bot) -> dict[str, Any]:
    """The bot page's Backtests section: the bot's newest backtests, and the evidence the LAB→PAPER
    gate reads — the gate itself, from the same gate table a promotion checks (a bot past LAB is
    not gated by it any more)."""
    backtests = backtest_selectors.backtest_list(filters={"bot_id": bot.pk})[:BOT_BACKTESTS_SHOWN]
    gate = None
    if bot.stage == Bot.Stage.LAB:
        gates = bot_selectors.bot_promotion_gates(bot=bot, to_stage=Bot.Stage.PAPER)
        gate = next((g for g in gates if g["name"] == "backtest_promotable"), None)
    return {
        "backtest_rows": [backtest_views.row(b) for b in backtests],
        "backtest_gate": gate,
        "backtests_polling": backtest_selectors.backtest_activity(bot_id=bot.pk),
    }


def _bot_context(request: HtmxHttpRequest, bot_id: int, **extra: Any) -> dict[str, Any]:
    try:
        runtime = runner_selectors.bot_runtime_get(bot_id=bot_id)
    except BotNotFound:
        raise Http404 from None
    return {
        "nav": "bots",
        **runtime.__dict__,
        "polling": runtime.in_motion,
        "can_operate": user_has_role(request.user, Role.OPERATOR),
        "is_admin": user_has_role(request.user, Role.ADMIN),
        "trading_states": ("ACTIVE", "REDUCING", "HALTED"),
        **bot_config_context(runtime.bot),
        **bot_backtests_context(runtime.bot),
        **extra,
    }


@require_GET
@login_required
@vary_on_headers("HX-Request")
def bot_detail(request: HtmxHttpRequest, bot_id: int) -> HttpResponse:
    """The bot page; for htmx its live status region, or (?part=actions) its actions panel, which
    refreshes when bots change elsewhere (a kill-all from the header), or (?part=backtests) its
    Backtests section, polled while one of its backtests is queued or running."""
    require_viewer(request)
    context = _bot_context(request, bot_id)
    if request.htmx and request.GET.get("part") == "actions":
        return render(request, f"{BOT_PAGE}#bot-actions", context)
    if request.htmx and request.GET.get("part") == "backtests":
        return render_polled(request, BOT_PAGE, "bot-backtests", {**context, "polling": context["backtests_polling"]})
    return render_polled(request, BOT_PAGE, "bot-status", context)


def bot_action(act: Callable[[HtmxHttpRequest, Bot], dict[str, Any]]) -> Callable[..., HttpResponse]:
    """A bot-page action (POST, operator only): act runs one service call and answers the outcome's
    context; the actions panel renders the outcome or the refusal (any ApplicationError, with its
    code, details and trace id), and the page's live region then refreshes."""

    @require_POST
    @login_required
    @wraps(act)
    def view(request: HtmxHttpRequest, bot_id: int) -> HttpResponse:
        if (denied := forbidden(request, Role.OPERATOR)) is not None:
            return denied
        try:
            bot = bot_selectors.bot_get(bot_id=bot_id)
        except BotNotFound:
            raise Http404 from None
        outcome: dict[str, Any] = {}
        refusal = None
        try:
            outcome = act(request, bot)
        except ApplicationError as exc:
            refusal = exc
            # The refused form comes back as it was sent (its reason, its choices), like a bound form.
            outcome = {"refused_form": act.__name__.removeprefix("bot_"), "posted": request.POST}
        context = _bot_context(request, bot_id, refusal=refusal, **outcome)
        return render_action(request, BOT_PAGE, "bot-actions", context, refusal=refusal, changed_event="bot-changed")

    return view


def _reason(request: HtmxHttpRequest) -> str:
    return request.POST.get("reason", "").strip()


@bot_action
def bot_start(request: HtmxHttpRequest, bot: Bot) -> dict[str, Any]:
    runner = runner_services.runner_start(bot=bot, actor=request.user)
    state = f"{runner.status} in {runner.mode} mode, generation {runner.generation}"
    return {"message": f"Started: the runner is {state}."}


@bot_action
def bot_stop(request: HtmxHttpRequest, bot: Bot) -> dict[str, Any]:
    runner = runner_services.runner_stop(bot=bot, actor=request.user, reason=_reason(request))
    return {"message": f"Stopped: the runner is {runner.status}, generation {runner.generation}."}


@bot_action
def bot_restart(request: HtmxHttpRequest, bot: Bot) -> dict[str, Any]:
    runner = runner_services.runner_restart(bot=bot, actor=request.user)
    state = f"{runner.status} in {runner.mode} mode, generation {runner.generation}"
    return {"message": f"Restarted: the runner is {state}."}


@bot_action
def bot_promote(request: HtmxHttpRequest, bot: Bot) -> dict[str, Any]:
    change = bot_services.bot_promote(
        bot=bot,
        to_stage=request.POST.get("to_stage", ""),
        reason=_reason(request),
        actor=request.user,
        override=request.POST.get("override") == "on",
    )
    forced = " by admin override" if change.override else ""
    return {"message": f"Promoted {change.from_stage} → {change.to_stage}{forced}.", "gates": change.gates}


@bot_action
def bot_demote(request: HtmxHttpRequest, bot: Bot) -> dict[str, Any]:
    to_stage = request.POST.get("to_stage", "")
    if not to_stage:
        raise ApplicationError(
            "Nothing was demoted: no stage was chosen.",
            error_code="VALIDATION_ERROR",
            status_code=400,
            suggested_fix="Choose the stage to demote to, give a reason, and press Demote.",
        )
    if to_stage == Bot.Stage.RETIRED and request.POST.get("confirm_retire") != "on":
        # RETIRED is final (no promotion out of it): the page asks for a ticked confirmation.
        raise ApplicationError(
            "Nothing was demoted: retiring a bot is final and was not confirmed.",
            error_code="VALIDATION_ERROR",
            status_code=400,
            suggested_fix="Tick “Yes, retire it for good” and press Demote again, or choose a lower stage instead.",
        )
    # The runners service: a runner the new stage cannot keep is stopped too.
    change = runner_services.bot_demote(bot=bot, to_stage=to_stage, reason=_reason(request), actor=request.user)
    return {"message": f"Demoted {change.from_stage} → {change.to_stage}; the autonomy tier is LOCKED."}


@bot_action
def bot_kill(request: HtmxHttpRequest, bot: Bot) -> dict[str, Any]:
    report = runner_services.bot_kill(
        bot=bot, actor=request.user, reason=_reason(request), flatten=request.POST.get("flatten") == "on"
    )
    latch = "Killed" if report.latched else "Already killed (the first kill's reason is kept)"
    runner = "the runner was stopped" if report.runner_stopped else "no runner was running"
    return {"message": f"{latch}; {runner}. Flatten: {report.flatten}."}


@bot_action
def bot_unkill(request: HtmxHttpRequest, bot: Bot) -> dict[str, Any]:
    cleared = bot_services.bot_unkill(bot=bot, actor=request.user, reason=_reason(request))
    if cleared:
        return {"message": "Unkilled: the kill latch is clear. Nothing was restarted; start the runner when ready."}
    return {"message": "The bot was not killed; nothing changed."}


@bot_action
def bot_reconcile(request: HtmxHttpRequest, bot: Bot) -> dict[str, Any]:
    report = runner_services.bot_reconcile(bot=bot, actor=request.user)
    details = report.report
    said = f"Reconcile {report.pk}: {report.status}"
    if details.get("failure"):
        said += f" — {details['failure']}"
    elif details.get("unsettled"):
        said += f" — {len(details['unsettled'])} difference(s) it could not settle; the bot is HALTED"
    elif details.get("pending"):
        said += f" — {len(details['pending'])} order(s) still in flight, not at the broker yet; reconcile again shortly"
    elif details.get("fixed"):
        said += f" — {len(details['fixed'])} fixed"
    return {"message": said + "."}


@bot_action
def bot_trading_state(request: HtmxHttpRequest, bot: Bot) -> dict[str, Any]:
    state = request.POST.get("state", "")
    if state not in ("ACTIVE", "REDUCING", "HALTED"):
        raise ApplicationError("Choose ACTIVE, REDUCING or HALTED.", error_code="VALIDATION_ERROR", status_code=400)
    done = trading_services.trading_state_change(
        bot_id=bot.pk, state=state, reason=_reason(request), actor=request.user
    )
    return {"message": f"Trading state {state}." if done["changed"] else f"Already {state}; nothing changed."}


# --- the Runners page -----------------------------------------------------------------------------


@require_GET
@login_required
@vary_on_headers("HX-Request")
def runner_list(request: HtmxHttpRequest) -> HttpResponse:
    require_viewer(request)
    context = {
        "nav": "runners",
        "runners": runner_selectors.runner_list(),
        "polling": runner_selectors.runner_activity(),
    }
    return render_polled(request, RUNNER_LIST, "runner-table", context)


# --- the Jobs page ---------------------------------------------------------------------------------


class JobFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "any status"), *Job.Status.choices])
    type = forms.CharField(required=False, max_length=40)
    runner = forms.IntegerField(required=False, min_value=1)
    bot = forms.IntegerField(required=False, min_value=1)
    page = forms.IntegerField(required=False, min_value=1)


def _jobs_context(request: HtmxHttpRequest, **extra: Any) -> dict[str, Any]:
    form = JobFilterForm(request.GET)
    form.is_valid()  # a bad value is named on the page and ignored; the valid filters apply
    f = form.cleaned_data
    scope = {"runner_id": f.get("runner"), "bot_id": f.get("bot")}
    page = job_selectors.job_page(
        page=f.get("page") or 1,
        per_page=JOBS_PER_PAGE,
        status=f.get("status") or None,
        type=f.get("type") or None,
        **scope,
    )
    return {
        "nav": "jobs",
        "form": form,
        "filters": f,
        "page": page,
        "job_types": sorted(job_services.JOB_HANDLERS),
        "runners": runner_selectors.runner_list(),
        "polling": job_selectors.job_activity(**scope),
        "can_operate": user_has_role(request.user, Role.OPERATOR),
        # A POST (an action without htmx) renders this page too: its poll must ask the list.
        "list_url": request.get_full_path() if request.method == "GET" else reverse("job-pages:list"),
        **extra,
    }


@require_GET
@login_required
@vary_on_headers("HX-Request")
def job_list(request: HtmxHttpRequest) -> HttpResponse:
    require_viewer(request)
    return render_polled(request, JOB_LIST, "job-table", _jobs_context(request))


def _job_action(request: HtmxHttpRequest, job_id: int, act: Callable[[Job], str]) -> HttpResponse:
    if (denied := forbidden(request, Role.OPERATOR)) is not None:
        return denied
    job = job_selectors.job_get(job_id=job_id)
    if job is None:
        raise Http404
    message, refusal = "", None
    try:
        message = act(job)
    except ApplicationError as exc:
        refusal = exc
    context = _jobs_context(request, message=message, refusal=refusal)
    return render_action(request, JOB_LIST, "job-outcome", context, refusal=refusal, changed_event="jobs-changed")


@require_POST
@login_required
def job_retry(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    def act(job: Job) -> str:
        job = job_services.job_retry(job=job, actor=request.user)
        return f"Job {job.pk} ({job.type}) is {job.status} again, attempts reset to 0."

    return _job_action(request, job_id, act)


@require_POST
@login_required
def job_cancel(request: HtmxHttpRequest, job_id: int) -> HttpResponse:
    def act(job: Job) -> str:
        reason = request.POST.get("reason", "").strip() or (request.htmx.prompt or "").strip()
        job = job_services.job_cancel(job=job, actor=request.user, reason=reason)
        return f"Job {job.pk} ({job.type}) is {job.status}."

    return _job_action(request, job_id, act)
