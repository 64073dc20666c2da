"""The strategy lab (SPEC §10): create an experiment, start it, follow its runs, cancel it, graduate
a candidate into a bot, and ask an AI provider to review it.

The flow, one phase after the other, each run a Backtest (apps.backtests) with its own ledger job
of type `strategylab.run` on the `backtests` queue (the `backtest.run` handler, then the lab's
`experiment_advance`):

1. In sample: every parameter set the strategy allows × instrument × fold, over each fold's train
   window. A train window ends at or before its test window starts, and a backtest's warm-up comes
   from before its window, so no in-sample run reads an out-of-sample bar. With walk-forward folds,
   each fold's train part starts late enough that its warm-up does not reach back into the previous
   fold's test part (`purged_bars`).
2. When every in-sample run has closed: each (parameter set, instrument) with a figure for the
   objective in every fold is ranked by its mean in-sample objective; the best `top_k` become
   candidates and are re-run over each fold's test window.
3. When those have closed: candidates are ranked by their mean out-of-sample objective; a
   candidate's verdict is its out-of-sample backtest's classification (the weakest fold's, with
   folds); overfit warnings and the luck statistics (apps.strategylab.stats) are stored.

`experiment_advance` is called after each run's job (the handler and JOB_CLOSED_HOOKS) and by a
beat task as a safety net; it locks the experiment row, so concurrent closes advance it once.

Outcome: SUCCEEDED when at least one candidate was ranked out of sample (failed runs are named in
`failures`); FAILED, with the envelope in `error`, when nothing could be ranked (no in-sample set
had a figure for the objective, or no candidate's out-of-sample runs succeeded).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Sum
from django.db.models.functions import Now
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.backtests import ledger
from apps.backtests import services as backtests
from apps.backtests.exceptions import BacktestValidationError
from apps.backtests.metrics import trade_dates
from apps.backtests.models import OPEN_STATUSES, Backtest, BacktestTrade
from apps.backtests.models import Status as BacktestStatus
from apps.backtests.selectors import OBJECTIVES
from apps.bots import services as bots
from apps.bots.exceptions import BotValidationError
from apps.bots.models import Bot
from apps.core.audit import audit_record
from apps.core.errors import error_body
from apps.integrations import credentials, registry
from apps.integrations.errors import IntegrationKeyMissing
from apps.market import instruments as market_instruments
from apps.market.arrays import expected_slots
from apps.market.hours import bar_slots_between
from apps.strategylab import stats
from apps.strategylab.exceptions import CandidateNotGraduable, ExperimentStateConflict, ExperimentValidationError
from apps.strategylab.models import Candidate, Experiment, ExperimentRun
from apps.trading import catalogue
from apps.trading import strategies as trading_strategies

logger = logging.getLogger("tradeops.strategylab")

JOB_TYPE = "strategylab.run"
INPUT_FIELDS = frozenset(
    {
        "name",
        "strategy_key",
        "instruments",
        "timeframe",
        "parameter_space",
        "train",
        "test",
        "walk_forward",
        "objective",
        "max_runs",
        "top_k",
        "fill_model",
        "risk_limits",
        "initial_capital",
    }
)
MAX_FOLDS = 20
DEFAULT_TEST_FRACTION = 0.25
VERDICT_ORDER = {"REJECTED": 0, "MARGINAL": 1, "PROMOTABLE": 2}
Phase = ExperimentRun.Phase


# -- validation ---------------------------------------------------------------------------------


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _expand(name: str, value: Any, spec: Any) -> tuple[list[Any] | None, list[str] | None]:
    """(values, None) for a list or a {min, max, step} range, or (None, problems)."""
    if isinstance(value, list):
        return (value, None) if value else (None, ["must be a non-empty list of values."])
    if not isinstance(value, dict):
        return None, ['must be a list of values or {"min", "max", "step"}.']
    if set(value) != {"min", "max", "step"}:
        return None, ['must have exactly "min", "max" and "step".']
    low, high, step = (_number(value[k]) for k in ("min", "max", "step"))
    if low is None or high is None or step is None:
        return None, ["min, max and step must be numbers."]
    if step <= 0:
        return None, ["step must be above 0."]
    if low > high:
        return None, [f"is empty: min ({low}) is above max ({high})."]
    count = int((high - low) / step) + 1
    most = settings.LAB_MAX_SPACE_VALUES
    if count > most:
        return None, [f"expands to {count:,} values; at most {most:,} per parameter (raise step)."]
    values = [low + i * step for i in range(count)]
    if spec is not None and spec.kind is int:
        if any(v != v.to_integral_value() for v in values):
            return None, [f"{name} is a whole number: min and step must be whole numbers."]
        return [int(v) for v in values], None
    return [float(v) for v in values], None


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        parsed: datetime | None = value
    elif isinstance(value, str):
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
    else:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC)


def _window(value: Any, name: str, errors: dict[str, Any]) -> tuple[datetime, datetime] | None:
    if not isinstance(value, dict) or set(value) != {"start", "end"}:
        errors[name] = ['must be {"start", "end"} (ISO 8601 UTC).']
        return None
    start, end = _time(value["start"]), _time(value["end"])
    problems = {}
    for key, parsed in (("start", start), ("end", end)):
        if parsed is None:
            problems[key] = ["must be an ISO 8601 time with its zone, e.g. 2025-01-06T00:00:00Z."]
    if problems:
        errors[name] = problems
        return None
    assert start is not None and end is not None
    if not start < end:
        errors[name] = {"end": ["must be after start."]}
        return None
    return start, end


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _fold(train: tuple[datetime, datetime], test: tuple[datetime, datetime], **extra: Any) -> dict[str, Any]:
    return {
        "train": {"start": _iso(train[0]), "end": _iso(train[1])},
        "test": {"start": _iso(test[0]), "end": _iso(test[1])},
        **extra,
    }


def _walk_forward(value: Any, errors: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[Any, Any]]] | None:
    """walk_forward {"folds", "start", "end", "test_fraction"?}: the span cut into `folds` equal
    consecutive segments, each a train part followed by its test part."""
    if not isinstance(value, dict):
        errors["walk_forward"] = ['must be {"folds", "start", "end", "test_fraction"?}.']
        return None
    problems: dict[str, Any] = {k: ["is not a walk_forward field."] for k in value if k not in _WF_FIELDS}
    folds = value.get("folds")
    if isinstance(folds, bool) or not isinstance(folds, int) or not 2 <= folds <= MAX_FOLDS:
        problems["folds"] = [f"must be a whole number of folds from 2 to {MAX_FOLDS}."]
    fraction = _number(value.get("test_fraction", DEFAULT_TEST_FRACTION))
    if fraction is None or not Decimal("0.05") <= fraction <= Decimal("0.8"):
        problems["test_fraction"] = ["must be a number from 0.05 to 0.8 (the share of each fold tested out of sample)."]
    span = _window({"start": value.get("start"), "end": value.get("end")}, "span", problems)
    if problems:
        errors["walk_forward"] = problems
        return None
    assert span is not None and fraction is not None
    start, end = span
    length = (end - start) / folds
    cuts = []
    for i in range(folds):
        seg_start = start + length * i
        seg_end = end if i == folds - 1 else start + length * (i + 1)
        split = seg_start + (seg_end - seg_start) * (1 - float(fraction))
        cuts.append(((seg_start, split), (split, seg_end)))
    clean = {"folds": folds, "start": _iso(start), "end": _iso(end), "test_fraction": float(fraction)}
    return clean, cuts


_WF_FIELDS = frozenset({"folds", "start", "end", "test_fraction"})


def _purge(
    cuts: list[tuple[Any, Any]], instruments: list[str], tf: int, warm: int, errors: dict[str, Any]
) -> list[dict[str, Any]]:
    """Folds whose train part (after the first) starts `warm` bar slots late: its warm-up then ends
    where the previous fold's test part ended, and never reads a test bar."""
    folds = []
    for index, (train, test) in enumerate(cuts):
        start = train[0]
        purged = 0
        if index > 0 and warm > 0:
            for instrument in instruments:
                slots = bar_slots_between(instrument, tf, int(train[0].timestamp()), int(train[1].timestamp()))
                if len(slots) <= warm:
                    errors["walk_forward"] = [
                        f"fold {index + 1}'s in-sample part holds {len(slots)} {instrument} bars, not more than the "
                        f"{warm} the warm-up needs apart from the previous fold's test bars: use fewer folds, a "
                        "longer span or a smaller test_fraction."
                    ]
                    return []
                start = max(start, datetime.fromtimestamp(slots[warm], UTC))
            purged = warm
        folds.append(_fold((start, train[1]), test, purged_bars=purged))
    return folds


def _default_limits(instruments: list[Any], timeframe: str) -> dict[str, Any]:
    """The risk limits an experiment runs with unless it names its own (a graduated bot gets the
    same, so its gate backtest repeats the lab's run): one contract, LAB_DEFAULT_MAX_DAILY_LOSS, and
    the orders a day the strategy can send on the busiest instrument (catalogue.max_orders_per_day_for)."""
    if timeframe not in catalogue.TIMEFRAMES:
        return {}  # the request is refused for its timeframe
    return {
        "max_position_contracts": 1,
        "max_daily_loss": float(settings.LAB_DEFAULT_MAX_DAILY_LOSS),
        "max_orders_per_day": max(
            (catalogue.max_orders_per_day_for(i, timeframe) for i in instruments if i in catalogue.INSTRUMENTS),
            default=1,  # no valid instrument: the request is refused for that anyway
        ),
    }


def _merge_space_errors(errors: dict[str, Any], space: dict[str, Any], grid_errors: Any) -> None:
    """The matrix validator's `grid` errors, named as the experiment's `parameter_space`."""
    if isinstance(grid_errors, dict):
        space.update(grid_errors)
    elif grid_errors:
        space.setdefault("non_field_errors", []).extend(grid_errors)


def experiment_validate(*, data: Any) -> dict[str, Any]:
    """The Experiment fields for a request body, or ExperimentValidationError naming every bad
    field. The parameter space and the windows are checked by the backtests matrix's own validator
    (the catalogue's ranges and rules, each window tradable and in the past), so they are checked
    once, the same way."""
    if not isinstance(data, Mapping):
        raise ExperimentValidationError({"non_field_errors": ["The body must be a JSON object."]})
    errors: dict[str, Any] = {k: ["is not an experiment field."] for k in data if k not in INPUT_FIELDS}
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 200:
        errors["name"] = ["is required: up to 200 characters."]
    strategy = catalogue.strategy_for(data.get("strategy_key"))
    if strategy is None:
        errors["strategy_key"] = [f"must be one of: {', '.join(catalogue.STRATEGIES)}."]
    instruments = data.get("instruments")
    if not isinstance(instruments, list) or not instruments:
        errors["instruments"] = [f"must be a non-empty list of instruments ({', '.join(catalogue.INSTRUMENTS)})."]
        instruments = []
    instruments = [i.strip().upper() if isinstance(i, str) else i for i in instruments]
    timeframe = data.get("timeframe")
    tf = market_instruments.TIMEFRAME_SECONDS.get(timeframe) if isinstance(timeframe, str) else None
    objective = data.get("objective", "expectancy")
    if objective not in OBJECTIVES:
        errors["objective"] = [f"must be one of: {', '.join(OBJECTIVES)}."]

    max_runs = data.get("max_runs", settings.LAB_MAX_RUNS)
    if isinstance(max_runs, bool) or not isinstance(max_runs, int) or not 1 <= max_runs <= settings.LAB_MAX_RUNS:
        errors["max_runs"] = [f"must be a whole number from 1 to {settings.LAB_MAX_RUNS:,}."]
        max_runs = None
    top_k = data.get("top_k", settings.LAB_TOP_K)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= settings.LAB_MAX_TOP_K:
        errors["top_k"] = [f"must be a whole number from 1 to {settings.LAB_MAX_TOP_K}."]
        top_k = None

    # The space: each parameter expanded (lists kept as given), checked by the matrix validator below.
    space = data.get("parameter_space")
    space_errors: dict[str, Any] = {}
    grid: dict[str, list[Any]] = {}
    if not isinstance(space, dict) or not space:
        errors["parameter_space"] = ['must be an object: {parameter: [values]} or {parameter: {"min", "max", "step"}}.']
    else:
        for param, value in space.items():
            values, problems = _expand(param, value, strategy.parameter(param) if strategy else None)
            if problems:
                space_errors[param] = problems
            else:
                grid[param] = values  # type: ignore[assignment]

    # The windows: train + test, or walk-forward folds.
    cuts: list[tuple[Any, Any]] = []
    walk = None
    if "walk_forward" in data:
        for name_ in ("train", "test"):
            if name_ in data:
                errors[name_] = ["give train and test, or walk_forward, not both."]
        made = _walk_forward(data["walk_forward"], errors)
        if made is not None:
            walk, cuts = made
    else:
        train = _window(data.get("train"), "train", errors)
        test = _window(data.get("test"), "test", errors)
        if train and test:
            if train[1] > test[0]:
                errors["train"] = {
                    "end": [
                        f"must be at or before test.start ({_iso(test[0])}): in-sample bars may not overlap "
                        "or follow the out-of-sample ones."
                    ]
                }
            else:
                cuts = [(train, test)]

    # The runs the search fans out: every combination × instrument × fold, at most max_runs.
    product = math.prod(len(v) for v in grid.values()) if grid else 0
    runs = product * len(instruments) * max(len(cuts), 1)
    if max_runs is not None and grid and not space_errors and runs > max_runs:
        space_errors["non_field_errors"] = [
            f"{runs:,} in-sample runs ({product:,} parameter combinations × {len(instruments)} instrument(s) × "
            f"{max(len(cuts), 1)} fold(s)) is more than max_runs ({max_runs:,}): narrow the space or raise max_runs."
        ]

    spec: dict[str, Any] | None = None
    if strategy is not None and grid and not space_errors and cuts and not errors.get("instruments"):
        body: dict[str, Any] = {
            "strategy_key": strategy.key,
            "parameters": {},
            "instruments": instruments,
            "timeframe": timeframe,
            "grid": grid,
            "windows": [{"start": _iso(w[0]), "end": _iso(w[1])} for cut in cuts for w in cut],
            "risk_limits": data["risk_limits"] if "risk_limits" in data else _default_limits(instruments, timeframe),
        }
        for key in ("fill_model", "initial_capital"):
            if key in data:
                body[key] = data[key]
        try:
            spec = backtests.matrix_validate(data=body)
        except BacktestValidationError as exc:
            found = dict(exc.extra["fields"])
            _merge_space_errors(errors, space_errors, found.pop("grid", None))
            bad_windows = found.pop("windows", {})
            for index, problem in bad_windows.items() if isinstance(bad_windows, dict) else []:
                fold, side = divmod(int(index), 2)
                label = ("train", "test")[side]
                key = label if walk is None else "walk_forward"
                errors[key] = {f"fold {fold + 1} {label}" if walk else "window": problem}
            errors.update(found)  # instruments, timeframe, fill_model, risk_limits, initial_capital
    if tf is None:
        errors.setdefault("timeframe", [f"must be one of: {', '.join(catalogue.TIMEFRAMES)}."])
    if space_errors:
        errors["parameter_space"] = space_errors
    folds: list[dict[str, Any]] = []
    if spec is not None and not errors:
        if walk is None:
            folds = [_fold(*cuts[0], purged_bars=0)]
        else:
            warm = max(trading_strategies.required_bars(strategy.key, p) for p in spec["combinations"]) - 1
            folds = _purge(cuts, spec["instruments"], tf or 60, warm, errors)
    if errors:
        raise ExperimentValidationError(errors)
    assert spec is not None and strategy is not None
    config = spec["config"]
    return {
        "name": name.strip(),  # type: ignore[union-attr]
        "strategy_key": strategy.key,
        "instruments": spec["instruments"],
        "timeframe": config["timeframe"],
        "parameter_space": space,
        "grid": spec["grid"],
        "combinations": spec["combinations"],
        "skipped": {"count": len(spec["skipped"]), "examples": spec["skipped"][:20]},
        "windows": {"walk_forward": walk} if walk else {"train": folds[0]["train"], "test": folds[0]["test"]},
        "folds": folds,
        "objective": objective,
        "max_runs": max_runs,
        "top_k": top_k,
        "fill_model": config["fill_model"],
        "risk_limits": config["risk_limits"] or {},
        "initial_capital": config["initial_capital"],
    }


def _snapshot(experiment: Experiment) -> dict[str, Any]:
    return {
        "status": experiment.status,
        "phase": experiment.phase,
        "name": experiment.name,
        "strategy_key": experiment.strategy_key,
        "instruments": experiment.instruments,
        "timeframe": experiment.timeframe,
        "grid": experiment.grid,
        "windows": experiment.windows,
        "objective": experiment.objective,
        "max_runs": experiment.max_runs,
        "top_k": experiment.top_k,
    }


@transaction.atomic
def experiment_create(*, data: Any, actor: Any) -> Experiment:
    """A DRAFT experiment (nothing runs until `experiment_start`). Audited."""
    fields = experiment_validate(data=data)
    experiment = Experiment.objects.create(
        **fields,
        status=Experiment.Status.DRAFT,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    audit_record(action="strategylab.experiment.create", actor=actor, target=experiment, after=_snapshot(experiment))
    return experiment


# -- runs ---------------------------------------------------------------------------------------


def _runs_create(experiment: Experiment, items: list[tuple[str, int, int, str]], created_by: Any) -> int:
    """One QUEUED Backtest, its `strategylab.run` job and its ExperimentRun per (phase, fold, combo,
    instrument), in bulk; the jobs are published once the caller's transaction commits."""
    if not items:
        return 0
    common = {
        "strategy_key": experiment.strategy_key,
        "timeframe": experiment.timeframe,
        "fill_model": experiment.fill_model,
        "risk_limits": experiment.risk_limits,
        "initial_capital": experiment.initial_capital,
        "data_provider": settings.MARKET_DATA_DEFAULT_PROVIDER,
        "status": BacktestStatus.QUEUED,
        "created_by": created_by,
    }
    rows = []
    for phase, fold, combo, instrument in items:
        window = experiment.folds[fold]["train" if phase == Phase.IN_SAMPLE else "test"]
        rows.append(
            Backtest(
                **common,
                parameters=experiment.combinations[combo],
                instrument=instrument,
                start=_time(window["start"]),
                end=_time(window["end"]),
            )
        )
    rows = Backtest.objects.bulk_create(rows, batch_size=2000)
    jobs = ledger.ledger().job_enqueue_many(
        type=JOB_TYPE,
        items=[({"backtest_id": r.pk, "experiment_id": experiment.pk}, f"backtest:{r.pk}") for r in rows],
    )
    for row, job in zip(rows, jobs, strict=True):
        row.job_id = job.pk
    Backtest.objects.bulk_update(rows, ["job"], batch_size=2000)
    ExperimentRun.objects.bulk_create(
        [
            ExperimentRun(experiment=experiment, backtest=row, phase=phase, fold=fold, combo=combo, instrument=instr)
            for row, (phase, fold, combo, instr) in zip(rows, items, strict=True)
        ],
        batch_size=2000,
    )
    return len(rows)


def experiment_start(*, experiment: Experiment, actor: Any) -> Experiment:
    """DRAFT → RUNNING: the in-sample runs fan out as backtest jobs on the backtests queue. Audited."""
    with transaction.atomic():
        moved = Experiment.objects.filter(pk=experiment.pk, status=Experiment.Status.DRAFT).update(
            status=Experiment.Status.RUNNING, phase=Experiment.Phase.IN_SAMPLE, started_at=Now(), progress=0.0
        )
        experiment.refresh_from_db()
        if not moved:
            raise ExperimentStateConflict(
                f"Experiment {experiment.pk} is {experiment.status}; only a DRAFT experiment can be started."
            )
        items = [
            (Phase.IN_SAMPLE, fold, combo, instrument)
            for instrument in experiment.instruments
            for fold in range(len(experiment.folds))
            for combo in range(len(experiment.combinations))
        ]
        created = _runs_create(experiment, items, actor if getattr(actor, "is_authenticated", False) else None)
        audit_record(
            action="strategylab.experiment.start",
            actor=actor,
            target=experiment,
            before={"status": Experiment.Status.DRAFT},
            after={"status": experiment.status, "in_sample_runs": created},
        )
    return experiment


def experiment_cancel(*, experiment: Experiment, actor: Any, reason: str = "") -> Experiment:
    """DRAFT or RUNNING → CANCELLED. Every open run is CANCELLED and its waiting job cancelled in the
    ledger; a run already on a worker sees its row cancelled within a progress beat and stores
    nothing (apps.backtests). Finished runs keep their results. Audited."""
    with transaction.atomic():
        before = Experiment.objects.filter(pk=experiment.pk).values_list("status", flat=True).first()
        open_runs = Backtest.objects.filter(lab_run__experiment=experiment, status__in=OPEN_STATUSES)
        job_ids = [j for j in open_runs.values_list("job_id", flat=True) if j is not None]
        runs_cancelled = open_runs.update(status=BacktestStatus.CANCELLED, finished_at=Now())
        moved = Experiment.objects.filter(
            pk=experiment.pk, status__in=[Experiment.Status.DRAFT, Experiment.Status.RUNNING]
        ).update(status=Experiment.Status.CANCELLED, finished_at=Now())
        experiment.refresh_from_db()
        if not moved:
            raise ExperimentStateConflict(
                f"Experiment {experiment.pk} is {experiment.status}: there is nothing to cancel.",
                suggested_fix="Nothing to cancel. Create a new experiment for another search.",
            )
        jobs = ledger.ledger().job_cancel_queued(job_ids=job_ids)
        audit_record(
            action="strategylab.experiment.cancel",
            actor=actor,
            target=experiment,
            before={"status": before},
            after={"status": experiment.status, "runs_cancelled": runs_cancelled, "jobs_cancelled": len(jobs)},
            reason=reason,
        )
    return experiment


# -- the job ------------------------------------------------------------------------------------


def experiment_backtest_run(job: Any) -> dict[str, Any]:
    """The `strategylab.run` job handler: the backtest's own handler, then the experiment advances
    (whatever the run's outcome)."""
    try:
        return backtests.backtest_run(job)
    finally:
        _advance_quietly((job.payload or {}).get("experiment_id"))


def experiment_job_closed(job: Any) -> None:
    """JOB_CLOSED_HOOKS: the ledger closed a run's job without its handler (cancelled on the Jobs
    page, or dead-lettered): the backtest follows it, then the experiment advances."""
    backtests.backtest_job_closed(job)
    _advance_quietly((job.payload or {}).get("experiment_id"))


def _advance_quietly(experiment_id: Any) -> None:
    if not isinstance(experiment_id, int):
        return
    try:
        experiment_advance(experiment_id=experiment_id)
    except Exception:
        # The run's own result is stored; the beat task (experiment_advance_all) tries again.
        logger.exception("experiment %s could not advance", experiment_id)


def experiment_advance_all() -> list[int]:
    """The beat task's safety net: advance every RUNNING experiment (one whose last run's close was
    lost moves on here). Answers the ids it looked at."""
    ids = list(Experiment.objects.filter(status=Experiment.Status.RUNNING).values_list("pk", flat=True))
    for experiment_id in ids:
        _advance_quietly(experiment_id)
    return ids


def _value(metrics: Mapping[str, Any] | None, objective: str) -> Decimal | None:
    raw = (metrics or {}).get(objective)
    if raw is None or isinstance(raw, bool):
        return None
    return _number(raw)


def _runs_of(experiment: Experiment, phase: str) -> list[ExperimentRun]:
    return list(
        ExperimentRun.objects.filter(experiment=experiment, phase=phase)
        .select_related("backtest")
        .defer("backtest__equity_curve", "backtest__decisions", "backtest__timings")
        .order_by("combo", "instrument", "fold")
    )


def _progress(experiment: Experiment, runs: list[ExperimentRun], oos_planned: int) -> float:
    """Finished runs count whole, running ones by their own progress, over every run the experiment
    will have made (in sample, and out of sample once planned: top_k × folds)."""
    total = len(runs) + oos_planned
    done = sum(1.0 if r.backtest.status not in OPEN_STATUSES else r.backtest.progress for r in runs)
    return round(min(done / total, 1.0), 4) if total else 1.0


def _run_entry(run: ExperimentRun) -> dict[str, Any]:
    bt = run.backtest
    return {
        "backtest_id": bt.pk,
        "fold": run.fold + 1,
        "start": _iso(bt.start),
        "end": _iso(bt.end),
        "status": bt.status,
        "verdict": (bt.classification or {}).get("verdict"),
        "trading_days": bt.trading_days,
        "metrics": bt.metrics,
        "error": bt.error,
    }


def _failures(runs: list[ExperimentRun], experiment: Experiment) -> list[dict[str, Any]]:
    return [
        {
            "backtest_id": r.backtest_id,
            "phase": r.phase,
            "fold": r.fold + 1,
            "instrument": r.instrument,
            "parameters": experiment.combinations[r.combo],
            "error": r.backtest.error,
        }
        for r in runs
        if r.backtest.status == BacktestStatus.FAILED
    ]


def _units(runs: list[ExperimentRun], folds: int, objective: str) -> dict[tuple[int, str], dict[str, Any]]:
    """(combo, instrument) → its runs and its mean objective over the folds (None, with a reason,
    unless every fold's run SUCCEEDED with a figure for the objective)."""
    grouped: dict[tuple[int, str], list[ExperimentRun]] = defaultdict(list)
    for run in runs:
        grouped[(run.combo, run.instrument)].append(run)
    out = {}
    for key, group in grouped.items():
        values = [_value(r.backtest.metrics, objective) for r in group]
        statuses = {r.backtest.status for r in group}
        reason = ""
        if statuses != {BacktestStatus.SUCCEEDED} or len(group) != folds:
            reason = "a run did not succeed: " + ", ".join(
                f"backtest {r.backtest_id} {r.backtest.status}" for r in group if r.backtest.status != "SUCCEEDED"
            )
        elif any(v is None for v in values):
            unknown = next(r for r, v in zip(group, values, strict=True) if v is None)
            why = ((unknown.backtest.metrics or {}).get("unknown") or {}).get(objective) or "not computed"
            reason = f"backtest {unknown.backtest_id} has no {objective} figure ({why})"
        mean = None if reason else sum(values, Decimal(0)) / len(values)  # type: ignore[arg-type]
        out[key] = {"runs": group, "objective": mean, "reason": reason}
    return out


def _ranked(units: dict[tuple[int, str], dict[str, Any]], objective: str) -> list[tuple[int, str]]:
    lowest_first = OBJECTIVES.get(objective) == "asc"
    known = [k for k, u in units.items() if u["objective"] is not None]
    return sorted(known, key=lambda k: (units[k]["objective"] if lowest_first else -units[k]["objective"], k))


def _envelope(message: str, fix: str, **extra: Any) -> dict[str, Any]:
    return error_body(status=409, error_code="EXPERIMENT_NOTHING_RANKED", message=message, suggested_fix=fix, **extra)


def experiment_advance(*, experiment_id: int) -> Experiment | None:
    """Move a RUNNING experiment on once its current phase's runs have all closed; otherwise write
    its progress. Idempotent; the row is locked, so two runs closing together advance it once."""
    with transaction.atomic():
        experiment = (
            Experiment.objects.select_for_update().filter(pk=experiment_id, status=Experiment.Status.RUNNING).first()
        )
        if experiment is None:
            return None
        # One grouped read while runs are open (each run's close lands here: the runs' metrics are
        # read only once the phase has closed).
        counts: dict[str, dict[str, float]] = defaultdict(lambda: {"runs": 0, "open": 0, "done": 0.0})
        for row in (
            ExperimentRun.objects.filter(experiment=experiment)
            .values("phase", "backtest__status")
            .annotate(n=Count("id"), p=Sum("backtest__progress"))
            .order_by()
        ):
            phase = counts[row["phase"]]
            phase["runs"] += row["n"]
            if row["backtest__status"] in OPEN_STATUSES:
                phase["open"] += row["n"]
                phase["done"] += float(row["p"] or 0.0)
            else:
                phase["done"] += row["n"]
        folds = len(experiment.folds)
        current = counts[Phase.IN_SAMPLE if experiment.phase == Experiment.Phase.IN_SAMPLE else Phase.OUT_OF_SAMPLE]
        if current["open"]:
            units = ExperimentRun.objects.filter(experiment=experiment, phase=Phase.IN_SAMPLE, fold=0).count()
            planned = (
                min(experiment.top_k, units) * folds
                if experiment.phase == Experiment.Phase.IN_SAMPLE
                else counts[Phase.OUT_OF_SAMPLE]["runs"]
            )
            total = counts[Phase.IN_SAMPLE]["runs"] + planned
            done = counts[Phase.IN_SAMPLE]["done"] + counts[Phase.OUT_OF_SAMPLE]["done"]
            Experiment.objects.filter(pk=experiment.pk).update(progress=round(min(done / total, 1.0), 4))
            return experiment
        in_runs = _runs_of(experiment, Phase.IN_SAMPLE)
        if experiment.phase == Experiment.Phase.IN_SAMPLE:
            _out_of_sample_start(experiment, in_runs)
        else:
            _finish(experiment, in_runs, _runs_of(experiment, Phase.OUT_OF_SAMPLE))
        experiment.refresh_from_db()
        return experiment


def _out_of_sample_start(experiment: Experiment, in_runs: list[ExperimentRun]) -> None:
    """Rank the in-sample sets; the best top_k become candidates and are re-run out of sample."""
    folds = len(experiment.folds)
    units = _units(in_runs, folds, experiment.objective)
    ranked = _ranked(units, experiment.objective)
    failures = _failures(in_runs, experiment)
    if not ranked:
        reasons = sorted({u["reason"] for u in units.values()})[:5]
        Experiment.objects.filter(pk=experiment.pk).update(
            status=Experiment.Status.FAILED,
            phase=Experiment.Phase.DONE,
            progress=1.0,
            failures=failures,
            finished_at=Now(),
            error=_envelope(
                f"No parameter set could be ranked in sample: none has a {experiment.objective} figure in every "
                f"fold ({len(failures)} run(s) failed). " + "; ".join(reasons),
                "Read the failed runs in `failures` (a data gap is the usual cause), fix it and create the "
                "experiment again; or choose an objective every run can compute (e.g. net_pnl).",
                failures=len(failures),
            ),
        )
        return
    chosen = ranked[: experiment.top_k]
    Candidate.objects.bulk_create(
        [
            Candidate(
                experiment=experiment,
                combo=combo,
                instrument=instrument,
                parameters=experiment.combinations[combo],
                in_sample_rank=position,
                in_sample_objective=units[(combo, instrument)]["objective"],
                in_sample={
                    "objective": _text(units[(combo, instrument)]["objective"]),
                    "runs": [_run_entry(r) for r in units[(combo, instrument)]["runs"]],
                },
            )
            for position, (combo, instrument) in enumerate(chosen, 1)
        ]
    )
    created_by = experiment.created_by
    _runs_create(
        experiment,
        [(Phase.OUT_OF_SAMPLE, fold, combo, instrument) for combo, instrument in chosen for fold in range(folds)],
        created_by,
    )
    Experiment.objects.filter(pk=experiment.pk).update(
        phase=Experiment.Phase.OUT_OF_SAMPLE,
        failures=failures,
        progress=_progress(experiment, in_runs, len(chosen) * folds),
    )


def _text(value: Decimal | None) -> str | None:
    if value is None:
        return None
    return format(value.quantize(Decimal("0.0001")).normalize(), "f")


def _weakest(verdicts: list[str | None]) -> str | None:
    if not verdicts or any(v not in VERDICT_ORDER for v in verdicts):
        return None
    return min(verdicts, key=lambda v: VERDICT_ORDER[v])  # type: ignore[index]


def _finish(experiment: Experiment, in_runs: list[ExperimentRun], out_runs: list[ExperimentRun]) -> None:
    folds = len(experiment.folds)
    objective = experiment.objective
    out_units = _units(out_runs, folds, objective)
    in_units = _units(in_runs, folds, objective)
    candidates = list(Candidate.objects.filter(experiment=experiment).order_by("in_sample_rank"))
    lowest_first = OBJECTIVES.get(objective) == "asc"
    ranked = sorted(
        (c for c in candidates if out_units.get((c.combo, c.instrument), {}).get("objective") is not None),
        key=lambda c: (
            out_units[(c.combo, c.instrument)]["objective"] * (1 if lowest_first else -1),
            c.in_sample_rank,
        ),
    )
    rank_of = {c.pk: position for position, c in enumerate(ranked, 1)}
    daily = _daily_pnl(experiment, in_runs + out_runs)
    for candidate in candidates:
        unit = out_units.get((candidate.combo, candidate.instrument), {"runs": [], "objective": None, "reason": ""})
        runs = unit["runs"]
        candidate.rank = rank_of.get(candidate.pk)
        candidate.out_of_sample_objective = unit["objective"]
        candidate.out_of_sample = {"objective": _text(unit["objective"]), "runs": [_run_entry(r) for r in runs]}
        candidate.verdict = _weakest([(r.backtest.classification or {}).get("verdict") for r in runs]) or ""
        candidate.unranked_reason = unit["reason"] if candidate.rank is None else ""
        candidate.overfit_warnings = _warnings(experiment, candidate, in_units, runs)
    Candidate.objects.bulk_update(
        candidates,
        ["rank", "out_of_sample_objective", "out_of_sample", "verdict", "unranked_reason", "overfit_warnings"],
    )
    failures = _failures(in_runs + out_runs, experiment)
    fields: dict[str, Any] = {
        "phase": Experiment.Phase.DONE,
        "progress": 1.0,
        "failures": failures,
        "finished_at": Now(),
        "luck": _luck(experiment, ranked[0] if ranked else None, in_units, out_units, daily),
    }
    if ranked:
        fields["status"] = Experiment.Status.SUCCEEDED
    else:
        fields["status"] = Experiment.Status.FAILED
        fields["error"] = _envelope(
            f"No candidate could be ranked out of sample: none of the {len(candidates)} re-run set(s) has a "
            f"{objective} figure in every test window ({len(failures)} run(s) failed).",
            "Read the failed runs in `failures`, fix the cause and create the experiment again.",
            failures=len(failures),
        )
    Experiment.objects.filter(pk=experiment.pk).update(**fields)


# -- honesty signals ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A stats result as JSON: dataclasses to dicts, numpy numbers and arrays to Python, NaN/inf to
    null."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Decimal):
        return str(value)
    return value


def _neighbours(experiment: Experiment, combo: int, instrument: str, in_units: dict[Any, Any]) -> list[Any]:
    """The in-sample objectives (floats, None where unknown) of the grid points one step away from
    this set along one parameter, on the same instrument."""
    grid = experiment.grid
    mine = experiment.combinations[combo]
    index = {json_key(p): i for i, p in enumerate(experiment.combinations)}
    out = []
    for name, values in grid.items():
        if len(values) < 2 or mine.get(name) not in values:
            continue
        at = values.index(mine[name])
        for step in (-1, 1):
            if 0 <= at + step < len(values):
                other = index.get(json_key({**mine, name: values[at + step]}))
                if other is not None:
                    value = in_units.get((other, instrument), {}).get("objective")
                    out.append(None if value is None else float(value))
    return out


def json_key(parameters: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, float(v)) for k, v in parameters.items()))


def _warnings(
    experiment: Experiment, candidate: Candidate, in_units: dict[Any, Any], out_runs: list[ExperimentRun]
) -> list[dict[str, Any]]:
    in_metrics = [r.backtest.metrics for r in in_units[(candidate.combo, candidate.instrument)]["runs"]]
    out_metrics = [r.backtest.metrics for r in out_runs]
    trades = list(
        BacktestTrade.objects.filter(backtest_id__in=[r.backtest_id for r in out_runs]).values_list("pnl", flat=True)
    )
    try:
        found = stats.overfit_warnings(
            in_sample=in_metrics[0] if len(in_metrics) == 1 else _pooled(in_metrics),
            out_of_sample=out_metrics[0] if len(out_metrics) == 1 else _pooled(out_metrics),
            objective=experiment.objective,
            neighbours=_neighbours(experiment, candidate.combo, candidate.instrument, in_units),
            trades_pnl=[float(p) for p in trades],
        )
    except Exception as exc:  # a statistics failure must not lose the experiment's results
        logger.exception("overfit warnings for candidate %s failed", candidate.pk)
        return [{"code": "NOT_JUDGED", "message": f"The overfitting checks failed: {exc}", "figures": {}}]
    return [_plain(w) for w in found]


def _pooled(metrics: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Several folds' figures as one: trades and money summed, the other figures averaged over the
    folds that have them (null when none has)."""
    out: dict[str, Any] = {}
    keys = {k for m in metrics for k in (m or {}) if k != "unknown"}
    for key in keys:
        values = [_value(m, key) for m in metrics]
        known = [v for v in values if v is not None]
        if not known:
            out[key] = None
        elif key in ("trades", "net_pnl", "gross_pnl", "fees", "slippage"):
            out[key] = str(sum(known, Decimal(0)))
        else:
            out[key] = str(sum(known, Decimal(0)) / len(known))
    if "trades" in out and out["trades"] is not None:
        out["trades"] = int(Decimal(out["trades"]))
    return out


# Trade dates of a window, per (instrument, timeframe, start, end): the zero days of a daily series.
def _window_days(instrument: str, timeframe: str, start: datetime, end: datetime) -> np.ndarray:
    tf = market_instruments.TIMEFRAME_SECONDS[timeframe]
    slots = expected_slots(instrument, tf, int(start.timestamp()), int(end.timestamp()))
    return np.unique(trade_dates(np.asarray(slots, dtype=np.int64) + tf))


def _daily_pnl(experiment: Experiment, runs: list[ExperimentRun]) -> dict[int, dict[int, float]]:
    """backtest id → {trade date ordinal: net PnL / initial capital} over every trade date of its
    window (0 where no trade closed), trades grouped by their exit's trade date."""
    by_backtest: dict[int, list[tuple[int, float]]] = defaultdict(list)
    ids = [r.backtest_id for r in runs if r.backtest.status == BacktestStatus.SUCCEEDED]
    for backtest_id, exit_ts, pnl in BacktestTrade.objects.filter(backtest_id__in=ids).values_list(
        "backtest_id", "exit_ts", "pnl"
    ):
        by_backtest[backtest_id].append((int(exit_ts.timestamp()), float(pnl)))
    capital = float(experiment.initial_capital)
    days_cache: dict[tuple[Any, ...], np.ndarray] = {}
    out: dict[int, dict[int, float]] = {}
    for run in runs:
        bt = run.backtest
        if bt.status != BacktestStatus.SUCCEEDED:
            continue
        key = (bt.instrument, bt.timeframe, bt.start, bt.end)
        if key not in days_cache:
            days_cache[key] = _window_days(*key)
        series = dict.fromkeys((int(d) for d in days_cache[key]), 0.0)
        trades = by_backtest.get(bt.pk, [])
        if trades:
            dates = trade_dates(np.array([t for t, _ in trades], dtype=np.int64))
            for day, (_, pnl) in zip(dates, trades, strict=True):
                series[int(day)] = series.get(int(day), 0.0) + pnl / capital
        out[bt.pk] = series
    return out


def _series(runs: list[ExperimentRun], daily: dict[int, dict[int, float]]) -> dict[int, float]:
    merged: dict[int, float] = {}
    for run in runs:
        for day, value in daily.get(run.backtest_id, {}).items():
            merged[day] = merged.get(day, 0.0) + value
    return merged


def _luck(
    experiment: Experiment,
    best: Candidate | None,
    in_units: dict[Any, Any],
    out_units: dict[Any, Any],
    daily: dict[int, dict[int, float]],
) -> dict[str, Any]:
    """How likely the winner is luck: the deflated Sharpe ratio of the best candidate's
    out-of-sample daily returns given every in-sample trial's Sharpe ratio, and with walk-forward
    folds the probability of backtest overfitting over the in-sample sets' daily returns. Each with
    its inputs, or null with the reason."""
    out: dict[str, Any] = {"deflated_sharpe": None, "pbo": None, "best_candidate_id": best.pk if best else None}
    no_folds = "PBO is computed over walk-forward folds; this experiment has one train/test split."
    # Every in-sample trial of the search counts (N): one without a Sharpe ratio too (stats counts it
    # in N, not in the variance); the daily series need every fold's run, so only complete trials.
    trials = {k: _series(u["runs"], daily) for k, u in in_units.items() if not u["reason"]}
    out["trials"] = len(in_units)
    try:
        trial_sharpes = [stats.sharpe([s[d] for d in sorted(s)]) for s in trials.values()]
        trial_sharpes += [None] * (len(in_units) - len(trials))
        out["trial_sharpes_known"] = sum(s is not None for s in trial_sharpes)
        if best is None:
            out["deflated_sharpe_reason"] = "no candidate was ranked out of sample."
        else:
            returns = _series(out_units[(best.combo, best.instrument)]["runs"], daily)
            result = stats.deflated_sharpe(returns=[returns[d] for d in sorted(returns)], trial_sharpes=trial_sharpes)
            out["deflated_sharpe"] = _plain(result)
            out["deflated_sharpe_reason"] = result.reason
    except Exception as exc:
        logger.exception("deflated Sharpe of experiment %s failed", experiment.pk)
        out["deflated_sharpe_reason"] = f"the computation failed: {exc}"
    if len(experiment.folds) < 2:
        out["pbo_reason"] = no_folds
        return out
    try:
        days = sorted({d for s in trials.values() for d in s})
        matrix = np.array([[s.get(d, 0.0) for s in trials.values()] for d in days], dtype=float)
        if matrix.size:
            result = stats.pbo(matrix)
            out["pbo"] = _plain(result)
            out["pbo_reason"] = result.reason
        else:
            out["pbo_reason"] = "no in-sample parameter set has a complete daily record to compare."
    except Exception as exc:
        logger.exception("PBO of experiment %s failed", experiment.pk)
        out["pbo_reason"] = f"the computation failed: {exc}"
    return out


# -- graduate -----------------------------------------------------------------------------------


def candidate_graduate(*, candidate: Candidate, actor: Any, name: str | None = None, bot_id: Any = None) -> Candidate:
    """A new LAB bot with the candidate's parameters (or a new config version of `bot_id`, which must
    trade the same strategy, instrument and timeframe), then the bot's own backtest over each of the
    candidate's out-of-sample windows (`backtest_create({"bot_id"})`): the same bars, parameters,
    costs and capital the candidate was judged on, recorded against the bot's config version, which
    is the evidence the LAB→PAPER gate reads. Audited."""
    experiment = candidate.experiment
    if experiment.status != Experiment.Status.SUCCEEDED or candidate.rank is None:
        raise CandidateNotGraduable(
            f"Candidate {candidate.pk} is not ranked out of sample (experiment {experiment.pk} is "
            f"{experiment.status}" + (f"; {candidate.unranked_reason}" if candidate.unranked_reason else "") + ")."
        )
    reason = f"graduated from strategy lab experiment {experiment.pk} ({experiment.name}), candidate {candidate.pk}"
    with transaction.atomic():
        if bot_id is not None:
            bot = _bot_for(bot_id, candidate, experiment)
            before = bot.config_version
            bot = bots.bot_update(bot=bot, actor=actor, reason=reason, parameters=dict(candidate.parameters))
            created = False
        else:
            provider = settings.MARKET_DATA_DEFAULT_PROVIDER
            bot = bots.bot_create(
                actor=actor,
                reason=reason,
                name=(name or f"{experiment.name} #{candidate.rank} {candidate.instrument}")[:100],
                strategy_key=experiment.strategy_key,
                instrument=candidate.instrument,
                timeframe=experiment.timeframe,
                parameters=dict(candidate.parameters),
                risk_limits=dict(experiment.risk_limits),
                **({"data_provider": provider} if provider in Bot.DataProvider.values else {}),
            )
            before = None
            created = True
        evidence = []
        for run in candidate.out_of_sample.get("runs", []):
            bt = backtests.backtest_create(
                data={
                    "bot_id": bot.pk,
                    "start": run["start"],
                    "end": run["end"],
                    "fill_model": experiment.fill_model,
                    "initial_capital": str(experiment.initial_capital),
                },
                actor=actor,
            )
            evidence.append(bt.pk)
        Candidate.objects.filter(pk=candidate.pk).update(
            bot=bot, bot_config_version=bot.config_version, graduation_backtests=evidence, graduated_at=Now()
        )
        candidate.refresh_from_db()
        audit_record(
            action="strategylab.candidate.graduate",
            actor=actor,
            target=candidate,
            before={"bot_config_version": before} if not created else None,
            after={
                "experiment_id": experiment.pk,
                "bot_id": bot.pk,
                "bot_created": created,
                "config_version": bot.config_version,
                "parameters": candidate.parameters,
                "graduation_backtests": evidence,
            },
            reason=reason,
        )
    return candidate


def _bot_for(bot_id: Any, candidate: Candidate, experiment: Experiment) -> Bot:
    if isinstance(bot_id, bool) or not isinstance(bot_id, int):
        raise BotValidationError({"bot_id": ["must be a bot's id (a whole number)."]}, "The graduation is not valid.")
    bot = Bot.objects.filter(pk=bot_id).first()
    if bot is None:
        raise BotValidationError({"bot_id": [f"no bot has id {bot_id}."]}, "The graduation is not valid.")
    mine = (experiment.strategy_key, candidate.instrument, experiment.timeframe)
    theirs = (bot.strategy_key, bot.instrument, bot.timeframe)
    if mine != theirs:
        raise BotValidationError(
            {
                "bot_id": [
                    f"bot {bot.pk} trades {theirs[0]} on {theirs[1]} {theirs[2]}; the candidate is {mine[0]} on "
                    f"{mine[1]} {mine[2]}. Graduate into a new bot instead (leave bot_id out)."
                ]
            },
            "The graduation is not valid.",
        )
    return bot


# -- review -------------------------------------------------------------------------------------


def _ai_provider() -> Any:
    """The first configured AI provider's spec (registry order), or IntegrationKeyMissing naming
    every AI key (any one of them unlocks the review)."""
    specs = [s for s in registry.PROVIDERS.values() if s.category == registry.Category.AI]
    for spec in specs:
        if credentials.resolve(spec).configured:
            return spec
    error = IntegrationKeyMissing("an AI provider", [s.required_env_vars[0] for s in specs])
    error.message = "No AI provider is configured, so no review can be written. Any one of them will do."
    error.suggested_fix = (
        "Enter one AI provider's key (e.g. ANTHROPIC_API_KEY or OPENAI_API_KEY) on the Connections page "
        "(admin), or set it in the environment, then Verify. The review is optional: nothing else needs it."
    )
    raise error


def review_prompt(experiment: Experiment) -> str:
    """What the reviewer reads: the experiment, its ranked candidates with both windows' figures and
    warnings, and the luck statistics. Ids and figures only: no credential, no user."""
    lines = [
        "You are reviewing a futures strategy parameter search for a trading desk. Say plainly whether the "
        "best candidates look robust or overfit, citing the figures; do not recommend live trading.",
        f"Strategy: {experiment.strategy_key} on {', '.join(experiment.instruments)} {experiment.timeframe} bars.",
        f"Objective: {experiment.objective}. Parameter grid: {experiment.grid}.",
        f"In-sample parameter sets tried: {len(experiment.combinations) * len(experiment.instruments)}; "
        f"folds: {len(experiment.folds)}; re-run out of sample: top {experiment.top_k}.",
        f"Windows: {experiment.folds}.",
        f"Failed runs: {len(experiment.failures)}.",
        f"Luck statistics: {experiment.luck}.",
        "Candidates (rank by out-of-sample objective):",
    ]
    keys = ("net_pnl", "trades", "win_rate", "profit_factor", "expectancy", "max_drawdown", "sharpe")
    for c in experiment.candidates.order_by(F("rank").asc(nulls_last=True), "in_sample_rank"):
        ins = [{k: (r.get("metrics") or {}).get(k) for k in keys} for r in c.in_sample.get("runs", [])]
        oos = [{k: (r.get("metrics") or {}).get(k) for k in keys} for r in c.out_of_sample.get("runs", [])]
        warnings = [w.get("code") for w in c.overfit_warnings]
        lines.append(
            f"- rank {c.rank} (in-sample rank {c.in_sample_rank}) {c.instrument} {c.parameters}: verdict "
            f"{c.verdict or 'none'}; in-sample {experiment.objective} {c.in_sample.get('objective')} {ins}; "
            f"out-of-sample {c.out_of_sample.get('objective')} {oos}; warnings {warnings}."
        )
    return "\n".join(lines)


def experiment_review(*, experiment: Experiment, actor: Any) -> Experiment:
    """An AI provider's written review of a finished experiment, through the provider's metered
    client (a usage event per call), stored on the experiment. Never read by any decision. 409
    INTEGRATION_KEY_MISSING when no AI provider is configured. Audited."""
    if experiment.status not in (Experiment.Status.SUCCEEDED, Experiment.Status.FAILED):
        raise ExperimentStateConflict(
            f"Experiment {experiment.pk} is {experiment.status}; a review reads finished results.",
            suggested_fix="Wait for the experiment to finish, then ask for the review.",
        )
    spec = _ai_provider()
    client = spec.client_class().for_bot(None)
    text = client.complete(review_prompt(experiment), max_tokens=settings.LAB_REVIEW_MAX_TOKENS)
    model = str(getattr(client, "model", "") or "")
    Experiment.objects.filter(pk=experiment.pk).update(
        review_text=text, review_provider=spec.provider, review_model=model, reviewed_at=timezone.now()
    )
    experiment.refresh_from_db()
    audit_record(
        action="strategylab.experiment.review",
        actor=actor,
        target=experiment,
        after={"provider": spec.provider, "model": model, "characters": len(text)},
    )
    return experiment
