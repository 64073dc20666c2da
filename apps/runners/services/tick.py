"""The tick: one deterministic pipeline per RUNNING runner per closed bar (SPEC §6, ARCHITECTURE
"The tick, end to end"), and exactly one DecisionTrace for it (SPEC §1.3).

guard (runner generation, kill latch, runner mode against the bot's stage)
→ market_hours (the bar traded, and orders can go out at its close)
→ market_data (real bars from the store or the bot's provider, fresh enough; working SIM orders
   fill first, on every bar since they became working, and the position keeps its protective
   stop, so the strategy sees the real position)
→ strategy (a pure decision with reasons and features)
→ risk and execution (apps.trading.services.order_submit: risk under the account lock, the order
   row before the venue)
→ the trace: TRADE, or NO_TRADE naming the stage that stopped it and its reason code.

Any stage may stop the tick; none may invent a value. The trace's fingerprint digests the inputs
(bars, parameters, position, code version), so `trace_replay` can recompute the decision from the
bar store and show it is the same.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.bots.models import Bot
from apps.core import context
from apps.core.exceptions import ApplicationError, StateConflict
from apps.integrations import registry
from apps.market import hours, instruments
from apps.market import services as market
from apps.market.bars import MarketBar
from apps.market.instruments import TIMEFRAME_SECONDS
from apps.runners.models import Runner
from apps.runners.services.jobs import TICK_STALE_RETRIES, JobRetryLater
from apps.telemetry.models import DecisionTrace
from apps.trading import kill_switch, strategies
from apps.trading import services as execution
from apps.trading.symbols import venue_symbol

logger = logging.getLogger("tradeops.tick")

GUARD, HOURS, DATA, STRATEGY, RISK, EXECUTION = "guard", "market_hours", "market_data", "strategy", "risk", "execution"


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


class TickStopped(Exception):
    def __init__(self, stage: str, reason_code: str, message: str, details: dict[str, Any] | None = None) -> None:
        self.stage, self.reason_code, self.message, self.details = stage, reason_code, message, details or {}
        super().__init__(message)


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


def _killed_reader(bot_id: int) -> Callable[[], bool]:
    """Reads the kill latch from PostgreSQL and holds the bot row FOR SHARE until the transaction
    ends: a kill (an UPDATE of that row) waits for an order being sent, then cancels it."""

    def killed() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT killed FROM bots_bot WHERE id = %s FOR SHARE", [bot_id])
            row = cursor.fetchone()
        return True if row is None else bool(row[0])  # a bot that vanished is not one to trade for

    return killed


def _execution_target(runner: Runner, bot: Bot, root: str, bar_ts: datetime) -> tuple[str, Any]:
    """(the venue's contract symbol, the broker client for LIVE or None). Raises TickStopped."""
    live = runner.mode == Runner.Mode.LIVE
    try:
        contract = venue_symbol(root, bot.venue if live else "sim", bar_ts)
    except ValueError as exc:
        raise TickStopped(RISK, "CONFIG_INVALID", f"no venue symbol: {exc}") from exc
    if not live:
        return contract, None
    spec_venue = registry.get(bot.venue)
    if spec_venue is None:
        raise TickStopped(RISK, "CONFIG_INVALID", f"unknown venue {bot.venue}")
    try:
        return contract, spec_venue.client_class().for_bot(bot.pk)
    except ApplicationError as exc:
        raise TickStopped(RISK, exc.error_code, exc.message, exc.extra) from exc


def _bars_since(
    bot: Bot, spec: Any, start: datetime, end: datetime, wall: datetime, window: list[MarketBar]
) -> list[MarketBar]:
    """Every closed bar from `start` to `end`, oldest first: the window already read, plus the older
    bars from the store (fetched from the bot's provider where missing), page by page."""
    tf = TIMEFRAME_SECONDS[bot.timeframe]
    have = {b.ts: b for b in window}
    slots = hours.bar_slots_between(
        spec, tf, int(start.timestamp()), hours.closed_bars_stop(spec, tf, int(end.timestamp()))
    )
    page = settings.MARKET_DATA_MAX_BARS
    for i in range(0, len(slots), page):
        chunk = slots[i : i + page]
        if all(datetime.fromtimestamp(s, tz=UTC) in have for s in chunk):
            continue
        page_end = min(datetime.fromtimestamp(chunk[-1] + tf, tz=UTC), end)
        try:
            got = market.bars(
                spec.root, bot.timeframe, end=page_end, count=len(chunk),
                provider=bot.data_provider, bot_id=bot.pk, now=wall,
            )  # fmt: skip
        except ApplicationError as exc:
            raise TickStopped(
                DATA,
                exc.error_code,
                f"orders working since {start.isoformat()} cannot be settled without the bars since then "
                f"(no trade until they are): {exc.message}",
                exc.extra,
            ) from exc
        have.update((b.ts, b) for b in got if b.ts >= start)
    return [have[ts] for ts in sorted(have) if ts >= start]


def _settle_and_protect(
    runner: Runner,
    bot: Bot,
    spec: Any,
    end: datetime,
    wall: datetime,
    window: list[MarketBar],
    plan: execution.OrderPlan | None,
    venue: Any,
) -> dict[str, Any]:
    """SIM: fill the working orders on every bar from the oldest one's own time up to `end` (the
    window read for the decision when it reaches back that far, else the bars since then: a stop
    left working through an outage is tried on every bar it missed). Then keep the position's stop
    (`plan` None: the venue is unavailable, settle only). A stop placed for an entry that has just
    filled works from that entry's fill bar, so the bars are settled again for it before the
    decision (SPEC §9). LIVE: the stop only; fills come from the broker (reconcile)."""
    out: dict[str, Any] = {}
    sim = runner.mode == Runner.Mode.SIM
    tf = TIMEFRAME_SECONDS[bot.timeframe]
    for _ in range(3):  # settle, protect, settle the new stop, protect what is left: then it is stable
        since = execution.sim_working_since(bot_id=bot.pk, instrument=spec.root) if sim else None
        if since is not None:
            bars = window if window and window[0].ts <= since else _bars_since(bot, spec, since, end, wall, window)
            if len(bars) > len(window):
                out["settled_from"] = since.isoformat()
                out["settled_bars"] = len(bars)
            settled = execution.sim_settle(bot_id=bot.pk, instrument=spec.root, bars=bars, timeframe_seconds=tf)
            if settled.filled:
                out.setdefault("filled", []).extend(o.client_order_id for o in settled.filled)
        if plan is None:
            break
        out["protection"] = protection = execution.protection_sync(plan, killed=_killed_reader(bot.pk), venue=venue)
        if protection.get("placed"):
            out.setdefault("stops_placed", []).append(protection["stop"])
        if not (sim and protection.get("placed")):
            break
    return out


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
    instead of tracing, so the job runs again after its back-off (its last attempt traces)."""
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
    inputs: dict[str, Any] = {
        "strategy": bot.strategy_key,
        "parameters": bot.parameters,
        "config_version": bot.config_version,
        "code_version": CODE_VERSION,
        "instrument": bot.instrument,
        "timeframe": bot.timeframe,
    }
    decision: dict[str, Any] | None = None
    checks: list[dict[str, Any]] | None = None
    order_info: dict[str, Any] | None = None
    outcome, stopped_at, reason_code, message = DecisionTrace.Outcome.NO_TRADE, "", "", ""
    try:
        spec = instruments.get(bot.instrument)
        tf = TIMEFRAME_SECONDS.get(bot.timeframe)
        with run.stage(GUARD):
            if spec is None or tf is None:
                raise TickStopped(
                    GUARD, "CONFIG_INVALID", f"unknown instrument or timeframe ({bot.instrument}/{bot.timeframe})"
                )
            if bot.killed:
                raise TickStopped(GUARD, "BOT_KILLED", f"killed: {bot.kill_reason or 'no reason given'}")
            if (kill_all := kill_switch.kill_all_state()).engaged:
                raise TickStopped(GUARD, "BOT_KILLED", kill_all.describe())
            try:
                needed = strategies.required_bars(bot.strategy_key, bot.parameters)
            except strategies.StrategyInputError as exc:
                raise TickStopped(GUARD, "CONFIG_INVALID", f"{exc.code}: {exc}") from exc
            expected_mode = Runner.Mode.LIVE if bot.stage == Bot.Stage.LIVE else Runner.Mode.SIM
            if bot.stage not in (Bot.Stage.PAPER, Bot.Stage.LIVE) or runner.mode != expected_mode:
                raise TickStopped(
                    GUARD,
                    "RUNNER_MODE_MISMATCH",
                    f"runner mode {runner.mode} does not match the bot's stage {bot.stage}",
                )
        with run.stage(HOURS):
            for at in (bar_ts - timedelta(seconds=1), bar_ts):
                reason = hours.closed_reason(spec, at)
                if reason is not None:
                    raise TickStopped(HOURS, "MARKET_CLOSED", f"{spec.root} closed at {at.isoformat()} ({reason})")
        with run.stage(DATA) as entry:
            try:
                bars = market.bars(
                    spec.root,
                    bot.timeframe,
                    end=bar_ts,
                    count=needed,
                    provider=bot.data_provider,
                    bot_id=bot.pk,
                    now=wall,
                )
            except ApplicationError as exc:
                raise TickStopped(DATA, exc.error_code, exc.message, exc.extra) from exc
            entry["bars"] = len(bars)
            base = execution.OrderPlan(
                bot_id=bot.pk,
                generation=runner.generation,
                mode=runner.mode,
                venue=bot.venue if runner.mode == Runner.Mode.LIVE else execution.SIM_VENUE,
                account=bot.broker_account,
                instrument=spec.root,
                contract="",
                bar_ts=bar_ts,
                leg="entry",
                side="BUY",
                quantity=1,
                risk_limits=bot.risk_limits,
                reference_price=bars[-1].close if bars else None,
                reference_price_at=bar_ts if bars else None,
                trading_day_start=instruments.trade_date_start(bar_ts),
                now=now,
                trace_id=context.get_trace_id() or "",
            )
            # Working SIM orders fill on every bar since they became working; the position as the
            # bars left it keeps its protective stop (placed once its entry filled).
            try:
                contract, venue = _execution_target(runner, bot, spec.root, bar_ts)
            except TickStopped as unavailable:  # the risk stage says why, if the tick gets there
                contract, venue = "", None
                entry["protection"] = {"error": unavailable.message}
                if runner.mode == Runner.Mode.SIM:
                    entry |= _settle_and_protect(runner, bot, spec, bar_ts, wall, bars, None, None)
            else:
                base = replace(base, contract=contract)
                entry |= _settle_and_protect(runner, bot, spec, bar_ts, wall, bars, base, venue)
        position = execution.position_state(bot_id=bot.pk, instrument=spec.root)
        inputs |= {
            "bars": {
                "first": bars[0].ts.isoformat() if bars else None,
                "last": bars[-1].ts.isoformat() if bars else None,
                "count": len(bars),
                "sha256": bars_fingerprint(bars),
            },
            "position": position.quantity,
            "tick_size": str(spec.tick_size),
        }
        with run.stage(STRATEGY):
            try:
                made = strategies.decide(
                    bot.strategy_key, bars, bot.parameters, position.quantity, tick_size=spec.tick_size
                )
            except strategies.StrategyInputError as exc:
                raise TickStopped(STRATEGY, exc.code, str(exc)) from exc
            decision = made.as_dict()
            if made.side is None:
                code = made.reasons[0].code if made.reasons else strategies.NO_SIGNAL
                raise TickStopped(STRATEGY, code, made.reasons[0].text if made.reasons else "no signal")
        with run.stage(RISK) as entry:
            contract, venue = _execution_target(runner, bot, spec.root, bar_ts)
            plan = replace(
                base,
                contract=contract,
                side=made.side,
                quantity=made.order_quantity,
                protective_stop=made.stop_price,
            )
            if position.quantity:
                # The order changes the position: it replaces the position's stop, which stays
                # working until the venue has accepted this order (refused, it protects on).
                replaces, stuck = execution.protection_replaceable(bot_id=bot.pk, instrument=spec.root, venue=venue)
                if stuck:
                    raise TickStopped(
                        RISK,
                        "PROTECTION_NOT_CLEARED",
                        f"working stop(s) {', '.join(stuck)} could not be cancelled once a new order is accepted "
                        "(the broker has no id for them yet); no new order on top of them until reconcile settles them",
                    )
                plan = replace(plan, replaces=tuple(replaces))
            submission = execution.order_submit(plan, killed=_killed_reader(bot.pk), venue=venue)  # type: ignore[arg-type]
            checks = submission.checks or None
            order = submission.order
            order_info = {
                "id": order.pk,
                "client_order_id": order.client_order_id,
                "side": order.side,
                "quantity": order.quantity,
                "status": order.status,
                "reason_code": order.reason_code,
                "created": submission.created,
            }
            kept = f"; the position keeps its stop {', '.join(plan.replaces)}" if plan.replaces else ""
            if order.status == order.Status.REJECTED_RISK:
                raise TickStopped(RISK, order.reason_code or "RISK_REJECTED", order.detail + kept)
            entry["order"] = order.client_order_id
            if submission.replaced:
                entry["replaced"] = submission.replaced
            if submission.not_replaced:
                entry["not_replaced"] = submission.not_replaced
                message = (
                    f"stop(s) {', '.join(submission.not_replaced)} could not be cancelled after "
                    f"{order.client_order_id} was accepted: they stay working until the position settles"
                )
        with run.stage(EXECUTION) as entry:
            if order.status in (order.Status.REJECTED, order.Status.CANCELLED):
                raise TickStopped(EXECUTION, order.reason_code or "ORDER_REJECTED", order.detail + kept)
            if runner.mode == Runner.Mode.SIM and bar_ts + timedelta(seconds=tf) <= wall:
                # The next bar has already closed (a replay, or a late tick): fill on it now.
                nxt = market.bars(
                    spec.root, bot.timeframe, end=bar_ts + timedelta(seconds=tf), count=1,
                    provider=bot.data_provider, bot_id=bot.pk, now=wall,
                )  # fmt: skip
                entry |= _settle_and_protect(runner, bot, spec, bar_ts + timedelta(seconds=tf), wall, nxt, plan, venue)
            order.refresh_from_db()
            order_info |= {
                "status": order.status,
                "filled_quantity": order.filled_quantity,
                "avg_fill_price": None if order.avg_fill_price is None else str(order.avg_fill_price),
                "fills": [
                    {"price": str(f.price), "quantity": f.quantity, "fee": str(f.fee), "at": f.filled_at.isoformat()}
                    for f in order.fills.all()
                ],
            }
            entry["status"] = order.status
            if order.status == order.Status.UNKNOWN:
                message = order.detail
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
