"""The tick's named stages, in the order `tick.tick_run` runs them (SPEC §6):

    guard_stage → market_hours_stage → market_data_stage → strategy_decide (+ strategy_stop)
    → risk_stage (+ risk_verdict) → execution_stage

Each stage takes its inputs as arguments and answers its outputs (plain values or the small
dataclasses below); a stage that stops the tick raises `TickStopped` naming itself and a reason
code. `details` is the stage's entry in the trace (`DecisionTrace.stages`): what it did, beside the
timing `tick._Run.stage` records.

Each one says what it touches:
- PURE: values in, values out; no database, no provider, no venue. A backtest can run it bar by
  bar in memory (market_hours_stage, order_plan_base, order_plan, strategy_decide, strategy_stop,
  risk_verdict, order_summary).
- DATABASE-BOUND: reads or writes rows, or calls a provider or a venue (guard_stage, market_data_stage,
  risk_stage, execution_stage and their helpers). Their rules live in pure code a backtest reuses
  directly: the risk checks in `apps.trading.risk.check`, the SIM fill rules in
  `apps.trading.fills` (`first_fill`, `apply_fill`) and the protective stop rules in
  `apps.trading.stops`; these stages only read and persist around them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection

from apps.bots.models import Bot
from apps.core.exceptions import ApplicationError
from apps.integrations import registry
from apps.market import hours, instruments
from apps.market import services as market
from apps.market.bars import MarketBar
from apps.market.instruments import TIMEFRAME_SECONDS
from apps.runners.models import Runner
from apps.trading import kill_switch, strategies
from apps.trading import services as execution
from apps.trading.symbols import venue_symbol

GUARD, HOURS, DATA, STRATEGY, RISK, EXECUTION = "guard", "market_hours", "market_data", "strategy", "risk", "execution"


class TickStopped(Exception):
    def __init__(self, stage: str, reason_code: str, message: str, details: dict[str, Any] | None = None) -> None:
        self.stage, self.reason_code, self.message, self.details = stage, reason_code, message, details or {}
        super().__init__(message)


@dataclass(frozen=True)
class TickContext:
    """Who ticks and when, fixed for the whole tick."""

    runner: Runner
    bot: Bot
    bar_ts: datetime  # the close of the bar ticked
    wall: datetime  # the wall clock at the tick's start (fetches, `created_at`)
    now: datetime  # the tick's own clock: the wall clock, or the replayed bar's close
    trace_id: str


@dataclass(frozen=True)
class Guarded:
    """What the guard established: the instrument, its timeframe in seconds, the bars the strategy needs."""

    spec: Any  # apps.market.instruments.InstrumentSpec
    timeframe_seconds: int
    needed: int


@dataclass(frozen=True)
class MarketData:
    """The decision window and the order plan every order of this tick starts from."""

    bars: list[MarketBar]
    base: execution.OrderPlan


@dataclass(frozen=True)
class Submitted:
    """The risk stage's order: the plan sent, the venue it went to, what order_submit answered."""

    plan: execution.OrderPlan
    venue: Any
    submission: execution.Submission


# -- guard (DATABASE-BOUND) -------------------------------------------------------------------------


def guard_stage(runner: Runner, bot: Bot) -> Guarded:
    """DATABASE-BOUND (reads the global kill-all latch; the bot row is the one the tick loaded).
    Stops on an unknown instrument or timeframe, a killed bot, kill-all, a strategy configuration
    that cannot say how many bars it needs, or a runner whose mode does not match the bot's stage."""
    spec = instruments.get(bot.instrument)
    tf = TIMEFRAME_SECONDS.get(bot.timeframe)
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
    return Guarded(spec=spec, timeframe_seconds=tf, needed=needed)


# -- market hours (PURE) ----------------------------------------------------------------------------


def market_hours_stage(spec: Any, bar_ts: datetime) -> None:
    """PURE (the instrument's calendar). Stops with MARKET_CLOSED unless the bar traded (the second
    before its close) and orders can go out at its close."""
    for at in (bar_ts - timedelta(seconds=1), bar_ts):
        reason = hours.closed_reason(spec, at)
        if reason is not None:
            raise TickStopped(HOURS, "MARKET_CLOSED", f"{spec.root} closed at {at.isoformat()} ({reason})")


# -- market data (DATABASE-BOUND): the window, then SIM settle and protection -----------------------


def order_plan_base(ctx: TickContext, root: str, bars: Sequence[MarketBar]) -> execution.OrderPlan:
    """PURE. The plan every order of this tick starts from (contract still unknown, side and
    quantity placeholders): the bot's account and limits, the reference price of the window's last bar."""
    runner, bot = ctx.runner, ctx.bot
    return execution.OrderPlan(
        bot_id=bot.pk,
        generation=runner.generation,
        mode=runner.mode,
        venue=bot.venue if runner.mode == Runner.Mode.LIVE else execution.SIM_VENUE,
        account=bot.broker_account,
        instrument=root,
        contract="",
        bar_ts=ctx.bar_ts,
        leg="entry",
        side="BUY",
        quantity=1,
        risk_limits=bot.risk_limits,
        reference_price=bars[-1].close if bars else None,
        reference_price_at=ctx.bar_ts if bars else None,
        trading_day_start=instruments.trade_date_start(ctx.bar_ts),
        now=ctx.now,
        trace_id=ctx.trace_id,
    )


def market_data_stage(ctx: TickContext, guarded: Guarded, details: dict[str, Any]) -> MarketData:
    """DATABASE-BOUND (the bar store or the bot's provider, metered; the SIM order book). The
    decision window (`guarded.needed` bars ending at the tick's bar), fresh enough or the tick
    stops with the provider's reason. Then, before the strategy sees the position: working SIM
    orders fill on every bar since they became working, and the position as the bars left it keeps
    its protective stop (placed once its entry filled). A venue that cannot be reached is noted
    (`details["protection"]`); the risk stage says why, if the tick gets there."""
    runner, bot, spec = ctx.runner, ctx.bot, guarded.spec
    try:
        bars = market.bars(
            spec.root,
            bot.timeframe,
            end=ctx.bar_ts,
            count=guarded.needed,
            provider=bot.data_provider,
            bot_id=bot.pk,
            now=ctx.wall,
        )
    except ApplicationError as exc:
        raise TickStopped(DATA, exc.error_code, exc.message, exc.extra) from exc
    details["bars"] = len(bars)
    base = order_plan_base(ctx, spec.root, bars)
    try:
        contract, venue = execution_target(runner, bot, spec.root, ctx.bar_ts)
    except TickStopped as unavailable:
        details["protection"] = {"error": unavailable.message}
        if runner.mode == Runner.Mode.SIM:
            details |= settle_and_protect(runner, bot, spec, ctx.bar_ts, ctx.wall, bars, None, None)
    else:
        base = replace(base, contract=contract)
        details |= settle_and_protect(runner, bot, spec, ctx.bar_ts, ctx.wall, bars, base, venue)
    return MarketData(bars=bars, base=base)


def killed_reader(bot_id: int) -> Callable[[], bool]:
    """DATABASE-BOUND. Reads the kill latch from PostgreSQL and holds the bot row FOR SHARE until the
    transaction ends: a kill (an UPDATE of that row) waits for an order being sent, then cancels it."""

    def killed() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT killed FROM bots_bot WHERE id = %s FOR SHARE", [bot_id])
            row = cursor.fetchone()
        return True if row is None else bool(row[0])  # a bot that vanished is not one to trade for

    return killed


def execution_target(runner: Runner, bot: Bot, root: str, bar_ts: datetime) -> tuple[str, Any]:
    """(the venue's contract symbol, the broker client for LIVE or None). Raises TickStopped.
    DATABASE-BOUND in LIVE (the bot's broker credentials); SIM needs only the contract calendar."""
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


def bars_since(
    bot: Bot, spec: Any, start: datetime, end: datetime, wall: datetime, window: list[MarketBar]
) -> list[MarketBar]:
    """DATABASE-BOUND. Every closed bar from `start` to `end`, oldest first: the window already
    read, plus the older bars from the store (fetched from the bot's provider where missing), page by page."""
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


def settle_and_protect(
    runner: Runner,
    bot: Bot,
    spec: Any,
    end: datetime,
    wall: datetime,
    window: list[MarketBar],
    plan: execution.OrderPlan | None,
    venue: Any,
) -> dict[str, Any]:
    """DATABASE-BOUND (the fill rules it applies are pure: apps.trading.fills, apps.trading.stops).
    SIM: fill the working orders on every bar from the oldest one's own time up to `end` (the
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
            bars = window if window and window[0].ts <= since else bars_since(bot, spec, since, end, wall, window)
            if len(bars) > len(window):
                out["settled_from"] = since.isoformat()
                out["settled_bars"] = len(bars)
            settled = execution.sim_settle(bot_id=bot.pk, instrument=spec.root, bars=bars, timeframe_seconds=tf)
            if settled.filled:
                out.setdefault("filled", []).extend(o.client_order_id for o in settled.filled)
        if plan is None:
            break
        out["protection"] = protection = execution.protection_sync(plan, killed=killed_reader(bot.pk), venue=venue)
        if protection.get("placed"):
            out.setdefault("stops_placed", []).append(protection["stop"])
        if not (sim and protection.get("placed")):
            break
    return out


# -- strategy (PURE) --------------------------------------------------------------------------------


def strategy_decide(
    strategy_key: str, parameters: Any, bars: Sequence[MarketBar], position: int, tick_size: Decimal
) -> strategies.Decision:
    """PURE. The strategy's decision at the close of the window's last bar, for the position as the
    bars left it. An input the strategy refuses stops the tick with the strategy's own code."""
    try:
        return strategies.decide(strategy_key, bars, parameters, position, tick_size=tick_size)
    except strategies.StrategyInputError as exc:
        raise TickStopped(STRATEGY, exc.code, str(exc)) from exc


def strategy_stop(made: strategies.Decision) -> TickStopped | None:
    """PURE. The stop for a decision not to trade (its first reason, or NO_SIGNAL), None to trade."""
    if made.side is not None:
        return None
    code = made.reasons[0].code if made.reasons else strategies.NO_SIGNAL
    return TickStopped(STRATEGY, code, made.reasons[0].text if made.reasons else "no signal")


# -- risk (DATABASE-BOUND around the pure checks) ----------------------------------------------------


def order_plan(
    base: execution.OrderPlan, contract: str, made: strategies.Decision, replaces: Sequence[str] = ()
) -> execution.OrderPlan:
    """PURE. The decision's order: side, quantity and protective stop on the tick's base plan, naming
    the position's stops it replaces."""
    plan = replace(
        base, contract=contract, side=made.side, quantity=made.order_quantity, protective_stop=made.stop_price
    )
    return replace(plan, replaces=tuple(replaces)) if replaces else plan


def risk_stage(
    ctx: TickContext, root: str, base: execution.OrderPlan, made: strategies.Decision, position: int
) -> Submitted:
    """DATABASE-BOUND (the pure checks are apps.trading.risk.check, run by order_submit under the
    account lock; the order row is written before any send). An order that changes the position
    replaces its working stops, which stay working until the venue has accepted it; a LIVE stop the
    broker has no id for yet blocks it (PROTECTION_NOT_CLEARED). The verdict: `risk_verdict`."""
    contract, venue = execution_target(ctx.runner, ctx.bot, root, ctx.bar_ts)
    plan = order_plan(base, contract, made)
    if position:
        replaces, stuck = execution.protection_replaceable(bot_id=ctx.bot.pk, instrument=root, venue=venue)
        if stuck:
            raise TickStopped(
                RISK,
                "PROTECTION_NOT_CLEARED",
                f"working stop(s) {', '.join(stuck)} could not be cancelled once a new order is accepted "
                "(the broker has no id for them yet); no new order on top of them until reconcile settles them",
            )
        plan = replace(plan, replaces=tuple(replaces))
    submission = execution.order_submit(plan, killed=killed_reader(ctx.bot.pk), venue=venue)  # type: ignore[arg-type]
    return Submitted(plan=plan, venue=venue, submission=submission)


def order_summary(submission: execution.Submission) -> dict[str, Any]:
    """PURE. The order as the trace names it (`DecisionTrace.order`) once risk has answered."""
    order = submission.order
    return {
        "id": order.pk,
        "client_order_id": order.client_order_id,
        "side": order.side,
        "quantity": order.quantity,
        "status": order.status,
        "reason_code": order.reason_code,
        "created": submission.created,
    }


def stops_kept(plan: execution.OrderPlan) -> str:
    """PURE. The words added to a refusal when the position keeps the stops the order would have replaced."""
    return f"; the position keeps its stop {', '.join(plan.replaces)}" if plan.replaces else ""


def risk_verdict(sent: Submitted, details: dict[str, Any]) -> str | None:
    """PURE (on the answer already in hand). Stops the tick when risk refused the order
    (REJECTED_RISK, its reason code); else notes the order, the stop sent with it as a bracket and
    the stops it replaced, and answers the trace's message when some of those stops could not be
    cancelled (None otherwise)."""
    order, submission = sent.submission.order, sent.submission
    if order.status == order.Status.REJECTED_RISK:
        raise TickStopped(RISK, order.reason_code or "RISK_REJECTED", order.detail + stops_kept(sent.plan))
    details["order"] = order.client_order_id
    if submission.bracket_stop is not None:  # its protective stop went with it (one OSO), held until it fills
        details["bracket_stop"] = submission.bracket_stop.client_order_id
    if submission.replaced:
        details["replaced"] = submission.replaced
    if submission.not_replaced:
        details["not_replaced"] = submission.not_replaced
        return (
            f"stop(s) {', '.join(submission.not_replaced)} could not be cancelled after "
            f"{order.client_order_id} was accepted: they stay working until the position settles"
        )
    return None


# -- execution (DATABASE-BOUND) ---------------------------------------------------------------------


@dataclass(frozen=True)
class Executed:
    """The order after execution: its fills for the trace, and the trace's message when its
    outcome at the venue is UNKNOWN (None otherwise)."""

    order_info: dict[str, Any]
    message: str | None


def execution_stage(ctx: TickContext, guarded: Guarded, sent: Submitted, details: dict[str, Any]) -> Executed:
    """DATABASE-BOUND. Stops when the venue refused or cancelled the order. SIM: when the next bar
    has already closed (a replay, or a late tick) the order fills on it now and the position gets
    its stop (settle_and_protect); otherwise it fills on the next tick's bars. Answers the order as
    it stands, with its fills."""
    order, bot, spec, tf = sent.submission.order, ctx.bot, guarded.spec, guarded.timeframe_seconds
    if order.status in (order.Status.REJECTED, order.Status.CANCELLED):
        raise TickStopped(EXECUTION, order.reason_code or "ORDER_REJECTED", order.detail + stops_kept(sent.plan))
    if ctx.runner.mode == Runner.Mode.SIM and ctx.bar_ts + timedelta(seconds=tf) <= ctx.wall:
        # The next bar has already closed (a replay, or a late tick): fill on it now.
        nxt = market.bars(
            spec.root, bot.timeframe, end=ctx.bar_ts + timedelta(seconds=tf), count=1,
            provider=bot.data_provider, bot_id=bot.pk, now=ctx.wall,
        )  # fmt: skip
        details |= settle_and_protect(
            ctx.runner, bot, spec, ctx.bar_ts + timedelta(seconds=tf), ctx.wall, nxt, sent.plan, sent.venue
        )
    order.refresh_from_db()
    info = {
        "status": order.status,
        "filled_quantity": order.filled_quantity,
        "avg_fill_price": None if order.avg_fill_price is None else str(order.avg_fill_price),
        "fills": [
            {"price": str(f.price), "quantity": f.quantity, "fee": str(f.fee), "at": f.filled_at.isoformat()}
            for f in order.fills.all()
        ],
    }
    details["status"] = order.status
    return Executed(order_info=info, message=order.detail if order.status == order.Status.UNKNOWN else None)
