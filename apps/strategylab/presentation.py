"""An experiment's stored results in an operator's words, for the Lab pages (pure: rows and their
JSON in, plain dicts out; no database).

Figures are shown as the Backtests pages show them (apps.backtests.presentation: "1,234.50 USD",
"1.43", "—" with its reason, never 0); a candidate's in-sample and out-of-sample figures sit side
by side, fold by fold; the luck statistics are said as what they mean ("how likely the winner is
luck") with every input they were computed from. API codes stay in titles and data attributes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from apps.backtests import presentation as bt
from apps.core.templatetags.observatory import field_label as label

STATUS_WORDS = {
    "DRAFT": "Not started",
    "RUNNING": "Running",
    "SUCCEEDED": "Finished",
    "FAILED": "Failed",
    "CANCELLED": "Cancelled",
}
STATUS_TONES = {"DRAFT": "muted", "RUNNING": "warn", "SUCCEEDED": "ok", "FAILED": "bad", "CANCELLED": "muted"}

PHASE_WORDS = {
    "DRAFT": "not started: press Start to run the search",
    "IN_SAMPLE": "searching the parameter space on the in-sample bars",
    "OUT_OF_SAMPLE": "re-running the best sets on the out-of-sample bars",
    "DONE": "done",
}
# What a finished experiment's header says instead of its phase.
OUTCOME_WORDS = {
    "SUCCEEDED": "every run has closed and the candidates are ranked out of sample",
    "FAILED": "nothing could be ranked",
    "CANCELLED": "stopped before every run had finished",
}
RUN_PHASE_WORDS = {"IN_SAMPLE": "In sample", "OUT_OF_SAMPLE": "Out of sample"}

# The figures a candidate is judged on, in and out of sample, side by side.
CANDIDATE_FIGURES = ("expectancy", "net_pnl", "trades", "profit_factor", "max_drawdown", "sharpe")
_METRICS = {key: (name, kind, meaning) for key, name, kind, meaning in bt.METRICS}

WARNING_TITLES = {
    "OOS_DEGRADED": "Fell apart out of sample",
    "FEW_OOS_TRADES": "Too few trades out of sample",
    "FRAGILE_OPTIMUM": "A lone best point",
    "ONE_TRADE_CARRIES": "One trade carries the result",
    "NOT_JUDGED": "Not judged",
}

# The figures behind a warning, in words (the rest by their field label).
WARNING_FIGURES = {
    "objective": "Ranked by",
    "in_sample": "In sample",
    "out_of_sample": "Out of sample",
    "min_fraction": "Warns below this share of the in-sample figure",
    "lower_is_better": "Lower is better",
    "trades": "Out-of-sample trades",
    "min_trades": "Trades needed",
    "neighbours_median": "Median of its grid neighbours",
    "neighbours": "Grid neighbours",
    "neighbours_without_figure": "Neighbours without a figure",
    "neighbours_losing": "Neighbours that lose",
    "max_losing_share": "Warns when more than this share of neighbours lose",
    "net_pnl": "Out-of-sample net PnL",
    "largest_win": "Largest winning trade",
    "net_pnl_without_largest": "Net PnL without it",
    "largest_share": "Its share of the net PnL",
    "max_share": "Warns above this share",
    "check": "Check",
    "figure": "Figure",
    "window": "Window",
    "reason": "Why",
}
_SHARES = {"min_fraction", "max_losing_share", "largest_share", "max_share"}
_MONEY = {"net_pnl", "largest_win", "net_pnl_without_largest"}

DSR_INPUTS = (
    ("sharpe", "Its Sharpe ratio (per trading day, out of sample)", "ratio"),
    ("expected_max_sharpe", "The best Sharpe ratio the same number of tries with no skill would show", "ratio"),
    ("trials", "Tries: parameter sets searched in sample", "count"),
    ("trials_without_sharpe", "Tries without a Sharpe ratio (no trades, or flat)", "count"),
    ("trial_sharpe_variance", "Variance of the tries' Sharpe ratios", "ratio4"),
    ("observations", "Trading days of its returns", "count"),
    ("skewness", "Skewness of its daily returns", "ratio"),
    ("kurtosis", "Kurtosis of its daily returns (3 for a normal distribution)", "ratio"),
    ("threshold", "Called likely luck below", "share"),
)
PBO_INPUTS = (
    ("trials", "Parameter sets compared", "count"),
    ("periods", "Trading days of returns", "count"),
    ("periods_used", "Trading days used (equal blocks)", "count"),
    ("slices", "Blocks the days were cut into", "count"),
    ("combinations", "Ways of splitting the blocks in two halves", "count"),
    ("median_logit", "Median logit (below 0: the in-sample best tends to rank in the bottom half)", "ratio"),
)


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _number(value: Any, kind: str) -> str:
    """A figure of the luck statistics or a warning: "0.42", "1,234", "37.5 %", "−0.0012"."""
    number = _decimal(value)
    if number is None:
        return "—" if value is None else str(value)
    sign = "−" if number < 0 else ""
    if kind == "count":
        return f"{int(number):,}"
    if kind == "share":
        return f"{number * 100:.1f} %"
    if kind == "usd":
        return bt.money(number)
    if kind == "ratio4":
        return f"{sign}{abs(number):.4g}"
    return f"{sign}{abs(number):.3f}".rstrip("0").rstrip(".") if abs(number) < 1 else f"{sign}{abs(number):,.2f}"


def _when(value: Any) -> str:
    """A stored ISO 8601 time as the pages write times: 2025-12-15 15:00 UTC."""
    if not value:
        return ""
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def status(code: str) -> dict[str, str]:
    return {"code": code, "words": STATUS_WORDS.get(code, code), "tone": STATUS_TONES.get(code, "muted")}


def parameters_text(parameters: Mapping[str, Any], names: Any = None) -> str:
    """ "Fast period 3, Slow period 12" (only `names`, when given: the parameters the space varies)."""
    shown = [n for n in (names if names is not None else parameters) if n in parameters]
    return ", ".join(f"{label(n)} {bt.parameter_value(parameters[n])}" for n in shown)


def space_rows(space: Mapping[str, Any], grid: Mapping[str, list[Any]]) -> list[dict[str, Any]]:
    """The parameter space as asked (a list, or min/max/step) and the values it expanded to."""
    rows = []
    for name, asked in space.items():
        values = grid.get(name) or []
        if isinstance(asked, Mapping):
            given = "from {} to {} by {}".format(*(bt.parameter_value(asked.get(k)) for k in ("min", "max", "step")))
        else:
            given = ", ".join(bt.parameter_value(v) for v in asked or [])
        rows.append(
            {
                "label": label(name),
                "given": given,
                "values": ", ".join(bt.parameter_value(v) for v in values),
                "count": len(values),
            }
        )
    return rows


def _figure_cell(metrics: Mapping[str, Any] | None, key: str, status_code: str | None) -> dict[str, Any]:
    """One figure of one run: its text and tone, or why it has none (never 0 for an unknown)."""
    name, kind, _ = _METRICS[key]
    if status_code != "SUCCEEDED":
        why = {
            "FAILED": "the run failed",
            "CANCELLED": "the run was cancelled",
            "QUEUED": "not run yet",
            "RUNNING": "still running",
        }
        return {"text": None, "reason": why.get(status_code or "", "no run"), "tone": ""}
    metrics = metrics or {}
    raw = metrics.get(key)
    if raw is None:
        return {"text": None, "reason": (metrics.get("unknown") or {}).get(key) or "not computed", "tone": ""}
    number = _decimal(raw)
    tone = ""
    if key in ("net_pnl", "expectancy") and number is not None and number != 0:
        tone = "ok" if number > 0 else "bad"
    text = bt.money(raw) if kind == "usd" else bt.objective_value(key, raw)
    return {"text": text, "reason": "", "tone": tone}


def _run_view(run: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not run:
        return None
    return {
        "backtest_id": run.get("backtest_id"),
        "start": _when(run.get("start")),
        "end": _when(run.get("end")),
        "status": run.get("status"),
        "status_words": bt.STATUS_WORDS.get(run.get("status") or "", run.get("status") or ""),
        "verdict": _verdict(run.get("verdict")),
        "error": bt.error_view(run.get("error")),
    }


def _verdict(code: Any) -> dict[str, Any] | None:
    if not code:
        return None
    name, tone, meaning = bt.VERDICT_WORDS.get(str(code), (str(code).capitalize(), "warn", ""))
    return {"code": code, "label": name, "tone": tone, "meaning": meaning}


def warning_view(warning: Mapping[str, Any]) -> dict[str, Any]:
    """A warning's title, its message (operator words already) and the figures it was judged on."""
    code = str(warning.get("code") or "")
    figures = []
    for key, value in (warning.get("figures") or {}).items():
        if isinstance(value, bool):
            shown = "yes" if value else "no"
        elif key == "objective" or key == "figure":
            shown = bt.objective_label(str(value))
        elif key in _SHARES:
            shown = _number(value, "share")
        elif key in _MONEY:
            shown = _number(value, "usd")
        elif isinstance(value, int | float | Decimal):
            shown = _number(value, "count" if isinstance(value, int) else "ratio")
        elif value is None:
            shown = "—"
        else:
            shown = WARNING_TITLES.get(str(value), str(value)) if key == "check" else str(value)
        figures.append({"label": WARNING_FIGURES.get(key, label(key)), "value": shown})
    return {
        "code": code,
        "title": WARNING_TITLES.get(code, label(code.lower())),
        "message": warning.get("message") or "",
        "figures": figures,
        "judged": code != "NOT_JUDGED",
    }


def candidate_view(candidate: Any, *, objective: str, varying: list[str]) -> dict[str, Any]:
    """A ranked (or unranked) candidate: rank, the parameters the space varies, its instrument, the
    objective in and out of sample (means over the folds), its verdict, warnings, and per fold the
    six figures in sample against out of sample with both backtests."""
    in_runs = {r.get("fold"): r for r in (candidate.in_sample or {}).get("runs", [])}
    out_runs = {r.get("fold"): r for r in (candidate.out_of_sample or {}).get("runs", [])}
    folds = sorted({*in_runs, *out_runs}, key=lambda f: f or 0)
    fold_views = []
    for fold in folds:
        ins, outs = in_runs.get(fold), out_runs.get(fold)
        rows = []
        for key in CANDIDATE_FIGURES:
            rows.append(
                {
                    "key": key,
                    "label": _METRICS[key][0],
                    "meaning": _METRICS[key][2],
                    "in": _figure_cell(ins.get("metrics") if ins else None, key, ins.get("status") if ins else None),
                    "out": _figure_cell(
                        outs.get("metrics") if outs else None, key, outs.get("status") if outs else None
                    ),
                }
            )
        fold_views.append({"fold": fold, "in": _run_view(ins), "out": _run_view(outs), "rows": rows})
    in_objective = (candidate.in_sample or {}).get("objective")
    out_objective = (candidate.out_of_sample or {}).get("objective")
    return {
        "candidate": candidate,
        "id": candidate.pk,
        "rank": candidate.rank,
        "in_sample_rank": candidate.in_sample_rank,
        "parameters": parameters_text(candidate.parameters or {}, varying or None),
        "all_parameters": parameters_text(candidate.parameters or {}),
        "instrument": candidate.instrument,
        "in_objective": bt.objective_value(objective, in_objective),
        "out_objective": bt.objective_value(objective, out_objective),
        "verdict": _verdict(candidate.verdict),
        "unranked_reason": candidate.unranked_reason,
        "warnings": [warning_view(w) for w in candidate.overfit_warnings or []],
        "folds": fold_views,
        "graduated": candidate.graduated_at is not None,
        "bot": candidate.bot,
        "bot_config_version": candidate.bot_config_version,
        "graduation_backtests": list(candidate.graduation_backtests or []),
        "graduated_at": candidate.graduated_at,
    }


def failure_rows(failures: list[Mapping[str, Any]], varying: list[str]) -> list[dict[str, Any]]:
    """The runs that failed, each named: phase, fold, instrument, parameters, its error, its backtest."""
    return [
        {
            "backtest_id": f.get("backtest_id"),
            "phase": RUN_PHASE_WORDS.get(f.get("phase") or "", f.get("phase") or ""),
            "fold": f.get("fold"),
            "instrument": f.get("instrument"),
            "parameters": parameters_text(f.get("parameters") or {}, varying or None),
            "error": bt.error_view(f.get("error")),
        }
        for f in failures
    ]


def _inputs(result: Mapping[str, Any], rows: tuple[tuple[str, str, str], ...]) -> list[dict[str, str]]:
    return [
        {"key": key, "label": words, "value": _number(result.get(key), kind)}
        for key, words, kind in rows
        if key in result
    ]


def luck_view(luck: Mapping[str, Any]) -> dict[str, Any]:
    """How likely the winner is luck, in words: the deflated Sharpe ratio of the best candidate
    (the chance its edge is real after so many tries) and, with walk-forward folds, the probability
    of backtest overfitting; each with its inputs, or why it could not be computed."""
    dsr = luck.get("deflated_sharpe") or None
    dsr_view: dict[str, Any] = {"computed": False, "reason": luck.get("deflated_sharpe_reason") or ""}
    if dsr is not None:
        probability = _decimal(dsr.get("probability"))
        dsr_view.update(
            computed=probability is not None,
            reason=dsr.get("reason") or dsr_view["reason"],
            likely_luck=bool(dsr.get("likely_luck")),
            probability=_number(probability, "share") if probability is not None else None,
            luck=_number(1 - probability, "share") if probability is not None else None,
            threshold=_number(dsr.get("threshold"), "share"),
            trials=dsr.get("trials"),
            inputs=_inputs(dsr, DSR_INPUTS),
        )
    if not dsr_view["computed"] and not dsr_view["reason"]:
        dsr_view["reason"] = "it was not computed for this experiment."
    pbo = luck.get("pbo") or None
    pbo_view: dict[str, Any] = {"computed": False, "reason": luck.get("pbo_reason") or ""}
    if pbo is not None:
        probability = _decimal(pbo.get("probability"))
        pbo_view.update(
            computed=probability is not None,
            reason=pbo.get("reason") or pbo_view["reason"],
            probability=_number(probability, "share") if probability is not None else None,
            # More often than not, the in-sample best ranked in the bottom half out of sample.
            likely_overfit=probability is not None and probability > Decimal("0.5"),
            inputs=_inputs(pbo, PBO_INPUTS),
        )
    if not pbo_view["computed"] and not pbo_view["reason"]:
        pbo_view["reason"] = "it was not computed for this experiment."
    return {
        "any": bool(luck),
        "trials": luck.get("trials"),
        "trial_sharpes_known": luck.get("trial_sharpes_known"),
        "best_candidate_id": luck.get("best_candidate_id"),
        "dsr": dsr_view,
        "pbo": pbo_view,
    }


def window_rows(experiment: Any) -> list[dict[str, Any]]:
    """Each fold's in-sample and out-of-sample windows, in the pages' time format."""
    return [
        {
            "fold": i,
            "train_start": _when((f.get("train") or {}).get("start")),
            "train_end": _when((f.get("train") or {}).get("end")),
            "test_start": _when((f.get("test") or {}).get("start")),
            "test_end": _when((f.get("test") or {}).get("end")),
            "purged_bars": f.get("purged_bars") or 0,
        }
        for i, f in enumerate(experiment.folds or [], 1)
    ]
