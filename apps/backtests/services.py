"""Backtests: create, cancel, and the `backtest.run` job that runs one (SPEC §9).

A backtest is a row (QUEUED) and a ledger job of type `backtest.run` (idempotency key
`backtest:<id>`) published to the Celery queue `backtests`, which only the `backtests` worker
consumes, so a backtest never delays a tick. The job's handler, `backtest_run`:

1. claims the row: QUEUED (or RUNNING, when a lost worker's job is run again) → RUNNING;
2. reads the bars: the warm-up (`required_bars - 1` bars before `start`, as a runner started at
   `start` would hold them) and the window [start, end). Slots the market traded in with no stored
   bar are fetched from the data provider (metered, through apps.market.services.bars, page by
   page); slots still missing after that fail the backtest with DATA_UNAVAILABLE naming the gaps.
   It never runs on part of the window;
3. runs apps.trading.engine.run over them (the SIM runner's semantics), writing `progress` at most
   every PROGRESS_SECONDS, extending the job's lease, and reading the row for a cancel;
4. stores the trades (bulk), the figures, verdict and equity curve (apps.backtests.metrics) and
   SUCCEEDED, in one transaction that holds the job's lease (fenced: a worker whose lease the
   watchdog took writes nothing).

A failure the backtest itself explains (no data, a window too slow to finish) is FAILED with the
SPEC §2 envelope in `error`, and the job SUCCEEDED (it did its work). An unexpected error puts the
row back to QUEUED and lets the ledger retry; on the last attempt it is FAILED with INTERNAL_ERROR.

Layers: backtests sits below bots and runners (the bots' LAB→PAPER gate reads backtests). What a
backtest needs from above is never imported: the bot row by
its label, the strategy catalogue (apps/trading/catalogue.py, pure data) and the job ledger
(apps/runners/services/jobs.py) in `catalogue` and `ledger.ledger()`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.apps import apps as django_apps
from django.conf import settings
from django.db import connection, transaction
from django.db.models import CharField, OuterRef, Subquery, Value
from django.db.models.functions import Cast, Concat, Now
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.backtests import ledger, selectors
from apps.backtests.exceptions import BacktestNotCancellable, BacktestValidationError
from apps.backtests.models import OPEN_STATUSES, Backtest, BacktestMatrix, BacktestTrade, Status
from apps.backtests.selectors import OBJECTIVES
from apps.core import context
from apps.core.audit import audit_record
from apps.core.errors import error_body
from apps.core.exceptions import ApplicationError
from apps.market import hours
from apps.market import instruments as market_instruments
from apps.market import services as market
from apps.market.arrays import BarArrays, BarGap, cached_bar_window, expected_slots
from apps.market.bars import from_epoch
from apps.trading import catalogue, engine
from apps.trading import services as trading_services
from apps.trading import strategies as trading_strategies
from apps.trading.fills import FillModel

logger = logging.getLogger("tradeops.backtests")

JOB_TYPE = "backtest.run"
DEFAULT_INITIAL_CAPITAL = Decimal(10000)
# The most bars a window may hold: about 19 years of one-minute bars. Bounds a worker's memory
# (the arrays take about 48 bytes a bar) and the time one job holds a backtests worker.
MAX_WINDOW_BARS = 5_000_000
MAX_SLIPPAGE_TICKS = 1000
# How often a running backtest writes its progress and reads its row for a cancel (one UPDATE).
PROGRESS_SECONDS = 0.5
# Gaps named in a DATA_UNAVAILABLE error (the total is always given).
MAX_GAPS_NAMED = 20
# Share of the progress bar given to fetching missing bars, when there are any.
FETCH_SHARE = 0.3
# A run whose bars are not in its worker's cache reads at least this many bars before its window
# (well past any catalogue strategy's warm-up), so that the other runs of its matrix, whose
# warm-ups differ with their parameters, find theirs inside that read.
WARMUP_READ_BARS = 1024

INPUT_FIELDS = frozenset(
    {
        "bot_id",
        "strategy_key",
        "parameters",
        "instrument",
        "timeframe",
        "start",
        "end",
        "fill_model",
        "risk_limits",
        "initial_capital",
    }
)
STRATEGY_FIELDS = ("strategy_key", "parameters", "instrument", "timeframe")


# -- the layers above ---------------------------------------------------------------------------


def _job_model() -> Any:
    return django_apps.get_model("runners", "Job")


# -- create -------------------------------------------------------------------------------------


def _label(actor: Any) -> str:
    return actor.get_username() if getattr(actor, "is_authenticated", False) else "system"


def _utc(value: Any, name: str, errors: dict[str, Any]) -> datetime | None:
    if isinstance(value, datetime):
        parsed: datetime | None = value
    elif isinstance(value, str):
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            parsed = None
    else:
        parsed = None
    if parsed is None:
        errors[name] = ["must be an ISO 8601 time in UTC, e.g. 2025-01-06T00:00:00Z."]
        return None
    if parsed.tzinfo is None:
        errors[name] = ["must carry its time zone (UTC), e.g. 2025-01-06T00:00:00Z."]
        return None
    return parsed.astimezone(UTC)


def _decimal(value: Any) -> Decimal | None:
    """A finite Decimal from a JSON number or a decimal string, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _fill_model(value: Any, errors: dict[str, Any]) -> dict[str, Any] | None:
    """The fill model to store: the SIM fill model's values for anything not given."""
    sim = trading_services.sim_fill_model()
    if value is None:
        value = {}
    if not isinstance(value, dict):
        errors["fill_model"] = ["must be an object with slippage_ticks and commission_per_contract."]
        return None
    problems: dict[str, list[str]] = {}
    for name in value:
        if name not in ("slippage_ticks", "commission_per_contract"):
            problems[name] = ["is not a fill model field (slippage_ticks, commission_per_contract)."]
    slippage = value.get("slippage_ticks", sim.slippage_ticks)
    if isinstance(slippage, float) and slippage.is_integer():
        slippage = int(slippage)
    if isinstance(slippage, bool) or not isinstance(slippage, int) or not 0 <= slippage <= MAX_SLIPPAGE_TICKS:
        problems["slippage_ticks"] = [f"must be a whole number of ticks from 0 to {MAX_SLIPPAGE_TICKS}."]
    commission = _decimal(value.get("commission_per_contract", sim.commission_per_contract))
    if commission is None or commission < 0:
        problems["commission_per_contract"] = ['must be a decimal number of USD of at least 0, e.g. "0.85".']
    elif commission.as_tuple().exponent < -4 or commission > 1000:  # type: ignore[operator]
        problems["commission_per_contract"] = ["must be at most 1000 USD, with at most 4 decimal places."]
    if problems:
        errors["fill_model"] = problems
        return None
    assert commission is not None
    return {"slippage_ticks": slippage, "commission_per_contract": _plain(commission)}


def _plain(number: Decimal) -> str:
    """A decimal string without exponent or trailing zeros beyond the cents: 0.85, 10000.00, 0.125."""
    text = format(number.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def _initial_capital(value: Any, errors: dict[str, Any]) -> Decimal | None:
    if value is None:
        return DEFAULT_INITIAL_CAPITAL
    capital = _decimal(value)
    if capital is None or capital <= 0:
        errors["initial_capital"] = ["must be a positive amount of USD, e.g. 10000."]
        return None
    if capital.as_tuple().exponent < -2 or capital >= Decimal(10) ** 16:  # type: ignore[operator]
        errors["initial_capital"] = ["must be in whole cents and below 10^16 USD."]
        return None
    return capital


def _risk_limits(value: Any, errors: dict[str, Any]) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        errors["risk_limits"] = ["must be an object of limit names to positive numbers, or null for none."]
        return None
    clean, problems = catalogue.risk_limit_errors(value)
    if problems:
        errors["risk_limits"] = problems
        return None
    return clean


def _strategy_config(data: Mapping[str, Any], errors: dict[str, Any]) -> dict[str, Any]:
    """strategy_key, parameters (defaults filled in), instrument, timeframe of a strategy backtest."""
    out: dict[str, Any] = {}
    strategy = catalogue.strategy_for(data.get("strategy_key"))
    if strategy is None:
        errors["strategy_key"] = [f"must be one of: {', '.join(catalogue.STRATEGIES)}."]
    else:
        out["strategy_key"] = strategy.key
    parameters = data.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        errors["parameters"] = ["must be an object of parameter names to numbers."]
    elif strategy is not None:
        # Parameters not given take the strategy's defaults, so the stored set is complete.
        clean, problems = catalogue.parameter_errors(strategy, {**strategy.defaults(), **parameters})
        if problems:
            errors["parameters"] = problems
        else:
            out["parameters"] = clean
    instrument = data.get("instrument")
    instrument = instrument.strip().upper() if isinstance(instrument, str) else instrument
    if instrument not in catalogue.INSTRUMENTS:
        errors["instrument"] = [f"must be one of: {', '.join(catalogue.INSTRUMENTS)}."]
    else:
        out["instrument"] = instrument
    if data.get("timeframe") not in catalogue.TIMEFRAMES:
        errors["timeframe"] = [f"must be one of: {', '.join(catalogue.TIMEFRAMES)}."]
    else:
        out["timeframe"] = data["timeframe"]
    out["data_provider"] = settings.MARKET_DATA_DEFAULT_PROVIDER
    return out


def _bot_config(data: Mapping[str, Any], errors: dict[str, Any]) -> dict[str, Any]:
    """A bot's backtest: its strategy, current parameters, instrument, timeframe, data provider,
    risk limits and config version, as they are now."""
    for name in STRATEGY_FIELDS:
        if name in data:
            errors[name] = ["give either bot_id (the bot's current config) or the strategy fields, not both."]
    bot_id = data.get("bot_id")
    if isinstance(bot_id, bool) or not isinstance(bot_id, int):
        errors["bot_id"] = ["must be a bot's id (a whole number)."]
        return {}
    bot = django_apps.get_model("bots", "Bot").objects.filter(pk=bot_id).first()
    if bot is None:
        errors["bot_id"] = [f"no bot has id {bot_id}."]
        return {}
    return {
        "bot": bot,
        "config_version": bot.config_version,
        "strategy_key": bot.strategy_key,
        "parameters": dict(bot.parameters),
        "instrument": bot.instrument,
        "timeframe": bot.timeframe,
        "data_provider": bot.data_provider,
        "risk_limits": dict(bot.risk_limits),
    }


def _window(config: dict[str, Any], start: datetime, end: datetime, errors: dict[str, Any]) -> None:
    """The window must hold at least one bar the market traded in, and at most MAX_WINDOW_BARS."""
    spec = market_instruments.get(config["instrument"])
    tf = market_instruments.TIMEFRAME_SECONDS.get(config["timeframe"])
    if spec is None or tf is None:
        return
    slots = len(expected_slots(spec, tf, int(start.timestamp()), int(end.timestamp())))
    if slots == 0:
        message = f"{spec.root} does not trade between start and end: the window holds no {config['timeframe']} bar."
        errors["start"] = errors["end"] = [message]
    elif slots > MAX_WINDOW_BARS:
        errors["end"] = [
            f"the window holds {slots:,} {config['timeframe']} bars; at most {MAX_WINDOW_BARS:,} per backtest."
        ]


def _config_validate(data: Mapping[str, Any], errors: dict[str, Any]) -> dict[str, Any]:
    """Everything of a backtest but its window: the bot's config or the strategy's, risk limits,
    fill model and capital (shared by one backtest and a matrix's base)."""
    from_bot = data.get("bot_id") is not None
    config = _bot_config(data, errors) if from_bot else _strategy_config(data, errors)
    if "risk_limits" in data:
        # Given (an object, or null for no risk checks): it replaces the bot's.
        config["risk_limits"] = _risk_limits(data["risk_limits"], errors)
    elif not from_bot:
        config["risk_limits"] = None  # a strategy backtest has no limits unless given
    config["fill_model"] = _fill_model(data.get("fill_model"), errors)
    config["initial_capital"] = _initial_capital(data.get("initial_capital"), errors)
    return config


def _window_validate(
    config: dict[str, Any], start_value: Any, end_value: Any, errors: dict[str, Any], now: datetime
) -> tuple[datetime | None, datetime | None]:
    """(start, end) in UTC, with start < end <= now and a window the instrument trades in; the
    problems go to errors["start"] / errors["end"]."""
    start = _utc(start_value, "start", errors)
    end = _utc(end_value, "end", errors)
    if start is not None and end is not None:
        if not start < end:
            errors["end"] = ["must be after start."]
        elif end > now:
            errors["end"] = [f"is in the future (now {now:%Y-%m-%dT%H:%M:%SZ}): only closed bars can be backtested."]
        elif {"instrument", "timeframe"} <= set(config):
            _window(config, start, end, errors)
    return start, end


def backtest_validate(*, data: Any, now: datetime | None = None) -> dict[str, Any]:
    """The Backtest fields for a request body, or BacktestValidationError naming every bad field."""
    if not isinstance(data, Mapping):
        raise BacktestValidationError({"non_field_errors": ["The body must be a JSON object."]})
    errors: dict[str, Any] = {name: ["is not a backtest field."] for name in data if name not in INPUT_FIELDS}
    config = _config_validate(data, errors)
    start, end = _window_validate(config, data.get("start"), data.get("end"), errors, now or timezone.now())
    if errors:
        raise BacktestValidationError(errors, "The backtest request is not valid; see `fields`.")
    return {**config, "start": start, "end": end}


def _snapshot(backtest: Backtest) -> dict[str, Any]:
    return {
        "status": backtest.status,
        "bot_id": backtest.bot_id,
        "config_version": backtest.config_version,
        "strategy_key": backtest.strategy_key,
        "parameters": backtest.parameters,
        "instrument": backtest.instrument,
        "timeframe": backtest.timeframe,
        "start": backtest.start.isoformat(),
        "end": backtest.end.isoformat(),
        "fill_model": backtest.fill_model,
        "risk_limits": backtest.risk_limits,
        "initial_capital": str(backtest.initial_capital),
        "job_id": backtest.job_id,
    }


@transaction.atomic
def backtest_create(*, data: Any, actor: Any, matrix: Any = None) -> Backtest:
    """Validate (every bad field named at once), create the row QUEUED and its `backtest.run` job,
    published to the `backtests` queue once the transaction commits. Audited."""
    fields = backtest_validate(data=data)
    backtest = Backtest.objects.create(
        **fields,
        matrix=matrix,
        status=Status.QUEUED,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )
    backtest.job = ledger.ledger().job_enqueue(
        type=JOB_TYPE, payload={"backtest_id": backtest.pk}, idempotency_key=f"backtest:{backtest.pk}"
    )
    backtest.save(update_fields=["job"])
    audit_record(action="backtest.create", actor=actor, target=backtest, after=_snapshot(backtest))
    return backtest


# -- cancel -------------------------------------------------------------------------------------


@transaction.atomic
def backtest_cancel(*, backtest: Backtest, actor: Any, reason: str = "") -> Backtest:
    """QUEUED or RUNNING → CANCELLED. A queued job is cancelled in the ledger; a running one sees
    the row through the engine's `cancelled()` callback (read at most every PROGRESS_SECONDS) and
    stops there, storing nothing. Audited."""
    before = Backtest.objects.filter(pk=backtest.pk).values_list("status", flat=True).first()
    moved = Backtest.objects.filter(pk=backtest.pk, status__in=OPEN_STATUSES).update(
        status=Status.CANCELLED, finished_at=Now()
    )
    backtest.refresh_from_db()
    if not moved:
        raise BacktestNotCancellable(
            f"Backtest {backtest.pk} is {backtest.status}; only QUEUED or RUNNING backtests can be cancelled."
        )
    jobs = ledger.ledger()
    job = _job_model().objects.filter(pk=backtest.job_id).first() if backtest.job_id else None
    # A worker that claimed the job meanwhile (JobNotCancellable) finds the row CANCELLED and stops.
    if job is not None and job.status in (job.Status.QUEUED, job.Status.FAILED):
        with contextlib.suppress(jobs.JobNotCancellable):
            jobs.job_cancel(job=job, actor=actor, reason=reason or f"backtest {backtest.pk} cancelled")
    audit_record(
        action="backtest.cancel",
        actor=actor,
        target=backtest,
        before={"status": before},
        after={"status": backtest.status},
        reason=reason,
    )
    if backtest.matrix_id is not None:
        matrix_refresh(matrix_id=backtest.matrix_id)
    return backtest


def backtest_job_closed(job: Any) -> None:
    """The ledger closed a `backtest.run` job without its handler (JOB_CLOSED_HOOKS): cancelled by
    an operator on the Jobs page, or dead-lettered (its worker lost on every attempt). A backtest
    still open follows it, so it never stays QUEUED or RUNNING with no job to run it."""
    open_rows = Backtest.objects.filter(job_id=job.pk, status__in=OPEN_STATUSES)
    followed = list(open_rows.values_list("pk", flat=True))
    if job.status == job.Status.CANCELLED:
        open_rows.update(status=Status.CANCELLED, finished_at=Now())
    elif job.status == job.Status.DEAD:
        with context.bind(trace_id=job.trace_id):  # the job's trace id: its log lines carry it
            error = error_body(
                status=500,
                error_code="INTERNAL_ERROR",
                message=f"The job running this backtest (job {job.pk}) was given up after {job.attempts} "
                f"attempt(s): {job.error or 'no error recorded'}",
                suggested_fix="Run the backtest again; if it fails the same way, give the trace id to the "
                "TradeOps operators (the backtests worker's log has the cause).",
            )
        open_rows.update(status=Status.FAILED, finished_at=Now(), error=error)
    _matrix_refresh_for(backtest_ids=followed)


# -- the matrix ---------------------------------------------------------------------------------
# POST /api/backtests/matrix (SPEC §9): one base config (as POST /api/backtests) × a parameter grid
# × instruments × windows. Each combination is a Backtest row with the matrix's FK and its own
# `backtest.run` job on the backtests queue, so the runs spread over the backtests workers, each
# reading its bars through the per-process cache (runs of one instrument and window are created
# next to each other, so a worker meets the same bars run after run). The matrix row's status and
# progress follow its runs (`matrix_refresh`, after each run closes).

MATRIX_FIELDS = frozenset({"grid", "instruments", "windows", "objective"})
MATRIX_MAX_RUNS = 10_000  # SPEC §9
MATRIX_MAX_WINDOWS = 1_000
# Skipped combinations named on the matrix (the count is always given).
MATRIX_SKIPPED_NAMED = 20


def _grid(value: Any, strategy: Any, base: dict[str, Any], errors: dict[str, Any]) -> dict[str, list[Any]]:
    """{parameter: [values]} checked against the catalogue: each a parameter of the strategy, each
    value in its range (400 naming the parameter and the value); duplicates dropped, order kept."""
    if not isinstance(value, dict):
        errors["grid"] = ['must be an object of parameter names to lists of values, e.g. {"fast_period": [5, 10]}.']
        return {}
    problems: dict[str, list[str]] = {}
    grid: dict[str, list[Any]] = {}
    for name, values in value.items():
        spec = strategy.parameter(name)
        if spec is None:
            known = ", ".join(p.name for p in strategy.parameters)
            problems[name] = [f"is not a parameter of {strategy.key} (known: {known})."]
        elif not isinstance(values, list) or not values:
            problems[name] = ["must be a non-empty list of values."]
        elif bad := [f"{v!r} {spec.problem(v)}" for v in values if spec.problem(v) is not None]:
            problems[name] = bad
        else:
            grid[name] = list(dict.fromkeys(spec.coerce(v) for v in values))
    if problems:
        errors["grid"] = problems
    return grid


def _instruments(value: Any, default: str | None, errors: dict[str, Any]) -> list[str]:
    if value is None:
        return [default] if default else []
    if not isinstance(value, list) or not value:
        errors["instruments"] = [f"must be a non-empty list of instruments ({', '.join(catalogue.INSTRUMENTS)})."]
        return []
    clean = [v.strip().upper() if isinstance(v, str) else v for v in value]
    bad = [
        f"{v!r} is not an instrument ({', '.join(catalogue.INSTRUMENTS)})."
        for v in clean
        if v not in catalogue.INSTRUMENTS
    ]
    if bad:
        errors["instruments"] = bad
        return []
    return list(dict.fromkeys(clean))


def _windows(
    data: Mapping[str, Any], config: dict[str, Any], instruments: list[str], errors: dict[str, Any], now: datetime
) -> list[tuple[datetime, datetime]]:
    """The windows: `windows` ([{"start", "end"}]) or the base's start and end; each checked as one
    backtest's window for every instrument (400 naming the window by its index)."""
    if "windows" not in data:
        raw = [{"start": data.get("start"), "end": data.get("end")}]
        named = False
    else:
        raw = data["windows"]
        named = True
        for name in ("start", "end"):
            if name in data:
                errors[name] = ["give start and end, or windows, not both."]
        if not isinstance(raw, list) or not raw or len(raw) > MATRIX_MAX_WINDOWS:
            errors["windows"] = [f'must be a list of 1 to {MATRIX_MAX_WINDOWS} windows, each {{"start", "end"}}.']
            return []
    problems: dict[str, Any] = {}
    windows: list[tuple[datetime, datetime]] = []
    for index, window in enumerate(raw):
        found: dict[str, Any] = {}
        if not isinstance(window, dict) or set(window) - {"start", "end"}:
            found["non_field_errors"] = ['must be an object with "start" and "end" only.']
        else:
            start = end = None
            # Without a valid instrument the window is checked for its times only.
            targets = [{**config, "instrument": i} for i in instruments] or [
                {k: v for k, v in config.items() if k != "instrument"}
            ]
            for target in targets:
                start, end = _window_validate(target, window.get("start"), window.get("end"), found, now)
                if found:
                    break
            if not found and start is not None and end is not None:
                windows.append((start, end))
        if found:
            problems[str(index)] = found
    if problems:
        if named:
            errors["windows"] = problems
        else:
            errors.update(problems["0"])
    return list(dict.fromkeys(windows))


def _combinations(
    strategy: Any, base: dict[str, Any], grid: dict[str, list[Any]], skipped: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Every parameter set of the grid over the base parameters that the strategy's own rules allow
    (e.g. a fast period below the slow one); the others go to `skipped` with the rule they break."""
    names = list(grid)
    out = []
    for values in itertools.product(*(grid[n] for n in names)):
        combo = dict(zip(names, values, strict=True))
        clean, problems = catalogue.parameter_errors(strategy, {**base, **combo})
        if problems:
            why = "; ".join(f"{k} {' '.join(v)}" for k, v in sorted(problems.items()))
            skipped.append({"parameters": combo, "reason": why})
        else:
            out.append(clean)
    return out


def matrix_validate(*, data: Any, now: datetime | None = None) -> dict[str, Any]:
    """The matrix's base config, runs and names for a request body, or BacktestValidationError
    naming every bad field (a grid parameter by its name, a window by its index, too many runs)."""
    if not isinstance(data, Mapping):
        raise BacktestValidationError({"non_field_errors": ["The body must be a JSON object."]})
    now = now or timezone.now()
    errors: dict[str, Any] = {
        name: ["is not a matrix field."] for name in data if name not in INPUT_FIELDS | MATRIX_FIELDS
    }
    base = {k: v for k, v in data.items() if k in INPUT_FIELDS and k not in ("start", "end")}
    listed = data.get("instruments")
    from_bot = data.get("bot_id") is not None
    if not from_bot and "instrument" not in base and isinstance(listed, list) and listed:
        base["instrument"] = listed[0]  # a strategy matrix may name its instruments only in `instruments`
    config = _config_validate(base, errors)
    instruments = _instruments(listed, config.get("instrument"), errors)
    windows = _windows(data, config, instruments, errors, now)
    objective = data.get("objective", "expectancy")
    if objective not in OBJECTIVES:
        errors["objective"] = [f"must be one of: {', '.join(OBJECTIVES)}."]
    strategy = catalogue.strategy_for(config.get("strategy_key"))
    grid = _grid(data.get("grid"), strategy, config.get("parameters", {}), errors) if strategy else {}
    skipped: list[dict[str, Any]] = []
    combinations: list[dict[str, Any]] = []
    if strategy is not None and "grid" not in errors and "parameters" in config:
        product = math.prod(len(v) for v in grid.values())
        runs = product * max(len(instruments), 1) * max(len(windows), 1)
        if runs > MATRIX_MAX_RUNS:
            errors["grid"] = [
                f"{runs:,} runs ({product:,} parameter combinations × {len(instruments)} instrument(s) × "
                f"{len(windows)} window(s)); a matrix may have at most {MATRIX_MAX_RUNS:,}."
            ]
        else:
            combinations = _combinations(strategy, config["parameters"], grid, skipped)
            if not combinations:
                errors["grid"] = [f"every combination breaks a rule of {strategy.key}: {skipped[0]['reason']}"]
    if errors:
        raise BacktestValidationError(errors, "The matrix request is not valid; see `fields`.")
    return {
        "config": config,
        "grid": grid,
        "instruments": instruments,
        "windows": windows,
        "objective": objective,
        "combinations": combinations,
        "skipped": skipped,
    }


@transaction.atomic
def matrix_create(*, data: Any, actor: Any) -> BacktestMatrix:
    """Validate, then create the matrix, its runs (QUEUED Backtest rows) and one `backtest.run` job
    per run, published to the backtests queue once the transaction commits. Audited once."""
    spec = matrix_validate(data=data)
    config = spec["config"]
    bot = config.get("bot")
    created_by = actor if getattr(actor, "is_authenticated", False) else None
    skipped = spec["skipped"]
    runs = len(spec["combinations"]) * len(spec["instruments"]) * len(spec["windows"])
    matrix = BacktestMatrix.objects.create(
        base_config={
            "bot_id": bot.pk if bot is not None else None,
            "config_version": config.get("config_version"),
            "strategy_key": config["strategy_key"],
            "parameters": config["parameters"],
            "timeframe": config["timeframe"],
            "data_provider": config["data_provider"],
            "fill_model": config["fill_model"],
            "risk_limits": config["risk_limits"],
            "initial_capital": _plain(config["initial_capital"]),
            "skipped_combinations": {"count": len(skipped), "examples": skipped[:MATRIX_SKIPPED_NAMED]},
        },
        grid=spec["grid"],
        instruments=spec["instruments"],
        windows=[{"start": s.isoformat(), "end": e.isoformat()} for s, e in spec["windows"]],
        objective=spec["objective"],
        status=Status.QUEUED,
        progress=0.0,
        runs=runs,
        created_by=created_by,
    )
    common = {
        "bot": bot,
        "config_version": config.get("config_version"),
        "strategy_key": config["strategy_key"],
        "timeframe": config["timeframe"],
        "data_provider": config["data_provider"],
        "fill_model": config["fill_model"],
        "risk_limits": config["risk_limits"],
        "initial_capital": config["initial_capital"],
        "matrix": matrix,
        "status": Status.QUEUED,
        "created_by": created_by,
    }
    rows = Backtest.objects.bulk_create(
        [
            Backtest(**common, parameters=parameters, instrument=instrument, start=start, end=end)
            for instrument in spec["instruments"]
            for start, end in spec["windows"]
            for parameters in spec["combinations"]
        ],
        batch_size=2000,
    )
    ledger.ledger().job_enqueue_many(
        type=JOB_TYPE, items=[({"backtest_id": row.pk}, f"backtest:{row.pk}") for row in rows]
    )
    Backtest.objects.filter(matrix=matrix).update(
        job_id=Subquery(
            _job_model()
            .objects.filter(idempotency_key=Concat(Value("backtest:"), Cast(OuterRef("pk"), CharField())))
            .values("pk")[:1]
        )
    )
    audit_record(
        action="backtest_matrix.create",
        actor=actor,
        target=matrix,
        after={
            "runs": runs,
            "strategy_key": config["strategy_key"],
            "bot_id": matrix.base_config["bot_id"],
            "grid": spec["grid"],
            "instruments": spec["instruments"],
            "windows": matrix.windows,
            "objective": spec["objective"],
            "skipped_combinations": len(skipped),
        },
    )
    return matrix


def matrix_cancel(*, matrix: BacktestMatrix, actor: Any, reason: str = "") -> BacktestMatrix:
    """Cancel what has not finished: every QUEUED or RUNNING run → CANCELLED (a running engine sees
    it through its cancelled() callback and stores nothing), their waiting jobs cancelled in the
    ledger, the matrix CANCELLED. Finished runs keep their results. Audited once."""
    with transaction.atomic():
        open_runs = Backtest.objects.filter(matrix=matrix, status__in=OPEN_STATUSES)
        job_ids = [j for j in open_runs.values_list("job_id", flat=True) if j is not None]
        cancelled = open_runs.update(status=Status.CANCELLED, finished_at=Now())
        # Runs before the matrix row: the order every writer takes them in (no deadlock).
        moved = BacktestMatrix.objects.filter(pk=matrix.pk, status__in=OPEN_STATUSES).update(
            status=Status.CANCELLED, finished_at=Now()
        )
        if not cancelled and not moved:
            matrix.refresh_from_db()
            raise BacktestNotCancellable(
                f"Matrix {matrix.pk} is {matrix.status}: every run has finished, there is nothing to cancel.",
                suggested_fix="Nothing to cancel. Create a new matrix if you need other runs.",
            )
        jobs = ledger.ledger().job_cancel_queued(job_ids=job_ids)
        audit_record(
            action="backtest_matrix.cancel",
            actor=actor,
            target=matrix,
            after={"runs_cancelled": cancelled, "jobs_cancelled": len(jobs)},
            reason=reason,
        )
    matrix_refresh(matrix_id=matrix.pk)
    matrix.refresh_from_db()
    return matrix


def matrix_refresh(*, matrix_id: int) -> None:
    """Write the matrix's status, progress and finished_at from its runs (after a run closes). The
    matrix row is locked first, so two runs closing together leave the later count. A CANCELLED
    matrix stays CANCELLED. Inside a caller's transaction it is part of it (no savepoint)."""
    with transaction.atomic(savepoint=False):
        matrix = BacktestMatrix.objects.select_for_update().filter(pk=matrix_id).first()
        if matrix is None:
            return
        state = selectors.matrix_state(matrix=matrix)
        fields: dict[str, Any] = {"progress": state["progress"], "status": state["status"]}
        if state["status"] not in OPEN_STATUSES and matrix.finished_at is None:
            fields["finished_at"] = Now()
        BacktestMatrix.objects.filter(pk=matrix_id).update(**fields)


def _matrix_refresh_for(*, backtest_ids: list[Any]) -> None:
    """matrix_refresh for the matrices these runs belong to; never raises (a run's own outcome is
    already stored, and the next run's close or a read corrects the matrix row)."""
    try:
        ids = set(
            Backtest.objects.filter(
                pk__in=[i for i in backtest_ids if isinstance(i, int)], matrix__isnull=False
            ).values_list("matrix_id", flat=True)
        )
        for matrix_id in ids:
            matrix_refresh(matrix_id=matrix_id)
    except Exception:
        logger.exception("matrix refresh after backtests %s failed", backtest_ids)


# -- the job ------------------------------------------------------------------------------------


class _Stop(Exception):
    """The run stops where it is: cancelled (the row is no longer RUNNING) or the lease was lost."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class _Failed(Exception):
    """The backtest fails with this envelope (FAILED, the job itself completes)."""

    def __init__(self, envelope: dict[str, Any]) -> None:
        super().__init__(envelope["message"])
        self.envelope = envelope


def _gap_dict(gap: BarGap) -> dict[str, Any]:
    return {"start": gap.start.isoformat(), "end": gap.end.isoformat(), "slots": gap.slots}


_TRADE_COLUMNS = (
    "backtest_id", "seq", "side", "quantity", "entry_ts", "entry_price", "exit_ts", "exit_price", "exit_reason",
    "pnl", "fees", "slippage",
)  # fmt: skip
# The columns' types, as the binary COPY sends them (it converts nothing: each must be the column's).
_TRADE_TYPES = (
    "int8", "int4", "varchar", "int4", "timestamptz", "numeric", "timestamptz", "numeric", "varchar",
    "numeric", "numeric", "numeric",
)  # fmt: skip


def _trade_rows(trades: list[engine.EngineTrade] | engine.EngineResult) -> list[tuple[Any, ...]]:
    """The trades' values in _TRADE_COLUMNS' order after backtest_id and seq. A kernel run's straight
    from its integer columns (Columns.trade_rows: the same values, without the dataclasses, which
    cost about 10 µs a trade to build); otherwise from the trades."""
    if isinstance(trades, engine.EngineResult):
        rows = trades.columns.trade_rows() if trades.columns is not None else None
        if rows is not None:
            return rows
        trades = trades.trades
    return [
        (t.side, t.quantity, t.entry_ts, t.entry_price, t.exit_ts, t.exit_price, t.exit_reason, t.pnl, t.fees,
         t.slippage)
        for t in trades
    ]  # fmt: skip


def _trade_count(result: engine.EngineResult) -> int:
    return len(result.columns.trade_columns) if result.columns is not None else len(result.trades)


def _trades_copy(backtest_id: int, trades: list[engine.EngineTrade] | engine.EngineResult) -> None:
    """Every trade of the result (or of the list), in the caller's transaction, with one binary COPY
    (a matrix run stores thousands of trades: COPY takes a few ms where bulk_create's per-field
    preparation took about 0.15 ms a trade; the binary format about 40 % less than the text one, on
    both sides). The numeric columns round to their scale on input (numeric_recv applies the
    column's typmod), as bulk_create's did."""
    rows = _trade_rows(trades)
    if not rows:
        return
    table = BacktestTrade._meta.db_table
    statement = f"COPY {table} ({', '.join(_TRADE_COLUMNS)}) FROM STDIN (FORMAT binary)"
    connection.ensure_connection()
    # Django's database errors (IntegrityError, …), as for any other statement of the transaction.
    with connection.wrap_database_errors, connection.connection.cursor() as cursor, cursor.copy(statement) as copy:
        copy.set_types(_TRADE_TYPES)
        for seq, row in enumerate(rows, 1):
            copy.write_row((backtest_id, seq, *row))


class _Run:
    """One attempt of one backtest inside its claimed job."""

    def __init__(self, backtest: Backtest, job: Any) -> None:
        self.backtest = backtest
        self.job = job
        self.spec = market_instruments.get(backtest.instrument)
        self.tf = market_instruments.TIMEFRAME_SECONDS[backtest.timeframe]
        self.lease_every = max(settings.JOB_LEASE_SECONDS / 4, PROGRESS_SECONDS)
        self.last_write = time.monotonic()
        self.last_lease = time.monotonic()
        self.progress_value = 0.0
        self.stopped: str | None = None
        self.engine_base = 0.0
        self.matrix_refreshed = False  # by the result's own transaction

    # progress, cancel and the lease -----------------------------------------------------------

    def beat(self, progress: float | None = None, *, force: bool = False) -> None:
        """Write the progress and extend the lease, each at most at its own pace; _Stop when the run
        must end. A write that finds the row no longer RUNNING is the cancel; a lease extension that
        finds the job no longer this worker's is a lost lease (the watchdog gave it to another)."""
        if not self.alive(progress, force=force):
            raise _Stop(self.stopped or "cancelled")

    def alive(self, progress: float | None = None, *, force: bool = False) -> bool:
        """`beat` without raising: False once the run must end (`stopped` says why)."""
        if progress is not None:
            self.progress_value = max(self.progress_value, min(progress, 1.0))
        now = time.monotonic()
        if self.stopped is None and (force or now - self.last_write >= PROGRESS_SECONDS):
            self.last_write = now
            written = Backtest.objects.filter(pk=self.backtest.pk, status=Status.RUNNING).update(
                progress=round(self.progress_value, 4)
            )
            if not written:
                self.stopped = "cancelled"
        if self.stopped is None and (force or now - self.last_lease >= self.lease_every):
            self.last_lease = now
            if not self._lease_extend():
                self.stopped = "lease_lost"
        return self.stopped is None

    def _fenced_job(self) -> Any:
        return _job_model().objects.filter(
            pk=self.job.pk, status="RUNNING", leased_by=self.job.leased_by, attempts=self.job.attempts
        )

    def _lease_extend(self) -> bool:
        return bool(
            self._fenced_job().update(
                lease_expires_at=Now() + timedelta(seconds=settings.JOB_LEASE_SECONDS), updated_at=Now()
            )
        )

    def engine_progress(self, fraction: float) -> None:
        """The engine's progress callback. It never raises into the engine: a cancel found here is
        answered by the next `engine_cancelled()`."""
        self.alive(self.engine_base + (0.99 - self.engine_base) * fraction)

    def engine_cancelled(self) -> bool:
        """The engine's cancelled callback: True once the row is no longer RUNNING (read at most
        every PROGRESS_SECONDS) or the lease is lost."""
        return not self.alive()

    # bars -------------------------------------------------------------------------------------

    def bars(self) -> BarArrays:
        """The warm-up and the window as arrays, every expected bar present (fetched where missing),
        or _Failed(DATA_UNAVAILABLE) naming what is missing. Read through the worker's bar cache,
        reaching back at least WARMUP_READ_BARS on a miss: the next runs of a matrix, whose warm-ups
        differ with their parameters, are slices of that one read, checked for gaps once."""
        bt = self.backtest
        warm = trading_strategies.required_bars(bt.strategy_key, bt.parameters) - 1
        start = int(bt.start.timestamp())
        lookback = warm
        arrays: BarArrays | None = None
        # A slot the market traded in may hold no bar (no trades in it): the warm-up then reaches
        # further back, like the tick's own read of its last `required_bars` bars.
        for _ in range(3):
            reach = hours.bar_slots_before(self.spec, self.tf, start, max(lookback, WARMUP_READ_BARS))
            slots = reach[max(len(reach) - lookback, 0) :] if lookback else []
            warmup_start = from_epoch(slots[0]) if slots else bt.start
            read_from = from_epoch(reach[0]) if reach else bt.start
            arrays = self._complete(warmup_start, bt.end, read_from)
            have = int((arrays.ts < start).sum())
            if have >= warm or len(slots) < lookback:
                break
            lookback += 2 * (warm - have)
        assert arrays is not None
        have = int((arrays.ts < start).sum())
        if have < warm:
            raise _Failed(
                error_body(
                    status=409,
                    error_code="DATA_UNAVAILABLE",
                    message=f"{bt.instrument} {bt.timeframe}: {have} bar(s) before {bt.start.isoformat()}, "
                    f"{warm} needed to warm {bt.strategy_key} up (the first decision is at the close of the "
                    "first bar in the window).",
                    suggested_fix="Start the window later, or load older history with `manage.py import_bars`.",
                    reason="not_enough_warmup_bars",
                    instrument=bt.instrument,
                    timeframe=bt.timeframe,
                    warmup_bars_needed=warm,
                    warmup_bars_found=have,
                )
            )
        return arrays

    def _complete(self, start: datetime, end: datetime, read_from: datetime) -> BarArrays:
        """The bars of [start, end) once every gap in it is fetched from the data provider, page by
        page; _Failed naming the gaps that remain."""
        bt = self.backtest
        window = {"instrument": bt.instrument, "timeframe": bt.timeframe, "start": start, "end": end}
        arrays, gaps = cached_bar_window(**window, read_from=read_from)
        if not gaps:
            return arrays
        pages: list[list[int]] = []
        page = settings.MARKET_DATA_MAX_BARS
        for gap in gaps:
            slots = hours.bar_slots_between(self.spec, self.tf, int(gap.start.timestamp()), int(gap.end.timestamp()))
            pages.extend(slots[i : i + page] for i in range(0, len(slots), page))
        cause: ApplicationError | None = None
        for done, chunk in enumerate(pages, 1):
            try:
                market.bars(
                    bt.instrument,
                    bt.timeframe,
                    end=from_epoch(chunk[-1] + self.tf),
                    count=len(chunk),
                    provider=bt.data_provider,
                    bot_id=bt.bot_id,
                )
            except ApplicationError as exc:
                cause = exc
                break  # what the provider could not give now it will not give on the next page either
            self.beat(FETCH_SHARE * done / len(pages))
        self.engine_base = FETCH_SHARE
        arrays, left = cached_bar_window(**window, read_from=read_from)
        if left:
            raise _Failed(self._gaps_error(left, cause))
        return arrays

    def _gaps_error(self, gaps: list[BarGap], cause: ApplicationError | None) -> dict[str, Any]:
        bt = self.backtest
        missing = sum(g.slots for g in gaps)
        named = "; ".join(f"{g.start:%Y-%m-%d %H:%M} to {g.end:%Y-%m-%d %H:%M} UTC ({g.slots} bars)" for g in gaps[:3])
        more = f" and {len(gaps) - 3} more" if len(gaps) > 3 else ""
        because = f" {bt.data_provider} answered: {cause.message}" if cause is not None else ""
        return error_body(
            status=409,
            error_code="DATA_UNAVAILABLE",
            message=f"{bt.instrument} {bt.timeframe}: {missing} bar(s) the market traded in are missing from the "
            f"store and could not be fetched, in {len(gaps)} gap(s): {named}{more}.{because} The backtest did "
            "not run on part of the window.",
            suggested_fix=(cause.suggested_fix if cause is not None else None)
            or "Load the missing history with `manage.py import_bars` (or check the data provider on the "
            "Connections page), then run the backtest again.",
            reason="gaps",
            instrument=bt.instrument,
            timeframe=bt.timeframe,
            provider=bt.data_provider,
            missing_bars=missing,
            gaps_total=len(gaps),
            gaps=[_gap_dict(g) for g in gaps[:MAX_GAPS_NAMED]],
            cause=None
            if cause is None
            else {"error_code": cause.error_code, "message": cause.message, **_plain_extra(cause.extra)},
            missing_env_vars=cause.extra.get("missing_env_vars") if cause is not None else None,
        )

    # the engine and the result ---------------------------------------------------------------

    def execute(self) -> dict[str, Any]:
        bt = self.backtest
        began = time.monotonic()
        arrays = self.bars()
        bars_done = time.monotonic()
        # At the pace of every write (PROGRESS_SECONDS): bars from the worker's cache come within
        # milliseconds of the claim, which just wrote the row and the lease.
        self.beat(self.engine_base)
        config = engine.EngineConfig(
            strategy_key=bt.strategy_key,
            parameters=bt.parameters,
            instrument=self.spec.root,
            tick_size=self.spec.tick_size,
            point_value=self.spec.point_value,
            timeframe_seconds=self.tf,
            fill_model=FillModel(
                slippage_ticks=int(bt.fill_model["slippage_ticks"]),
                commission_per_contract=Decimal(bt.fill_model["commission_per_contract"]),
            ),
            risk_limits=bt.risk_limits,
            risk_policy=trading_services.policy(),
            # The SIM account's cap applies as it would to a SIM runner (this bot alone in it).
            account_limit_contracts=None if bt.risk_limits is None else settings.TRADING_SIM_ACCOUNT_MAX_CONTRACTS,
            initial_capital=bt.initial_capital,
        )
        try:
            result = engine.run(
                arrays, config, start=bt.start, progress=self.engine_progress, cancelled=self.engine_cancelled
            )
        except engine.Cancelled as exc:
            raise _Stop(self.stopped or "cancelled") from exc
        if self.stopped is not None:
            raise _Stop(self.stopped)
        engine_done = time.monotonic()
        summary = summarize(result, initial_capital=bt.initial_capital, start=bt.start, end=bt.end)
        return self._store(result, summary, began=began, bars_done=bars_done, engine_done=engine_done)

    def _store(
        self,
        result: engine.EngineResult,
        summary: dict[str, Any],
        *,
        began: float,
        bars_done: float,
        engine_done: float,
    ) -> dict[str, Any]:
        bt = self.backtest
        with transaction.atomic():
            # The commit does not wait for the WAL flush (this transaction only): the job's close,
            # a synchronous commit sent after it, flushes the WAL up to and past it. A database
            # crash before that loses both, and the job runs again (as a lost claim does).
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO off")
            # Both rows held until commit: a cancel waits for this write (or this write finds the
            # cancel), and the watchdog cannot take the job back in between (it skips locked rows).
            if not list(self._fenced_job().select_for_update().values_list("pk", flat=True)):
                raise _Stop("lease_lost")
            if not list(
                Backtest.objects.select_for_update()
                .filter(pk=bt.pk, status=Status.RUNNING)
                .values_list("pk", flat=True)
            ):
                raise _Stop("cancelled")
            _trades_copy(bt.pk, result)
            stored = time.monotonic()
            Backtest.objects.filter(pk=bt.pk).update(
                status=Status.SUCCEEDED,
                progress=1.0,
                bars=result.bars,
                trading_days=summary.get("days"),
                elapsed_ms=round((stored - began) * 1000),
                timings={
                    "bars_ms": round((bars_done - began) * 1000),
                    "engine_ms": round((engine_done - bars_done) * 1000),
                    "store_ms": round((stored - engine_done) * 1000),
                },
                metrics=summary["metrics"],
                classification=summary["classification"],
                equity_curve=summary["equity_curve"],
                decisions=result.decisions,
                error=None,
                finished_at=Now(),
            )
            if bt.matrix_id is not None:
                # In this transaction (one commit for both), its row locked after this run's, the
                # order every writer takes them in.
                matrix_refresh(matrix_id=bt.matrix_id)
        self.matrix_refreshed = bt.matrix_id is not None  # committed
        verdict = summary["classification"].get("verdict")
        return {"backtest_id": bt.pk, "status": Status.SUCCEEDED, "trades": _trade_count(result), "verdict": verdict}

    def fail(self, envelope: dict[str, Any]) -> bool:
        return bool(
            Backtest.objects.filter(pk=self.backtest.pk, status=Status.RUNNING).update(
                status=Status.FAILED, error=envelope, finished_at=Now()
            )
        )


def _plain_extra(extra: Mapping[str, Any]) -> dict[str, Any]:
    """An ApplicationError's detail fields, JSON-safe."""
    return {
        k: v if isinstance(v, str | int | float | bool | list | dict) or v is None else str(v) for k, v in extra.items()
    }


def summarize(
    result: engine.EngineResult, *, initial_capital: Decimal, start: datetime, end: datetime
) -> dict[str, Any]:
    """The figures, verdict, equity curve and trading days of a result: apps.backtests.metrics
    (helper M's module: `summarize(result, *, initial_capital, start, end) -> {"metrics",
    "equity_curve", "classification", "days"}`)."""
    from apps.backtests import metrics

    return metrics.summarize(result, initial_capital=initial_capital, start=start, end=end)


def backtest_run(job: Any) -> dict[str, Any]:
    """The `backtest.run` job handler (its own transactions: apps.runners OWN_TRANSACTIONS). A run of
    a matrix then refreshes the matrix's status and progress, whatever the outcome (a stored result
    does so in its own transaction)."""
    runs: list[_Run] = []
    try:
        return _backtest_run(job, runs)
    finally:
        if not (runs and runs[0].matrix_refreshed):
            _matrix_refresh_for(backtest_ids=[(job.payload or {}).get("backtest_id")])


def _backtest_run(job: Any, runs: list[_Run]) -> dict[str, Any]:
    backtest_id = (job.payload or {}).get("backtest_id")
    claimed = Backtest.objects.filter(pk=backtest_id, status__in=OPEN_STATUSES).update(
        status=Status.RUNNING, started_at=Now(), progress=0.0, error=None, finished_at=None
    )
    if not claimed:
        # Cancelled before a worker got to it, or already finished: nothing to run.
        status = Backtest.objects.filter(pk=backtest_id).values_list("status", flat=True).first()
        return {"backtest_id": backtest_id, "skipped": status or "no such backtest"}
    backtest = Backtest.objects.get(pk=backtest_id)
    run = _Run(backtest, job)
    runs.append(run)
    try:
        return run.execute()
    except _Stop as stop:
        logger.info("backtest %s stopped: %s", backtest_id, stop.why)
        return {
            "backtest_id": backtest_id,
            "status": Status.CANCELLED if stop.why == "cancelled" else None,
            "stopped": stop.why,
        }
    except _Failed as failed:
        run.fail(failed.envelope)
        return {"backtest_id": backtest_id, "status": Status.FAILED, "error_code": failed.envelope["error_code"]}
    except ApplicationError as exc:
        # The bars could not be read (a stored price off the tick grid, an invalid request): the
        # backtest says why, as the API would.
        run.fail(
            error_body(
                status=exc.status_code,
                error_code=exc.error_code,
                message=exc.message,
                suggested_fix=exc.suggested_fix,
                **_plain_extra(exc.extra),
            )
        )
        return {"backtest_id": backtest_id, "status": Status.FAILED, "error_code": exc.error_code}
    except SoftTimeLimitExceeded:
        limit = settings.BACKTEST_JOB_TIME_LIMIT_SECONDS
        run.fail(
            error_body(
                status=409,
                error_code="BACKTEST_TIME_LIMIT",
                message=f"The backtest ran longer than its time limit ({limit * 0.9:.0f} s) and was stopped.",
                suggested_fix="Backtest a shorter window, or raise BACKTEST_JOB_TIME_LIMIT_SECONDS.",
            )
        )
        return {"backtest_id": backtest_id, "status": Status.FAILED, "error_code": "BACKTEST_TIME_LIMIT"}
    except Exception:
        if job.attempts < job.max_attempts:
            # The ledger runs it again after its back-off: the row says it waits for that run.
            Backtest.objects.filter(pk=backtest_id, status=Status.RUNNING).update(status=Status.QUEUED, progress=0.0)
        else:
            run.fail(
                error_body(
                    status=500,
                    message=f"The backtest failed on its last attempt ({job.attempts}) with an internal error.",
                )
            )
        raise
