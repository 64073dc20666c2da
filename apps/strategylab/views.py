"""The Observatory's Lab pages: the Lab page (experiments with their status and progress, the New
experiment form, Start and Cancel) and an experiment's page (progress over both phases, the runs
that failed, the ranked candidates with their in-sample and out-of-sample figures side by side,
their verdicts and overfit warnings, how likely the winner is luck, a heatmap of the in-sample
objective over two parameters, the AI review, and Graduate).

Views parse, call one service or selector, and render (STYLE.md R7). Every action goes through the
service its API endpoint calls (apps.strategylab.services), with the same roles: a viewer reads,
an operator or an admin acts; a user without a role gets 404. The heatmap is the Backtests
matrix's: the same cells (apps.backtests.presentation.heatmap) drawn by the same partial
(backtests/matrix_detail.html#matrix-heatmap), refreshed by the same `matrix-changed` event."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import (
    HttpResponseClientRedirect,
    HttpResponseClientRefresh,
    HttpResponseStopPolling,
    trigger_client_event,
)

from apps.backtests import presentation as bt_presentation
from apps.backtests import services as backtest_services
from apps.backtests import views as bt_views
from apps.backtests.forms import DATETIME_FORMAT
from apps.backtests.selectors import OBJECTIVES
from apps.core import pages
from apps.core.exceptions import ApplicationError
from apps.core.http import HtmxHttpRequest
from apps.core.roles import Role, user_has_role
from apps.strategylab import forms, presentation, selectors, services
from apps.strategylab.exceptions import CandidateNotFound, ExperimentNotFound, ExperimentValidationError
from apps.strategylab.models import Experiment
from apps.trading import catalogue
from apps.trading import services as trading_services

LAB_PAGE = "strategylab/experiment_list.html"
EXPERIMENT_PAGE = "strategylab/experiment_detail.html"
ACTIONS = "strategylab/experiment_actions.html"
PER_PAGE = 50
# The New experiment form's windows when nothing was typed: the 30 days before today (UTC), the
# last 10 of them out of sample; walk-forward over the same 30 days in 4 folds.
DEFAULT_DAYS = 30
DEFAULT_TEST_DAYS = 10
DEFAULT_FOLDS = 4


# --- helpers ---------------------------------------------------------------------------------------


def _experiment_or_404(experiment_id: int) -> Experiment:
    try:
        return selectors.experiment_get(experiment_id=experiment_id)
    except ExperimentNotFound:
        raise Http404 from None


def _varying(experiment: Experiment) -> list[str]:
    return [name for name, values in (experiment.grid or {}).items() if len(values) > 1]


def row(experiment: Experiment) -> dict[str, Any]:
    """An experiment as one line of the Lab page's table."""
    return {
        "experiment": experiment,
        "status": presentation.status(experiment.status),
        "phase": presentation.PHASE_WORDS.get(experiment.phase, experiment.phase),
        "open": experiment.status == Experiment.Status.RUNNING,
        "percent": round((experiment.progress or 0) * 100),
        "strategy": catalogue.label(experiment.strategy_key),
        "objective": bt_presentation.objective_label(experiment.objective),
        "varying": [bt_presentation.label(n) for n in _varying(experiment)],
        "can_start": experiment.status == Experiment.Status.DRAFT,
        "can_cancel": experiment.status in (Experiment.Status.DRAFT, Experiment.Status.RUNNING),
    }


def _actions_context(request: HtmxHttpRequest, experiment: Experiment, **extra: Any) -> dict[str, Any]:
    return {
        "experiment": experiment,
        "can_operate": user_has_role(request.user, Role.OPERATOR),
        "can_start": experiment.status == Experiment.Status.DRAFT,
        "can_cancel": experiment.status in (Experiment.Status.DRAFT, Experiment.Status.RUNNING),
        **extra,
    }


# --- the Lab page ----------------------------------------------------------------------------------


def _default_windows() -> dict[str, str]:
    end = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DEFAULT_DAYS)
    split = end - timedelta(days=DEFAULT_TEST_DAYS)
    text = {k: v.strftime(DATETIME_FORMAT) for k, v in (("start", start), ("split", split), ("end", end))}
    return {
        "train.start": text["start"],
        "train.end": text["split"],
        "test.start": text["split"],
        "test.end": text["end"],
        "walk_forward.start": text["start"],
        "walk_forward.end": text["end"],
        "walk_forward.folds": str(DEFAULT_FOLDS),
    }


def create_form_context(
    *, posted: Any = None, errors: dict[str, list[str]] | None = None, refusal: ApplicationError | None = None
) -> dict[str, Any]:
    """The New experiment form: its choices, and after a refusal what was sent and each input's
    errors (with its label), in words."""
    fill = trading_services.sim_fill_model()
    errors = errors or {}
    names = (
        "name",
        "strategy_key",
        "timeframe",
        "window_mode",
        "train.start",
        "train.end",
        "test.start",
        "test.end",
        "walk_forward.folds",
        "walk_forward.start",
        "walk_forward.end",
        "walk_forward.test_fraction",
        "objective",
        "max_runs",
        "top_k",
        "fill_model.slippage_ticks",
        "fill_model.commission_per_contract",
        "initial_capital",
    )
    values: dict[str, Any] = dict.fromkeys(names, "")
    values.update(_default_windows(), window_mode="split", objective="expectancy")
    instruments: list[str] = []
    if posted is not None:
        values = {name: posted.get(name, "") for name in names}
        values["window_mode"] = values["window_mode"] if values["window_mode"] in forms.WINDOW_MODES else "split"
        instruments = list(posted.getlist("instruments"))
    # Inputs whose names carry a dot (as the API nests them) are also given with underscores: a
    # template cannot look a dotted key up.
    flat = {name.replace(".", "_"): value for name, value in values.items()}
    strategies = []
    for spec in catalogue.STRATEGIES.values():
        rows = []
        for p in spec.parameters:
            key = f"space.{spec.key}.{p.name}"
            slug = f"id-lab-{spec.key}-{p.name}".replace("_", "-")
            rows.append(
                {
                    "key": key,
                    "id": slug,
                    "name": p.name,
                    "label": bt_presentation.label(p.name),
                    "values": posted.get(f"{key}.values", "") if posted is not None else "",
                    "min": posted.get(f"{key}.min", "") if posted is not None else "",
                    "max": posted.get(f"{key}.max", "") if posted is not None else "",
                    "step": posted.get(f"{key}.step", "") if posted is not None else "",
                    "default": bt_presentation.parameter_value(p.default),
                    "help": f"{p.help}; {p.minimum} to {p.maximum}",
                    "whole": p.kind is int,
                    "errors": errors.get(key, []),
                }
            )
        strategies.append({"key": spec.key, "label": spec.label, "description": spec.description, "rows": rows})
    shown = (
        {r["key"] for s in strategies for r in s["rows"]}
        | set(names)
        | {"instruments", "parameter_space", "train", "test", "walk_forward"}
    )
    return {
        "create": {
            "values": values,
            "flat": flat,
            "errors": {k.replace(".", "_"): v for k, v in errors.items()},
            "other_errors": [(forms.error_label(k), v) for k, v in errors.items() if k not in shown],
            "refusal": refusal,
            "open": posted is not None,
            "strategies": strategies,
            "instruments": list(catalogue.INSTRUMENTS.items()),
            "chosen_instruments": instruments,
            "timeframes": list(catalogue.TIMEFRAMES),
            "default_timeframe": "5m" if "5m" in catalogue.TIMEFRAMES else catalogue.TIMEFRAMES[0],
            "objectives": bt_presentation.objective_choices(OBJECTIVES),
            "max_runs": f"{settings.LAB_MAX_RUNS:,}",
            "top_k": settings.LAB_TOP_K,
            "max_top_k": settings.LAB_MAX_TOP_K,
            "sim_slippage_ticks": fill.slippage_ticks,
            "sim_commission": fill.commission_per_contract,
            "default_capital": backtest_services.DEFAULT_INITIAL_CAPITAL,
        }
    }


def _page_number(request: HtmxHttpRequest) -> int:
    raw = request.GET.get("page", "")
    return int(raw) if raw.isdigit() and 0 < len(raw) <= 6 and int(raw) > 0 else 1


def _list_context(request: HtmxHttpRequest, **form: Any) -> dict[str, Any]:
    number = _page_number(request)
    offset = (number - 1) * PER_PAGE
    rows = list(selectors.experiment_list()[offset : offset + PER_PAGE + 1])  # one more: a next page?
    can_operate = user_has_role(request.user, Role.OPERATOR)
    context: dict[str, Any] = {
        "nav": "lab",
        "rows": [row(e) for e in rows[:PER_PAGE]],
        "page_number": number,
        "has_next": len(rows) > PER_PAGE,
        "polling": selectors.experiment_activity(),
        "can_operate": can_operate,
        "list_url": request.get_full_path() if request.method == "GET" else reverse("lab-pages:list"),
    }
    if can_operate:
        context.update(form or create_form_context())
    return context


@require_GET
@login_required
@vary_on_headers("HX-Request")
def experiment_list(request: HtmxHttpRequest) -> HttpResponse:
    """The Lab page; for htmx (its poll) the experiments table only, answered 286 (htmx stops
    polling) once no experiment runs."""
    pages.require_viewer(request)
    context = _list_context(request)
    if not request.htmx:
        return render(request, LAB_PAGE, context)
    response = render(request, f"{LAB_PAGE}#experiment-table", context)
    return response if context["polling"] else HttpResponseStopPolling(response.content)


@require_POST
@login_required
def experiment_create(request: HtmxHttpRequest) -> HttpResponse:
    """New experiment from the form: the request body POST /api/strategy-lab/experiments takes,
    through the same service. Done: to the experiment's page (a draft, with Start). Refused: the
    form again, what was typed kept and each error beside its input, in words."""
    if (denied := pages.refused_unless_operator(request)) is not None:
        return denied
    body, errors = forms.request_body(request.POST, strategies=catalogue.STRATEGIES)
    refusal: ApplicationError | None = None
    experiment = None
    try:
        if errors:
            # The form's own errors stand; the service names the rest, so all are shown at once.
            services.experiment_validate(data=body)
        else:
            experiment = services.experiment_create(data=body, actor=request.user)
    except ExperimentValidationError as exc:
        found = forms.field_errors(
            exc.extra.get("fields", {}),
            strategy_key=body.get("strategy_key"),
            parameter_names=[p.name for s in catalogue.STRATEGIES.values() for p in s.parameters],
            strategy_labels={k: s.label for k, s in catalogue.STRATEGIES.items()},
        )
        errors = {**found, **errors}
    except ApplicationError as exc:
        refusal = exc
    if experiment is not None:
        url = reverse("lab-pages:experiment", args=[experiment.pk])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    form = create_form_context(posted=request.POST, errors=errors, refusal=refusal)
    context = _list_context(request, **form)
    if request.htmx:
        return render(request, f"{LAB_PAGE}#experiment-create", context)
    return render(request, LAB_PAGE, context, status=refusal.status_code if refusal is not None else 400)


def _act(request: HtmxHttpRequest, experiment_id: int, action: str) -> HttpResponse:
    """Start or Cancel, from the Lab page's row or the experiment's page: the service of POST
    /api/strategy-lab/experiments/{id}/start (or /cancel). Done: the page again (it shows the
    experiment running, or cancelled). Refused (it changed meanwhile): why, in place of the
    buttons, with the way to the experiment as it is now."""
    if (denied := pages.refused_unless_operator(request)) is not None:
        return denied
    experiment = _experiment_or_404(experiment_id)
    try:
        if action == "start":
            services.experiment_start(experiment=experiment, actor=request.user)
        else:
            reason = request.POST.get("reason", "").strip()
            services.experiment_cancel(experiment=experiment, actor=request.user, reason=reason)
    except ApplicationError as exc:
        experiment.refresh_from_db()
        context = _actions_context(request, experiment, refusal=exc)
        if request.htmx:
            return render(request, ACTIONS, context)
        return render(
            request, EXPERIMENT_PAGE, _detail_context(request, experiment, refusal=exc), status=exc.status_code
        )
    if request.htmx:
        return HttpResponseClientRefresh()
    return redirect("lab-pages:experiment", experiment_id=experiment.pk)


@require_POST
@login_required
def experiment_start(request: HtmxHttpRequest, experiment_id: int) -> HttpResponse:
    return _act(request, experiment_id, "start")


@require_POST
@login_required
def experiment_cancel(request: HtmxHttpRequest, experiment_id: int) -> HttpResponse:
    return _act(request, experiment_id, "cancel")


# --- an experiment's page --------------------------------------------------------------------------


def _query(request: HtmxHttpRequest, **changes: Any) -> str:
    """This page's URL with its query but without the htmx `part` (and the poll's own values),
    with `changes` (None removes a key): a refresh keeps the axes the operator chose."""
    query = request.GET.copy()
    for name in ("part", "finished", "phase"):
        query.pop(name, None)
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = str(value)
    encoded = query.urlencode()
    return f"{request.path}?{encoded}" if encoded else request.path


def _heatmap_context(request: HtmxHttpRequest, experiment: Experiment, varying: list[str]) -> dict[str, Any]:
    """The in-sample objective over two chosen parameters: the Backtests matrix page's heatmap."""
    return bt_views.heatmap_context(
        request,
        grid=experiment.grid,
        varying=varying,
        objective=experiment.objective,
        cells=lambda x, y: selectors.experiment_heatmap(experiment=experiment, x=x, y=y),
        of="experiment",
    )


def _progress_context(request: HtmxHttpRequest, experiment: Experiment) -> dict[str, Any]:
    """What the progress region shows (and all its 2-second poll reads): status, phase, progress
    and the runs of each phase by status."""
    counts = selectors.experiment_run_counts(experiment=experiment)
    phases = []
    for phase, words in presentation.RUN_PHASE_WORDS.items():
        c = counts[phase]
        total = sum(c.values())
        done = c["SUCCEEDED"] + c["FAILED"] + c["CANCELLED"]
        phases.append({"key": phase, "words": words, "total": total, "done": done, "counts": c})
    finished = sum(p["done"] for p in phases)
    return {
        "experiment": experiment,
        "state": presentation.status(experiment.status),
        "phase_words": presentation.OUTCOME_WORDS.get(experiment.status)
        or presentation.PHASE_WORDS.get(experiment.phase, experiment.phase),
        "percent": round((experiment.progress or 0) * 100),
        "phases": phases,
        "finished": finished,
        "polling": experiment.status == Experiment.Status.RUNNING,
        "live_url": _query(request, part="live"),
    }


def _detail_context(request: HtmxHttpRequest, experiment: Experiment, **extra: Any) -> dict[str, Any]:
    spec = catalogue.strategy_for(experiment.strategy_key)
    varying = _varying(experiment)
    can_operate = user_has_role(request.user, Role.OPERATOR)
    succeeded = experiment.status == Experiment.Status.SUCCEEDED
    candidates = selectors.experiment_candidates(experiment=experiment)
    bots = selectors.experiment_bot_choices(experiment=experiment) if can_operate and succeeded else []
    views = []
    for candidate in candidates:
        view = presentation.candidate_view(candidate, objective=experiment.objective, varying=varying)
        view["graduable"] = can_operate and succeeded and candidate.rank is not None
        view["graduate_bots"] = [b for b in bots if b.instrument == candidate.instrument]
        view["default_name"] = f"{experiment.name} #{candidate.rank} {candidate.instrument}"[:100]
        views.append(view)
    names = [p.name for p in spec.parameters] if spec else list(experiment.grid or {})
    fill = experiment.fill_model or {}
    context: dict[str, Any] = {
        **_progress_context(request, experiment),
        **_actions_context(request, experiment),
        "nav": "lab",
        "strategy": spec,
        "strategy_label": spec.label if spec else experiment.strategy_key,
        "objective_label": bt_presentation.objective_label(experiment.objective),
        "lowest_first": OBJECTIVES.get(experiment.objective) == "asc",
        "varying": varying,
        "space_rows": presentation.space_rows(experiment.parameter_space or {}, experiment.grid or {}),
        # The parameters the space leaves at one value (the strategy's default, or one typed).
        "fixed_rows": [
            {"label": bt_presentation.label(n), "value": bt_presentation.parameter_value(v)}
            for n, v in ((experiment.combinations or [{}])[0]).items()
            if n not in varying and n not in (experiment.parameter_space or {})
        ],
        "combinations": len(experiment.combinations or []),
        "window_rows": presentation.window_rows(experiment),
        "walk_forward": bool((experiment.windows or {}).get("walk_forward")),
        "fill": fill,
        "risk_limits": [
            {"label": bt_presentation.label(k), "value": v} for k, v in (experiment.risk_limits or {}).items()
        ],
        "candidates": views,
        "ranked": [v for v in views if v["rank"] is not None],
        "error": bt_presentation.error_view(experiment.error),
        "failures": presentation.failure_rows(experiment.failures or [], varying),
        "luck": presentation.luck_view(experiment.luck or {}),
        "skipped": bt_presentation.skipped_rows(experiment.skipped or {}, names, varying),
        "can_review": can_operate and experiment.status in (Experiment.Status.SUCCEEDED, Experiment.Status.FAILED),
        "heatmap_url": _query(request, part="heatmap"),
        **_heatmap_context(request, experiment, varying),
        **extra,
    }
    return context


@require_GET
@login_required
@vary_on_headers("HX-Request")
def experiment_detail(request: HtmxHttpRequest, experiment_id: int) -> HttpResponse:
    """An experiment's page. For htmx: (?part=live) its progress, polled every 2 s while it runs,
    with `matrix-changed` triggered when runs finished since the last poll (the heatmap refreshes
    itself); when the phase changed (the in-sample ranking made its candidates) or the experiment
    finished, the page reloads, so the candidates, the luck statistics and the actions it allows
    are drawn whole. (?part=heatmap) the heatmap."""
    pages.require_viewer(request)
    experiment = _experiment_or_404(experiment_id)
    part = request.GET.get("part") if request.htmx else None
    if part == "live":
        context = _progress_context(request, experiment)
        seen_phase = request.GET.get("phase", "")
        if not context["polling"] or (seen_phase and seen_phase != experiment.phase):
            return HttpResponseClientRefresh()
        response = render(request, f"{EXPERIMENT_PAGE}#experiment-progress", context)
        seen = request.GET.get("finished", "")
        if seen.isdigit() and int(seen) != context["finished"]:
            trigger_client_event(response, "matrix-changed")
        return response
    if part == "heatmap":
        varying = _varying(experiment)
        context = {
            "polling": experiment.status == Experiment.Status.RUNNING,
            "heatmap_url": _query(request, part="heatmap"),
            "objective_label": bt_presentation.objective_label(experiment.objective),
            **_heatmap_context(request, experiment, varying),
        }
        return render(request, "backtests/matrix_detail.html#matrix-heatmap", context)
    return render(request, EXPERIMENT_PAGE, _detail_context(request, experiment))


@require_POST
@login_required
def experiment_review(request: HtmxHttpRequest, experiment_id: int) -> HttpResponse:
    """Review from the experiment's page: the service of POST .../experiments/{id}/review (an AI
    provider's written review through its metered client). Done: the review in place. Refused (no
    AI provider configured: 409 INTEGRATION_KEY_MISSING, with the way to Connections): why, in
    place of the button."""
    if (denied := pages.refused_unless_operator(request)) is not None:
        return denied
    experiment = _experiment_or_404(experiment_id)
    refusal: ApplicationError | None = None
    try:
        experiment = services.experiment_review(experiment=experiment, actor=request.user)
    except ApplicationError as exc:
        refusal = exc
    if not request.htmx:
        if refusal is None:
            return redirect(reverse("lab-pages:experiment", args=[experiment.pk]) + "#review")
        context = _detail_context(request, experiment, review_refusal=refusal)
        return render(request, EXPERIMENT_PAGE, context, status=refusal.status_code)
    context = {
        "experiment": experiment,
        "can_review": user_has_role(request.user, Role.OPERATOR),
        "review_refusal": refusal,
    }
    return render(request, f"{EXPERIMENT_PAGE}#experiment-review", context)


@require_POST
@login_required
def candidate_graduate(request: HtmxHttpRequest, candidate_id: int) -> HttpResponse:
    """Graduate from the experiment's page: the service of POST /api/strategy-lab/candidates/{id}/
    graduate: a new LAB bot with the candidate's parameters (named as typed), or a new config
    version of a bot chosen from those trading the same thing. Done: to the bot's page, which shows
    the LAB → PAPER gate reading the evidence. Refused: why, in place of the form."""
    if (denied := pages.refused_unless_operator(request)) is not None:
        return denied
    try:
        candidate = selectors.candidate_get(candidate_id=candidate_id)
    except CandidateNotFound:
        raise Http404 from None
    into = request.POST.get("into") or "new"
    data: dict[str, Any] = {}
    problem = ""
    if into == "bot":
        raw = (request.POST.get("bot_id") or "").strip()
        if raw.isdigit():
            data["bot_id"] = int(raw)
        else:
            problem = "Choose the bot that gets a new config version with these parameters, or graduate into a new bot."
    else:
        name = (request.POST.get("name") or "").strip()
        if len(name) > 100:
            problem = f"The bot's name is {len(name)} characters long; at most 100."
        elif name:
            data["name"] = name
    refusal: ApplicationError | None = None
    if problem:
        refusal = ApplicationError(
            problem,
            error_code="VALIDATION_ERROR",
            status_code=400,
            suggested_fix="Correct the form and press Graduate again.",
        )
    else:
        try:
            candidate = services.candidate_graduate(candidate=candidate, actor=request.user, **data)
        except ApplicationError as exc:
            refusal = exc
    if refusal is None and candidate.bot_id is not None:
        url = reverse("bot-page:detail", args=[candidate.bot_id])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    experiment = _experiment_or_404(candidate.experiment_id)
    context = _detail_context(request, experiment, graduate_refusal=refusal, graduate_candidate=candidate.pk)
    if request.htmx:
        view = next((v for v in context["candidates"] if v["id"] == candidate.pk), None)
        return render(
            request,
            f"{EXPERIMENT_PAGE}#candidate-graduate",
            {**context, "c": view},
        )
    return render(request, EXPERIMENT_PAGE, context, status=refusal.status_code if refusal is not None else 400)
