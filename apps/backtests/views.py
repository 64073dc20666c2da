"""The Observatory's Backtests pages: the list with its New backtest and New matrix forms and the
recent matrices, a backtest's page (its progress while it runs, then its figures, verdict, charts,
decisions and trades), and a matrix's page (progress over its runs, the runs ranked by its
objective, a heatmap of the objective over two of its parameters, the combinations it skipped).

Views parse, call one service or selector, and render (STYLE.md R7). A backtest is created and
cancelled through the same services as POST /api/backtests and POST /api/backtests/{id}/cancel,
a matrix through those of POST /api/backtests/matrix and its cancel, with the same roles: a viewer
reads, an operator or an admin acts. Bots sit above backtests (docs/architecture.md, "Dependency
direction"): the bot row is reached through the Backtest's foreign key (or by its label), never
imported; the strategy catalogue is data in apps/trading/catalogue.py, below.

The page helpers of apps.bots.views (role checks, polled partials) are not imported for the same
reason; the few lines they need are here, with the same rules: a user without a role gets 404, an
action by a role that may not act gets the 403 error fragment or page, and a polled region whose
content can no longer change without someone acting is answered 286 (htmx stops polling)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, timedelta
from typing import Any

from django import forms as django_forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import (
    HttpResponseClientRedirect,
    HttpResponseClientRefresh,
    HttpResponseStopPolling,
    trigger_client_event,
)

from apps.backtests import charts, presentation, selectors, services
from apps.backtests import forms as backtest_forms
from apps.backtests.exceptions import BacktestMatrixNotFound, BacktestNotFound, BacktestValidationError
from apps.backtests.models import OPEN_STATUSES, Backtest, BacktestMatrix, Status
from apps.core import pages
from apps.core.errors import error_body
from apps.core.exceptions import ApplicationError
from apps.core.http import HtmxHttpRequest
from apps.core.roles import Role, user_has_role
from apps.market.arrays import bar_arrays
from apps.trading import catalogue
from apps.trading import services as trading_services

BACKTEST_LIST = "backtests/backtest_list.html"
BACKTEST_PAGE = "backtests/backtest_detail.html"
MATRIX_PAGE = "backtests/matrix_detail.html"
PER_PAGE = 50
MATRIX_RESULTS_PER_PAGE = 50
# Matrices listed on the Backtests page, and offered by its filter.
RECENT_MATRICES = 10
FILTER_MATRICES = 30
TRADES_PER_PAGE = 50
# The New backtest form's window when nothing was typed: the 30 days before today (UTC).
DEFAULT_WINDOW_DAYS = 30


# --- helpers ---------------------------------------------------------------------------------------


def _backtest_or_404(backtest_id: int) -> Backtest:
    try:
        return selectors.backtest_get(backtest_id=backtest_id)
    except BacktestNotFound:
        raise Http404 from None


def row(backtest: Backtest) -> dict[str, Any]:
    """A backtest as one line of a table (the Backtests list, the bot page's section)."""
    metrics = backtest.metrics or {}
    verdict = presentation.verdict(backtest.classification or {})
    error = presentation.error_view(backtest.error)
    return {
        "backtest": backtest,
        "strategy": catalogue.label(backtest.strategy_key),
        "status": presentation.STATUS_WORDS.get(backtest.status, backtest.status),
        "open": backtest.status in OPEN_STATUSES,
        "percent": round((backtest.progress or 0) * 100),
        "verdict": verdict,
        "net_pnl": presentation.money(metrics["net_pnl"]) if metrics.get("net_pnl") is not None else None,
        "net_tone": _tone(metrics.get("net_pnl")),
        "trades": metrics.get("trades"),
        "error": error,
    }


def _tone(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return "ok" if number > 0 else "bad" if number < 0 else ""


# --- the Backtests page ----------------------------------------------------------------------------


class ListFilterForm(django_forms.Form):
    bot = django_forms.IntegerField(required=False, min_value=1)
    matrix = django_forms.IntegerField(required=False, min_value=1)
    status = django_forms.ChoiceField(required=False, choices=[("", "any status"), *Status.choices])
    page = django_forms.IntegerField(required=False, min_value=1)


def _default_window() -> tuple[str, str]:
    end = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DEFAULT_WINDOW_DAYS)
    return start.strftime(backtest_forms.DATETIME_FORMAT), end.strftime(backtest_forms.DATETIME_FORMAT)


def create_form_context(
    request: HtmxHttpRequest,
    bots: list[Any],
    *,
    posted: Any = None,
    errors: dict[str, list[str]] | None = None,
    refusal: ApplicationError | None = None,
) -> dict[str, Any]:
    """The New backtest form: its choices, and after a refusal what was sent and each input's
    errors (with its label), or, opened from a bot's page (?run_bot=<id>), that bot chosen."""
    fill = trading_services.sim_fill_model()
    start, end = _default_window()
    run_bot = request.GET.get("run_bot", "")
    values: dict[str, Any] = {
        "source": "bot" if (run_bot or bots) else "strategy",
        "bot_id": run_bot,
        "strategy_key": "",
        "instrument": "",
        "timeframe": "",
        "start": start,
        "end": end,
        "fill_model.slippage_ticks": "",
        "fill_model.commission_per_contract": "",
        "initial_capital": "",
    }
    if posted is not None:
        values = {name: posted.get(name, "") for name in values}
    # The cost inputs' names carry a dot (fill_model.slippage_ticks, as the API nests them), which
    # a template cannot look up: they are also given under their last part.
    for name in ("slippage_ticks", "commission_per_contract"):
        values[name] = values[f"fill_model.{name}"]
    errors = errors or {}
    strategies = []
    for spec in catalogue.STRATEGIES.values():
        rows = []
        for p in spec.parameters:
            key = f"parameters.{spec.key}.{p.name}"
            rows.append(
                {
                    "key": key,
                    "id": f"id-bt-{spec.key}-{p.name}".replace("_", "-"),
                    "name": p.name,
                    "value": posted.get(key, "") if posted is not None else "",
                    "default": p.default,
                    "help": f"{p.help}; {p.minimum} to {p.maximum}",
                    "step": "1" if p.kind is int else "any",
                    "errors": errors.get(key, []),
                }
            )
        strategies.append({"key": spec.key, "label": spec.label, "description": spec.description, "rows": rows})
    shown = {r["key"] for s in strategies for r in s["rows"]} | set(values) | {"parameters"}
    return {
        "create": {
            "values": values,
            "errors": errors,
            # Errors about something the form has no input for (say a bot's stored risk limits).
            "other_errors": [(backtest_forms.error_label(k), v) for k, v in errors.items() if k not in shown],
            "slippage_errors": errors.get("fill_model.slippage_ticks", []),
            "commission_errors": errors.get("fill_model.commission_per_contract", []),
            "refusal": refusal,
            "open": bool(posted is not None or run_bot),
            "bots": bots,
            "strategies": strategies,
            "instruments": list(catalogue.INSTRUMENTS.items()),
            "timeframes": list(catalogue.TIMEFRAMES),
            "default_timeframe": "5m" if "5m" in catalogue.TIMEFRAMES else catalogue.TIMEFRAMES[0],
            "sim_slippage_ticks": fill.slippage_ticks,
            "sim_commission": fill.commission_per_contract,
            "default_capital": services.DEFAULT_INITIAL_CAPITAL,
        }
    }


def _list_context(request: HtmxHttpRequest, **forms: Any) -> dict[str, Any]:
    """The Backtests page: the filtered list, the recent matrices and, for an operator, the New
    backtest and New matrix forms (`forms`: a refused one, as it was sent)."""
    filters = ListFilterForm(request.GET)
    filters.is_valid()  # a bad value is named on the page and ignored; the valid filters apply
    f = filters.cleaned_data
    number = f.get("page") or 1
    qs = selectors.backtest_list(
        filters={"bot_id": f.get("bot"), "status": f.get("status") or None, "matrix_id": f.get("matrix")}
    )
    offset = (number - 1) * PER_PAGE
    rows = list(qs.select_related("bot")[offset : offset + PER_PAGE + 1])  # one more: is there a next page?
    bots = selectors.backtest_bot_choices(retired=True)
    can_operate = user_has_role(request.user, Role.OPERATOR)
    matrices = selectors.matrix_recent(limit=max(RECENT_MATRICES, FILTER_MATRICES))
    chosen = f.get("matrix")
    filter_matrices = [(m.pk, matrix_title(m)) for m in matrices[:FILTER_MATRICES]]
    if chosen and chosen not in {pk for pk, _ in filter_matrices}:
        filter_matrices.append((chosen, f"matrix #{chosen}"))
    context = {
        "nav": "backtests",
        "filter_form": filters,
        "filters": f,
        "rows": [row(b) for b in rows[:PER_PAGE]],
        "page_number": number,
        "has_next": len(rows) > PER_PAGE,
        "filter_bots": bots,
        "filter_matrices": filter_matrices,
        "statuses": Status.choices,
        "polling": selectors.backtest_activity(bot_id=f.get("bot")),
        "can_operate": can_operate,
        "list_url": request.get_full_path() if request.method == "GET" else reverse("backtest-pages:list"),
        **_matrices_context(matrices[:RECENT_MATRICES]),
    }
    if can_operate:
        active = [b for b in bots if b.stage != "RETIRED"]
        context.update(forms.get("create") or create_form_context(request, active))
        context.update(forms.get("matrix") or matrix_form_context(request, active))
    return context


def matrix_title(matrix: BacktestMatrix) -> str:
    """A matrix named in a list: "#3 Trend following, 8 runs"."""
    key = (matrix.base_config or {}).get("strategy_key", "")
    return f"#{matrix.pk} {catalogue.label(key)}, {matrix.runs} run{'s' if matrix.runs != 1 else ''}"


def _matrices_context(matrices: list[BacktestMatrix]) -> dict[str, Any]:
    lines = []
    for m in matrices:
        counts = getattr(m, "counts", {})
        lines.append(
            {
                "matrix": m,
                "strategy": catalogue.label((m.base_config or {}).get("strategy_key", "")),
                "status": presentation.STATUS_WORDS.get(m.status, m.status),
                "open": m.status in OPEN_STATUSES,
                "percent": round((m.progress or 0) * 100),
                "finished": counts.get(Status.SUCCEEDED, 0),
                "failed": counts.get(Status.FAILED, 0),
                "cancelled": counts.get(Status.CANCELLED, 0),
                "objective": presentation.objective_label(m.objective),
                "varying": [presentation.label(name) for name, values in (m.grid or {}).items() if len(values) > 1],
            }
        )
    return {"matrices": lines, "matrices_polling": any(line["open"] for line in lines)}


@require_GET
@login_required
@vary_on_headers("HX-Request")
def backtest_list(request: HtmxHttpRequest) -> HttpResponse:
    """The Backtests page; for htmx (its polls) the table only, or (?part=matrices) the recent
    matrices, each answered 286 once nothing in it runs."""
    pages.require_viewer(request)
    context = _list_context(request)
    if not request.htmx:
        return render(request, BACKTEST_LIST, context)
    if request.GET.get("part") == "matrices":
        response = render(request, f"{BACKTEST_LIST}#matrix-table", context)
        return response if context["matrices_polling"] else HttpResponseStopPolling(response.content)
    response = render(request, f"{BACKTEST_LIST}#backtest-table", context)
    return response if context["polling"] else HttpResponseStopPolling(response.content)


@require_POST
@login_required
def backtest_create(request: HtmxHttpRequest) -> HttpResponse:
    """New backtest from the form: the request body POST /api/backtests takes, through the same
    service. Done: to the backtest's page (its progress). Refused: the form again, what was typed
    kept and each error beside its input, in words."""
    if (denied := pages.refused_unless_operator(request)) is not None:
        return denied
    body, errors = backtest_forms.request_body(request.POST, strategy_keys=catalogue.STRATEGIES)
    refusal: ApplicationError | None = None
    backtest = None
    try:
        if errors:
            # The form's own errors stand; the service names the rest, so all are shown at once.
            services.backtest_validate(data=body)
        else:
            backtest = services.backtest_create(data=body, actor=request.user)
    except BacktestValidationError as exc:
        strategy = catalogue.strategy_for(body.get("strategy_key"))
        names = [p.name for s in catalogue.STRATEGIES.values() for p in s.parameters]
        found = backtest_forms.field_errors(
            exc.extra.get("fields", {}), strategy_key=strategy.key if strategy else None, parameter_names=names
        )
        errors = {**found, **errors}
    except ApplicationError as exc:
        refusal = exc
    if backtest is not None:
        url = reverse("backtest-pages:detail", args=[backtest.pk])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    bots = selectors.backtest_bot_choices()
    form = create_form_context(request, bots, posted=request.POST, errors=errors, refusal=refusal)
    context = _list_context(request, create=form)
    if request.htmx:
        return render(request, f"{BACKTEST_LIST}#backtest-create", context)
    status = refusal.status_code if refusal is not None else 400
    return render(request, BACKTEST_LIST, context, status=status)


# --- a backtest's page -----------------------------------------------------------------------------


def _trades_context(backtest: Backtest, after: int) -> dict[str, Any]:
    trades, next_after = selectors.backtest_trades_page(backtest=backtest, limit=TRADES_PER_PAGE, after=after)
    return {
        "trades": [presentation.trade_row(t) for t in trades],
        "trades_after": after,
        "trades_next": next_after,
    }


def _after(request: HtmxHttpRequest) -> int:
    raw = request.GET.get("after", "")
    return int(raw) if raw.isdigit() and len(raw) <= 10 else 0


def _detail_context(request: HtmxHttpRequest, backtest: Backtest, **extra: Any) -> dict[str, Any]:
    spec = catalogue.strategy_for(backtest.strategy_key)
    bot = backtest.bot if backtest.bot_id else None
    context: dict[str, Any] = {
        "nav": "backtests",
        "backtest": backtest,
        "line": row(backtest),
        "can_operate": user_has_role(request.user, Role.OPERATOR),
        "polling": backtest.status in OPEN_STATUSES,
        "strategy": spec,
        "parameters": presentation.parameter_rows(backtest.parameters or {}, spec.parameters if spec else ()),
        "risk_limits": [{"label": presentation.label(k), "value": v} for k, v in (backtest.risk_limits or {}).items()],
        "bot": bot,
        "bot_moved_on": bot is not None and bot.config_version != backtest.config_version,
        **extra,
    }
    if backtest.status == Status.SUCCEEDED:
        metrics = backtest.metrics or {}
        context.update(
            cards=presentation.metric_cards(metrics),
            verdict=presentation.verdict(backtest.classification or {}),
            decision_rows=presentation.decision_rows(backtest.decisions or {}),
            chart_series=charts.equity_series(backtest.equity_curve or []),
            **_trades_context(backtest, _after(request)),
        )
    return context


@require_GET
@login_required
@vary_on_headers("HX-Request")
def backtest_detail(request: HtmxHttpRequest, backtest_id: int) -> HttpResponse:
    """A backtest's page. For htmx: its progress (the poll while it runs; once it has finished the
    page reloads, so the result, its charts and the actions it allows are drawn whole), or
    (?part=trades) a page of its trades."""
    pages.require_viewer(request)
    backtest = _backtest_or_404(backtest_id)
    if request.htmx and request.GET.get("part") == "trades":
        context = {"backtest": backtest, **_trades_context(backtest, _after(request))}
        return render(request, f"{BACKTEST_PAGE}#backtest-trades", context)
    if request.htmx and request.GET.get("part") == "progress":
        if backtest.status not in OPEN_STATUSES:
            return HttpResponseClientRefresh()
        return render(request, f"{BACKTEST_PAGE}#backtest-progress", _detail_context(request, backtest))
    return render(request, BACKTEST_PAGE, _detail_context(request, backtest))


@require_POST
@login_required
def backtest_cancel(request: HtmxHttpRequest, backtest_id: int) -> HttpResponse:
    """Cancel from the backtest's page: the same service as POST /api/backtests/{id}/cancel. Done:
    the page again (it shows the cancelled backtest). Refused (it finished meanwhile): why, in
    place, with the way to its result."""
    if (denied := pages.refused_unless_operator(request)) is not None:
        return denied
    backtest = _backtest_or_404(backtest_id)
    try:
        services.backtest_cancel(backtest=backtest, actor=request.user, reason=request.POST.get("reason", "").strip())
    except ApplicationError as exc:
        context = _detail_context(request, backtest, refusal=exc)
        if request.htmx:
            return render(request, f"{BACKTEST_PAGE}#backtest-actions", context)
        return render(request, BACKTEST_PAGE, context, status=exc.status_code)
    if request.htmx:
        return HttpResponseClientRefresh()
    return redirect("backtest-pages:detail", backtest_id=backtest.pk)


@require_GET
@login_required
def backtest_prices(request: HtmxHttpRequest, backtest_id: int) -> HttpResponse:
    """The price chart's data as JSON: the window's stored bars as at most charts.MAX_CANDLES
    candles, and an entry and an exit marker per trade (the first charts.MAX_MARKED_TRADES). A
    finished backtest's bars never change (the store is write-once), so the browser may keep it."""
    pages.require_viewer(request)
    backtest = _backtest_or_404(backtest_id)
    if backtest.status != Status.SUCCEEDED:
        return JsonResponse(
            error_body(
                status=409,
                error_code="BACKTEST_NOT_FINISHED",
                message=f"Backtest {backtest.pk} is {backtest.status}: only a finished backtest has trades to chart.",
                suggested_fix="Wait for it to finish; its page reloads by itself.",
            ),
            status=409,
        )
    try:
        arrays = bar_arrays(
            instrument=backtest.instrument, timeframe=backtest.timeframe, start=backtest.start, end=backtest.end
        )
    except ApplicationError as exc:
        return JsonResponse(
            error_body(
                status=exc.status_code, error_code=exc.error_code, message=exc.message, suggested_fix=exc.suggested_fix
            ),
            status=exc.status_code,
        )
    drawn = charts.candles(arrays.ts, arrays.open, arrays.high, arrays.low, arrays.close, tick_size=arrays.tick_size)
    marks, more = selectors.backtest_trade_marks(backtest=backtest, limit=charts.MAX_MARKED_TRADES)
    response = JsonResponse(
        {
            "candles": drawn.rows,
            "markers": charts.trade_markers(marks, drawn.times),
            "bars": drawn.bars,
            "bars_per_candle": drawn.bars_per_candle,
            "marked_trades": len(marks),
            "trades": (backtest.metrics or {}).get("trades"),
            "more_trades": more,
            "tick_size": str(arrays.tick_size),
        }
    )
    response["Cache-Control"] = "private, max-age=3600"
    return response


# --- New matrix ------------------------------------------------------------------------------------


def matrix_form_context(
    request: HtmxHttpRequest,
    bots: list[Any],
    *,
    posted: Any = None,
    errors: dict[str, list[str]] | None = None,
    refusal: ApplicationError | None = None,
) -> dict[str, Any]:
    """The New matrix form: its choices (each bot with its strategy and current parameters, so the
    grid inputs of that strategy show with the bot's values as their base), and after a refusal
    what was sent with each input's errors, in words."""
    fill = trading_services.sim_fill_model()
    start, end = _default_window()
    errors = errors or {}
    values: dict[str, Any] = {
        "source": "bot" if bots else "strategy",
        "bot_id": "",
        "strategy_key": "",
        "timeframe": "",
        "objective": "expectancy",
        "slippage_ticks": "",
        "commission_per_contract": "",
        "initial_capital": "",
    }
    instruments: list[str] = []
    windows = [{"start": start, "end": end}]
    if posted is not None:
        values.update({name: posted.get(name, "") for name in ("source", "bot_id", "strategy_key", "timeframe")})
        values["objective"] = posted.get("objective", "") or "expectancy"
        for name in ("slippage_ticks", "commission_per_contract"):
            values[name] = posted.get(f"fill_model.{name}", "")
        values["initial_capital"] = posted.get("initial_capital", "")
        instruments = list(posted.getlist("instruments"))
        windows = backtest_forms.window_rows(posted) or windows
        while windows and not windows[-1]["start"] and not windows[-1]["end"]:
            windows.pop()  # empty rows at the end; those between keep their place (errors name rows)
    # One empty row more than sent (at least two): room for another window without JavaScript.
    windows = [*windows, *[{"start": "", "end": ""}] * max(1, 2 - len(windows))]
    window_rows = [
        {
            "index": i,
            "start": w["start"],
            "end": w["end"],
            "start_errors": errors.get(f"windows.{i}.start", []),
            "end_errors": errors.get(f"windows.{i}.end", []),
            "errors": errors.get(f"windows.{i}", []),
        }
        for i, w in enumerate(windows)
    ]
    strategies = []
    for spec in catalogue.STRATEGIES.values():
        rows = []
        for p in spec.parameters:
            key = f"grid.{spec.key}.{p.name}"
            rows.append(
                {
                    "key": key,
                    "id": f"id-mx-{spec.key}-{p.name}".replace("_", "-"),
                    "name": p.name,
                    "value": posted.get(key, "") if posted is not None else "",
                    "default": presentation.parameter_value(p.default),
                    "help": f"{p.help}; {p.minimum} to {p.maximum}",
                    "errors": errors.get(key, []),
                }
            )
        strategies.append({"key": spec.key, "label": spec.label, "description": spec.description, "rows": rows})
    shown = (
        {r["key"] for s in strategies for r in s["rows"]}
        | {f"windows.{w['index']}{part}" for w in window_rows for part in ("", ".start", ".end")}
        | {
            "bot_id",
            "strategy_key",
            "timeframe",
            "instruments",
            "windows",
            "grid",
            "objective",
            "fill_model.slippage_ticks",
            "fill_model.commission_per_contract",
            "initial_capital",
        }
    )
    return {
        "matrix_form": {
            "values": values,
            "errors": errors,
            "other_errors": [(backtest_forms.matrix_error_label(k), v) for k, v in errors.items() if k not in shown],
            "slippage_errors": errors.get("fill_model.slippage_ticks", []),
            "commission_errors": errors.get("fill_model.commission_per_contract", []),
            "refusal": refusal,
            "open": posted is not None,
            "bots": [
                {
                    "bot": b,
                    "strategy": b.strategy_key,
                    # The grid inputs' placeholders when this bot is chosen (backtests.js).
                    "parameters": json.dumps(
                        {k: presentation.parameter_value(v) for k, v in (b.parameters or {}).items()}
                    ),
                }
                for b in bots
            ],
            "strategies": strategies,
            "instruments": list(catalogue.INSTRUMENTS.items()),
            "chosen_instruments": instruments,
            "timeframes": list(catalogue.TIMEFRAMES),
            "default_timeframe": "5m" if "5m" in catalogue.TIMEFRAMES else catalogue.TIMEFRAMES[0],
            "windows": window_rows,
            "objectives": presentation.objective_choices(selectors.OBJECTIVES),
            "max_runs": f"{services.MATRIX_MAX_RUNS:,}",
            "sim_slippage_ticks": fill.slippage_ticks,
            "sim_commission": fill.commission_per_contract,
            "default_capital": services.DEFAULT_INITIAL_CAPITAL,
        }
    }


@require_POST
@login_required
def matrix_create(request: HtmxHttpRequest) -> HttpResponse:
    """New matrix from the form: the request body POST /api/backtests/matrix takes, through the
    same service. Done: to the matrix's page (its progress). Refused: the form again, what was typed
    kept and each error beside its input, in words (more than 10,000 runs says how many)."""
    if (denied := pages.refused_unless_operator(request)) is not None:
        return denied
    bots = selectors.backtest_bot_choices()
    body, errors, rows = backtest_forms.matrix_request_body(
        request.POST, strategy_keys=catalogue.STRATEGIES, bot_strategies={b.pk: b.strategy_key for b in bots}
    )
    refusal: ApplicationError | None = None
    matrix = None
    try:
        if errors:
            # The form's own errors stand; the service names the rest, so all are shown at once.
            services.matrix_validate(data=body)
        else:
            matrix = services.matrix_create(data=body, actor=request.user)
    except BacktestValidationError as exc:
        key = body.get("strategy_key") or next((b.strategy_key for b in bots if b.pk == body.get("bot_id")), None)
        found = backtest_forms.matrix_field_errors(
            exc.extra.get("fields", {}),
            strategy_key=key,
            parameter_names=[p.name for s in catalogue.STRATEGIES.values() for p in s.parameters],
            strategy_labels={k: s.label for k, s in catalogue.STRATEGIES.items()},
            window_rows=rows,
        )
        errors = {**found, **errors}
    except ApplicationError as exc:
        refusal = exc
    if matrix is not None:
        url = reverse("backtest-pages:matrix", args=[matrix.pk])
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)
    form = matrix_form_context(request, bots, posted=request.POST, errors=errors, refusal=refusal)
    context = _list_context(request, matrix=form)
    if request.htmx:
        return render(request, f"{BACKTEST_LIST}#matrix-create", context)
    return render(request, BACKTEST_LIST, context, status=refusal.status_code if refusal is not None else 400)


# --- a matrix's page -------------------------------------------------------------------------------


def _matrix_or_404(matrix_id: int) -> BacktestMatrix:
    try:
        return selectors.matrix_get(matrix_id=matrix_id)
    except BacktestMatrixNotFound:
        raise Http404 from None


def _query(request: HtmxHttpRequest, **changes: Any) -> str:
    """This page's URL with its query but without the htmx `part` (and the poll's `finished`),
    with `changes` (None removes a key)."""
    query = request.GET.copy()
    for name in ("part", "finished"):
        query.pop(name, None)
    for name, value in changes.items():
        if value is None:
            query.pop(name, None)
        else:
            query[name] = str(value)
    encoded = query.urlencode()
    return f"{request.path}?{encoded}" if encoded else request.path


def _number(values: list[Any]) -> list[Any]:
    """Grid values in numeric order (a heatmap's axis)."""
    return sorted(values, key=lambda v: float(v))


def heatmap_context(
    request: HtmxHttpRequest,
    *,
    grid: dict[str, list[Any]],
    varying: list[str],
    objective: str,
    cells: Callable[[str, str | None], list[dict[str, Any]]],
    of: str = "matrix",
) -> dict[str, Any]:
    """A heatmap's axes (chosen in the URL: ?x=&y=&cell=; a choice that is not a parameter the grid
    varies is said and replaced by the first ones) and its cells, read by `cells(x, y)`: a matrix's,
    or a lab experiment's in-sample runs (`of` names which in what is said)."""
    x, y = request.GET.get("x") or "", request.GET.get("y") or ""
    aggregate = request.GET.get("cell") or "best"
    ignored = []
    if x and x not in varying:
        ignored.append(f"{presentation.label(x)} is not a parameter this {of} varies")
        x = ""
    if not x:
        # The first parameter the grid varies, unless the operator chose it down.
        x = next((name for name in varying if name != y), varying[0] if varying else "")
    if y and y != "none" and y not in varying:
        ignored.append(f"{presentation.label(y)} is not a parameter this {of} varies")
        y = ""
    elif y and y == x:
        ignored.append(f"{presentation.label(y)} is already across, so it cannot also be down")
        y = ""
    if aggregate not in presentation.HEATMAP_AGGREGATES:
        ignored.append(f"“{aggregate}” is not a way to fill a cell")
        aggregate = "best"
    if not y:
        y = next((name for name in varying if name != x), "none")
    context: dict[str, Any] = {
        "axis_x": x,
        "axis_y": y,
        "axis_cell": aggregate,
        "axis_ignored": ignored,
        "axis_choices": [(name, presentation.label(name)) for name in varying],
        "cell_choices": list(presentation.HEATMAP_AGGREGATES.items()),
        "heat": None,
    }
    if x:
        y_axis = None if y == "none" else y
        context["heat"] = presentation.heatmap(
            objective=objective,
            lowest_first=selectors.OBJECTIVES.get(objective) == "asc",
            x_values=_number(grid[x]),
            y_values=_number(grid[y_axis]) if y_axis else None,
            cells=cells(x, y_axis),
            aggregate=aggregate,
        )
        context["axis_x_label"] = presentation.label(x)
        context["axis_y_label"] = presentation.label(y_axis) if y_axis else ""
    return context


def _heatmap_context(request: HtmxHttpRequest, matrix: BacktestMatrix, varying: list[str]) -> dict[str, Any]:
    return heatmap_context(
        request,
        grid=matrix.grid,
        varying=varying,
        objective=matrix.objective,
        cells=lambda x, y: selectors.matrix_heatmap(matrix=matrix, x=x, y=y),
    )


def _progress_context(request: HtmxHttpRequest, matrix: BacktestMatrix) -> dict[str, Any]:
    """What the progress region shows (and all its 2-second poll reads): status, progress, counts."""
    state = selectors.matrix_state(matrix=matrix)
    counts = state["counts"]
    return {
        "matrix": matrix,
        "state": state,
        "status_words": presentation.STATUS_WORDS.get(state["status"], state["status"]),
        "percent": round(state["progress"] * 100),
        "counts": counts,
        "finished": counts[Status.SUCCEEDED] + counts[Status.FAILED] + counts[Status.CANCELLED],
        "polling": state["status"] in OPEN_STATUSES,
        "live_url": _query(request, part="live"),
    }


def _matrix_context(request: HtmxHttpRequest, matrix: BacktestMatrix, **extra: Any) -> dict[str, Any]:
    config = matrix.base_config or {}
    spec = catalogue.strategy_for(config.get("strategy_key"))
    progress = _progress_context(request, matrix)
    grid = matrix.grid or {}
    varying = [name for name, values in grid.items() if len(values) > 1]
    fixed = {name: values[0] for name, values in grid.items() if len(values) == 1}
    raw_page = request.GET.get("page", "")
    page = int(raw_page) if raw_page.isdigit() and 0 < len(raw_page) <= 6 and int(raw_page) > 0 else 1
    offset = (page - 1) * MATRIX_RESULTS_PER_PAGE
    runs, next_offset = selectors.matrix_results(matrix=matrix, limit=MATRIX_RESULTS_PER_PAGE, offset=offset)
    bot = selectors.backtest_bot(bot_id=config.get("bot_id"))
    names = [p.name for p in spec.parameters] if spec else list(config.get("parameters") or {})
    base = {**(config.get("parameters") or {}), **fixed}
    context: dict[str, Any] = {
        **progress,
        "nav": "backtests",
        "can_operate": user_has_role(request.user, Role.OPERATOR),
        "strategy": spec,
        "strategy_label": spec.label if spec else config.get("strategy_key", ""),
        "bot": bot,
        "config": config,
        "varying": [{"name": n, "label": presentation.label(n)} for n in varying],
        "grid_rows": [
            {"label": presentation.label(n), "values": ", ".join(presentation.parameter_value(v) for v in grid[n])}
            for n in varying
        ],
        "base_rows": presentation.parameter_rows(
            {n: presentation.parameter_value(v) for n, v in base.items() if n not in varying},
            spec.parameters if spec else (),
        ),
        "objective_label": presentation.objective_label(matrix.objective),
        # Net PnL and trades have their own columns, unless they are the objective's.
        "show_net_pnl": matrix.objective != "net_pnl",
        "show_trades": matrix.objective != "trades",
        "figure_columns": 2 + (matrix.objective != "net_pnl") + (matrix.objective != "trades"),
        "lowest_first": selectors.OBJECTIVES.get(matrix.objective) == "asc",
        "results": [presentation.matrix_run_row(r, varying=varying, objective=matrix.objective) for r in runs],
        "results_page": page,
        "results_first": offset + 1,
        "results_prev": _query(request, page=page - 1 if page > 2 else None) if page > 1 else None,
        "results_next": _query(request, page=page + 1) if next_offset is not None else None,
        "skipped": presentation.skipped_rows(config.get("skipped_combinations") or {}, names, varying),
        "windows": [{"start": parse_iso(w.get("start")), "end": parse_iso(w.get("end"))} for w in matrix.windows or []],
        "risk_limits": [
            {"label": presentation.label(k), "value": v} for k, v in (config.get("risk_limits") or {}).items()
        ],
        "heatmap_url": _query(request, part="heatmap"),
        "results_url": _query(request, part="results"),
        **_heatmap_context(request, matrix, varying),
        **extra,
    }
    context["results_last"] = offset + len(runs)
    return context


def parse_iso(value: Any) -> Any:
    """A stored ISO 8601 time as a datetime (the templates' date filter formats it)."""
    return parse_datetime(value) if isinstance(value, str) else value


@require_GET
@login_required
@vary_on_headers("HX-Request")
def matrix_detail(request: HtmxHttpRequest, matrix_id: int) -> HttpResponse:
    """A matrix's page. For htmx: (?part=live) its progress and counts, polled while it runs, with
    `matrix-changed` triggered when runs finished since the last poll (the heatmap and the ranked
    table then refresh themselves); once it has finished the page reloads, so the result and the
    actions it allows are drawn whole. (?part=heatmap, ?part=results) those two regions."""
    pages.require_viewer(request)
    matrix = _matrix_or_404(matrix_id)
    part = request.GET.get("part") if request.htmx else None
    if part not in ("live", "heatmap", "results"):
        return render(request, MATRIX_PAGE, _matrix_context(request, matrix))
    if part == "live":
        context = _progress_context(request, matrix)
        if not context["polling"]:
            return HttpResponseClientRefresh()
        response = render(request, f"{MATRIX_PAGE}#matrix-progress", context)
        seen = request.GET.get("finished", "")
        if seen.isdigit() and int(seen) != context["finished"]:
            trigger_client_event(response, "matrix-changed")
        return response
    return render(request, f"{MATRIX_PAGE}#matrix-{part}", _matrix_context(request, matrix))


@require_POST
@login_required
def matrix_cancel(request: HtmxHttpRequest, matrix_id: int) -> HttpResponse:
    """Cancel from the matrix's page: the same service as POST /api/backtests/matrix/{id}/cancel
    (what has not finished stops; finished runs keep their results). Done: the page again. Refused
    (every run has finished meanwhile): why, in place, with the way to its result."""
    if (denied := pages.refused_unless_operator(request)) is not None:
        return denied
    matrix = _matrix_or_404(matrix_id)
    try:
        services.matrix_cancel(matrix=matrix, actor=request.user, reason=request.POST.get("reason", "").strip())
    except ApplicationError as exc:
        context = _matrix_context(request, matrix, refusal=exc)
        if request.htmx:
            return render(request, f"{MATRIX_PAGE}#matrix-actions", context)
        return render(request, MATRIX_PAGE, context, status=exc.status_code)
    if request.htmx:
        return HttpResponseClientRefresh()
    return redirect("backtest-pages:matrix", matrix_id=matrix.pk)
