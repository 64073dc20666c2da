"""The tick: one deterministic pipeline per RUNNING runner per closed bar (SPEC §6, ARCHITECTURE
"The tick, end to end"), and exactly one DecisionTrace for it (SPEC §1.3).

guard (runner generation, kill latch, runner mode against the bot's stage)           guard_stage
→ market_hours (the bar traded, and orders can go out at its close)                  market_hours_stage
→ market_data (real bars from the store or the bot's provider, fresh enough; working SIM orders
   fill first, on every bar since they became working, and the position keeps its protective
   stop, so the strategy sees the real position)                                     market_data_stage
→ strategy (a pure decision with reasons and features)           strategy_decide, strategy_stop
→ risk (apps.trading.services.order_submit: risk under the account lock, the order row before
   the venue)                                                      risk_stage, risk_verdict
→ execution (the venue's answer; SIM fills at once when the next bar has closed)   execution_stage
→ the trace: TRADE, or NO_TRADE naming the stage that stopped it and its reason code.

The stages, and which of them are pure (a backtest can run them in memory) or database-bound, are
in tick_stages.py; tick_run below only runs them in order, timed, and writes the trace.

Any stage may stop the tick; none may invent a value. The trace's fingerprint digests the inputs
(bars, parameters, position, code version), so `trace_replay` can recompute the decision from the
bar store and show it is the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.bots.models import Bot
from apps.core import context
from apps.core.exceptions import ApplicationError, StateConflict
from apps.market.bars import MarketBar
from apps.market.instruments import TIMEFRAME_SECONDS
from apps.runners.models import Runner
from apps.runners.services.jobs import TICK_STALE_RETRIES, JobRetryLater
from apps.runners.services.tick_stages import (
    DATA,
    EXECUTION,
    GUARD,
    HOURS,
    RISK,
    STRATEGY,
    TickContext,
    TickStopped,
    execution_stage,
    guard_stage,
    market_data_stage,
    market_hours_stage,
    order_summary,
    risk_stage,
    risk_verdict,
    strategy_decide,
    strategy_stop,
)
from apps.telemetry.models import DecisionTrace
from apps.trading import services as execution
from apps.trading import strategies

logger = logging.getLogger("tradeops.tick")


def _code_version() -> str:
    """A digest of the code a decision depends on: the same digest, the same decision for the same inputs."""
    trading = Path(strategies.__file__).parent
    digest = hashlib.sha256()
    for name in ("strategies.py", "indicators.py"):
        digest.update((trading / name).read_bytes())
    return digest.hexdigest()[:16]


CODE_VERSION = _code_version()


class TickDeferred(JobRetryLater):
    """The bar the tick is for is not at the provider yet: run the tick again shortly, trace nothing now."""


@dataclass
class _Run:
    stages: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        entry: dict[str, Any] = {"stage": name, "outcome": "ok"}
        began = time.perf_counter()
        try:
            yield entry
        except TickStopped as stop:
            entry.update(outcome="stopped", reason_code=stop.reason_code)
            raise
        finally:
            entry["latency_ms"] = round((time.perf_counter() - began) * 1000, 3)
            self.stages.append(entry)


def bars_fingerprint(bars: list[MarketBar]) -> str:
    digest = hashlib.sha256()
    for b in bars:
        digest.update(f"{b.ts.isoformat()}|{b.open}|{b.high}|{b.low}|{b.close}|{b.volume}\n".encode())
    return digest.hexdigest()


def _fingerprint(inputs: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


def tick_run(
    *,
    runner_id: int,
    bar_ts: datetime,
    generation: int | None = None,
    job_id: int | None = None,
    replay: bool = False,
    defer_stale: bool = False,
) -> DecisionTrace | None:
    """Run the tick of `runner_id` for the bar that closed at `bar_ts`. Returns its trace, or None
    when the tick is fenced (the runner was stopped or restarted since it was dispatched: that
    tick belongs to no running runner). A bar already ticked returns its existing trace.
    `defer_stale`: when the newest bar is not at the provider yet (DATA_STALE), raise TickDeferred
    instead of tracing, so the job runs again after its back-off (its last attempt traces).

    The orchestration only: the stages themselves (and which of them are pure) are in
    tick_stages.py; each runs timed under `run.stage`, and the first TickStopped ends the tick."""
    runner = Runner.objects.select_related("bot").filter(pk=runner_id).first()
    if runner is None:
        return None
    if generation is not None and (runner.generation != generation or runner.status != Runner.Status.RUNNING):
        return None
    if not replay:
        done = DecisionTrace.objects.filter(runner_id=runner.pk, bar_ts=bar_ts, replay=False).first()
        if done is not None:
            return done
    bot = runner.bot
    run = _Run()
    wall = timezone.now()
    # The tick's clock: a live tick runs at the wall clock; a replay at the bar it replays.
    now = bar_ts + timedelta(seconds=1) if replay else wall
    ctx = TickContext(runner=runner, bot=bot, bar_ts=bar_ts, wall=wall, now=now, trace_id=context.get_trace_id() or "")
    inputs = tick_inputs(bot)
    decision: dict[str, Any] | None = None
    checks: list[dict[str, Any]] | None = None
    order_info: dict[str, Any] | None = None
    outcome, stopped_at, reason_code, message = DecisionTrace.Outcome.NO_TRADE, "", "", ""
    try:
        with run.stage(GUARD):
            guarded = guard_stage(runner, bot)
        spec = guarded.spec
        with run.stage(HOURS):
            market_hours_stage(spec, bar_ts)
        with run.stage(DATA) as entry:
            data = market_data_stage(ctx, guarded, entry)
        position = execution.position_state(bot_id=bot.pk, instrument=spec.root)
        inputs |= decision_inputs(data.bars, position.quantity, spec.tick_size)
        with run.stage(STRATEGY):
            made = strategy_decide(bot.strategy_key, bot.parameters, data.bars, position.quantity, spec.tick_size)
            decision = made.as_dict()
            if (no_trade := strategy_stop(made)) is not None:
                raise no_trade
        with run.stage(RISK) as entry:
            sent = risk_stage(ctx, spec.root, data.base, made, position.quantity)
            checks = sent.submission.checks or None
            order_info = order_summary(sent.submission)
            if (not_replaced := risk_verdict(sent, entry)) is not None:
                message = not_replaced
        with run.stage(EXECUTION) as entry:
            executed = execution_stage(ctx, guarded, sent, entry)
            order_info |= executed.order_info
            if executed.message is not None:
                message = executed.message
        outcome = DecisionTrace.Outcome.TRADE
    except TickStopped as stop:
        if defer_stale and stop.reason_code == "DATA_STALE":
            # Past the market data's re-ask window, or the provider would not be asked again.
            raise TickDeferred(stop.message, after_seconds=settings.MARKET_DATA_REFETCH_SECONDS + 1) from stop
        stopped_at, reason_code, message = stop.stage, stop.reason_code, stop.message
        if stop.details:
            inputs["stop_details"] = {k: v for k, v in stop.details.items() if isinstance(v, str | int | float | list)}
    return _write_trace(
        runner=runner,
        bar_ts=bar_ts,
        job_id=job_id,
        replay=replay,
        outcome=outcome,
        stopped_at=stopped_at,
        reason_code=reason_code,
        message=message,
        decision=decision,
        checks=checks,
        order=order_info,
        inputs=inputs,
        run=run,
        wall=wall,
    )


def tick_inputs(bot: Bot) -> dict[str, Any]:
    """PURE. The decision's inputs known before any stage runs (the trace's `inputs`)."""
    return {
        "strategy": bot.strategy_key,
        "parameters": bot.parameters,
        "config_version": bot.config_version,
        "code_version": CODE_VERSION,
        "instrument": bot.instrument,
        "timeframe": bot.timeframe,
    }


def decision_inputs(bars: list[MarketBar], position: int, tick_size: Decimal) -> dict[str, Any]:
    """PURE. The inputs the strategy decides on, as the trace names them: the window (its digest,
    not the bars), the position and the tick size; with tick_inputs, what the fingerprint digests."""
    return {
        "bars": {
            "first": bars[0].ts.isoformat() if bars else None,
            "last": bars[-1].ts.isoformat() if bars else None,
            "count": len(bars),
            "sha256": bars_fingerprint(bars),
        },
        "position": position,
        "tick_size": str(tick_size),
    }


def _write_trace(
    *, runner: Runner, bar_ts: datetime, run: _Run, wall: datetime, replay: bool, **fields: Any
) -> DecisionTrace:
    inputs = fields.pop("inputs")
    checks = fields.pop("checks")
    data_problem = fields["stopped_at"] == DATA
    try:
        with transaction.atomic():
            trace = DecisionTrace.objects.create(
                bot_id=runner.bot_id,
                runner_id=runner.pk,
                generation=runner.generation,
                mode=runner.mode,
                bar_ts=bar_ts,
                replay=replay,
                risk=checks,
                stages=run.stages,
                config_version=inputs["config_version"],
                fingerprint=_fingerprint(inputs) if "bars" in inputs else "",
                inputs=inputs,
                latency_ms=round((time.perf_counter() - run.started) * 1000, 3),
                trace_id=context.get_trace_id() or "",
                created_at=wall,
                **fields,
            )
            Runner.objects.filter(pk=runner.pk, generation=runner.generation).update(
                last_tick_at=wall,
                heartbeat_at=wall,
                last_error=f"{fields['reason_code']}: {fields['message']}"[:2000] if data_problem else "",
            )
    except IntegrityError:
        # Another delivery of the same tick wrote its trace first (unique per runner and bar).
        return DecisionTrace.objects.get(runner_id=runner.pk, bar_ts=bar_ts, replay=False)
    return trace


def last_closed_bar(at: datetime, timeframe: str) -> datetime:
    seconds = TIMEFRAME_SECONDS[timeframe]
    epoch = int(at.timestamp()) // seconds * seconds
    return datetime.fromtimestamp(epoch, tz=UTC)


def runner_tick_force(*, runner: Runner, as_of: datetime | None = None) -> DecisionTrace:
    """POST /api/runners/{id}/tick: one tick now, for the last closed bar (its trace if that bar
    was ticked already); `as_of` replays the bar that closed at or before it, in SIM only."""
    if runner.status != Runner.Status.RUNNING:
        raise StateConflict(
            f"The runner of bot {runner.bot_id} is {runner.status}; only a RUNNING runner ticks.",
            error_code="RUNNER_NOT_RUNNING",
            suggested_fix="Start it first (POST /api/runners/start).",
        )
    timeframe = runner.bot.timeframe
    if timeframe not in TIMEFRAME_SECONDS:
        raise StateConflict(f"Unknown timeframe {timeframe}.", error_code="CONFIG_INVALID")
    if as_of is not None:
        if runner.mode != Runner.Mode.SIM:
            raise StateConflict(
                "as_of replays a past bar in SIM only; a LIVE runner never trades on a past bar.",
                error_code="REPLAY_SIM_ONLY",
                suggested_fix="Leave out as_of, or replay with a PAPER bot.",
            )
        if as_of > timezone.now():
            raise ApplicationError(
                "as_of is in the future.",
                error_code="VALIDATION_ERROR",
                status_code=400,
                extra={"fields": {"as_of": ["must not be in the future."]}},
            )
    bar_ts = last_closed_bar(as_of or timezone.now(), timeframe)
    trace = tick_run(runner_id=runner.pk, bar_ts=bar_ts, replay=as_of is not None)
    assert trace is not None  # not fenced: no generation was given
    return trace


def trace_replay(trace: DecisionTrace) -> dict[str, Any]:
    """Recompute a trace's decision from the bar store and the inputs it recorded. `same` is True
    when the bars are the ones the tick saw (same digest) and the decision is identical."""
    inputs = trace.inputs
    window = inputs.get("bars")
    if not window or not window.get("count"):
        return {"same": None, "why": "the tick stopped before it read bars: there is no decision to replay"}
    from apps.market.selectors import bars_between

    first = datetime.fromisoformat(window["first"])
    last = datetime.fromisoformat(window["last"])
    bars = bars_between(
        instrument=inputs["instrument"],
        timeframe=inputs["timeframe"],
        start=first,
        stop=last + timedelta(seconds=TIMEFRAME_SECONDS[inputs["timeframe"]]),
    )
    if bars_fingerprint(bars) != window["sha256"]:
        return {"same": False, "why": "the stored bars differ from the ones the tick saw"}
    if inputs["code_version"] != CODE_VERSION:
        return {"same": None, "why": f"the strategy code changed ({inputs['code_version']} → {CODE_VERSION})"}
    made = strategies.decide(
        inputs["strategy"], bars, inputs["parameters"], inputs["position"], tick_size=Decimal(inputs["tick_size"])
    )
    again = made.as_dict()
    return {"same": again == trace.decision, "decision": again}


def job_handle_tick(job: Any) -> dict[str, Any]:
    """The tick job (apps/runners/services/jobs.py): runs the pipeline for the job's runner and bar,
    fenced by the generation it was dispatched under. Answers the trace it wrote (or found). A tick
    that crashes on its last allowed attempt still leaves a trace saying so (TICK_FAILED)."""
    payload = job.payload
    bar_ts = datetime.fromisoformat(str(payload["bar_ts"]).replace("Z", "+00:00"))
    named = {"runner_id": payload.get("runner_id"), "bar_ts": payload.get("bar_ts")}
    try:
        trace = tick_run(
            runner_id=payload["runner_id"],
            bar_ts=bar_ts,
            generation=payload.get("generation"),
            job_id=job.pk,
            defer_stale=job.attempts <= TICK_STALE_RETRIES,
        )
    except JobRetryLater:
        raise
    except Exception as exc:
        if job.attempts >= job.max_attempts:
            _trace_failure(payload, bar_ts, job.pk, exc)
        raise
    if trace is None:
        return {
            **named,
            "outcome": "SKIPPED",
            "reason": "the runner was stopped or restarted since this tick was dispatched",
        }
    return {
        **named,
        "outcome": trace.outcome,
        "trace": trace.pk,
        "stopped_at": trace.stopped_at,
        "reason_code": trace.reason_code,
    }


def _trace_failure(payload: dict[str, Any], bar_ts: datetime, job_id: int, exc: Exception) -> None:
    runner = Runner.objects.select_related("bot").filter(pk=payload["runner_id"]).first()
    if runner is None or runner.generation != payload.get("generation"):
        return
    try:
        _write_trace(
            runner=runner,
            bar_ts=bar_ts,
            job_id=job_id,
            replay=False,
            outcome=DecisionTrace.Outcome.NO_TRADE,
            stopped_at="pipeline",
            reason_code="TICK_FAILED",
            message=f"{type(exc).__name__}: {exc}"[:2000],
            decision=None,
            checks=None,
            order=None,
            inputs={"config_version": runner.bot.config_version, "code_version": CODE_VERSION},
            run=_Run(),
            wall=timezone.now(),
        )
    except Exception:  # the database itself may be why the tick failed: the job row still says DEAD
        logger.exception("tick of runner %s at %s: could not write its failure trace", runner.pk, bar_ts)
