"""Reads of the strategy lab: experiments (newest first), one experiment, its candidates ranked,
the counts of its runs, and the in-sample objective over two parameters (the lab page's heatmap)."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db.models import Count, F, QuerySet

from apps.backtests.models import OPEN_STATUSES
from apps.backtests.models import Status as BacktestStatus
from apps.backtests.selectors import OBJECTIVES
from apps.bots.models import Bot
from apps.strategylab.exceptions import CandidateNotFound, ExperimentNotFound
from apps.strategylab.models import Candidate, Experiment, ExperimentRun

# Large JSON the list does not carry.
_LIST_DEFERRED = ("combinations", "luck", "review_text", "failures")


def experiment_list(*, filters: dict[str, Any] | None = None) -> QuerySet[Experiment]:
    """Newest first, by id on ties (a stable order for pagination). Filters: status, strategy_key."""
    qs = Experiment.objects.select_related("created_by").defer(*_LIST_DEFERRED).order_by("-created_at", "-id")
    for key, value in (filters or {}).items():
        if value is not None:
            qs = qs.filter(**{key: value})
    return qs


def experiment_get(*, experiment_id: int) -> Experiment:
    experiment = Experiment.objects.select_related("created_by").filter(pk=experiment_id).first()
    if experiment is None:
        raise ExperimentNotFound(f"No experiment has id {experiment_id}.")
    return experiment


def experiment_candidates(*, experiment: Experiment) -> list[Candidate]:
    """Ranked first (1 = best out of sample), then the unranked by their in-sample rank."""
    return list(
        experiment.candidates.select_related("bot").order_by(F("rank").asc(nulls_last=True), "in_sample_rank", "id")
    )


def candidate_get(*, candidate_id: int) -> Candidate:
    candidate = Candidate.objects.select_related("experiment").filter(pk=candidate_id).first()
    if candidate is None:
        raise CandidateNotFound(f"No candidate has id {candidate_id}.")
    return candidate


def experiment_run_counts(*, experiment: Experiment) -> dict[str, dict[str, int]]:
    """{phase: {backtest status: count}} over the experiment's runs (one grouped query)."""
    counts: dict[str, dict[str, int]] = {
        phase: dict.fromkeys(BacktestStatus.values, 0) for phase in ExperimentRun.Phase.values
    }
    for row in (
        ExperimentRun.objects.filter(experiment=experiment)
        .values("phase", "backtest__status")
        .annotate(n=Count("id"))
        .order_by()
    ):
        counts[row["phase"]][row["backtest__status"]] = row["n"]
    return counts


def experiment_heatmap(*, experiment: Experiment, x: str, y: str | None = None) -> list[dict[str, Any]]:
    """The in-sample objective over the values of one or two parameters: one cell per (x, y) pair
    with its `runs`, `open` (queued or running), `succeeded`, `known` (succeeded runs with a
    figure) and the `best`, `worst` and `mean` figure over those (None when none has one): the
    cells apps.backtests.presentation.heatmap draws, as a matrix's."""
    lowest_first = OBJECTIVES.get(experiment.objective) == "asc"
    cells: dict[tuple[Any, Any], list[Decimal | None]] = defaultdict(list)
    states: dict[tuple[Any, Any], dict[str, int]] = defaultdict(lambda: {"open": 0, "succeeded": 0})
    runs = (
        ExperimentRun.objects.filter(experiment=experiment, phase=ExperimentRun.Phase.IN_SAMPLE)
        .values_list("combo", "backtest__status", "backtest__metrics")
        .order_by()
    )
    for combo, status, metrics in runs:
        parameters = experiment.combinations[combo]
        key = (parameters.get(x), parameters.get(y) if y else None)
        value = None
        if status in OPEN_STATUSES:
            states[key]["open"] += 1
        if status == BacktestStatus.SUCCEEDED:
            states[key]["succeeded"] += 1
            try:
                raw = (metrics or {}).get(experiment.objective)
                value = None if raw is None else Decimal(str(raw))
            except InvalidOperation:
                value = None
        cells[key].append(value)
    out = []
    for (xv, yv), values in sorted(cells.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        known = [v for v in values if v is not None]
        best = (min(known) if lowest_first else max(known)) if known else None
        worst = (max(known) if lowest_first else min(known)) if known else None
        out.append(
            {
                "x": xv,
                "y": yv,
                "runs": len(values),
                **states[(xv, yv)],
                "known": len(known),
                "best": best,
                "worst": worst,
                "mean": sum(known, Decimal(0)) / len(known) if known else None,
            }
        )
    return out


# -- reads of the Observatory's Lab pages -------------------------------------------------------


def experiment_activity() -> bool:
    """True while an experiment is RUNNING (its progress changes without anyone acting): the Lab
    page's list polls only then."""
    return Experiment.objects.filter(status=Experiment.Status.RUNNING).exists()


def experiment_bot_choices(*, experiment: Experiment) -> list[Bot]:
    """The bots a candidate of this experiment may graduate into as a new config version: those
    trading its strategy and timeframe on one of its instruments, not retired (the graduate service
    refuses any other), by name."""
    return list(
        Bot.objects.filter(
            strategy_key=experiment.strategy_key,
            timeframe=experiment.timeframe,
            instrument__in=experiment.instruments,
        )
        .exclude(stage=Bot.Stage.RETIRED)
        .order_by("name", "id")
    )
