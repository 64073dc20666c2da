"""Runner lifecycle and the kill switch. TradeOps is the only thing that starts, stops, restarts
or kills, and it fails closed: every safe-start gate runs before anything moves, and a refusal
changes nothing but the audit trail."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.bots import services as bot_services
from apps.bots.models import Bot
from apps.core import snapshots
from apps.core.audit import audit_record
from apps.core.context import get_trace_id
from apps.core.exceptions import ApplicationError, StateConflict
from apps.integrations import registry as integration_registry
from apps.integrations import selectors as integration_selectors
from apps.integrations.errors import fix_for
from apps.market.instruments import TIMEFRAME_SECONDS, trade_date_start
from apps.market.selectors import latest_bar
from apps.runners.models import Runner
from apps.runners.services.tick_stages import killed_reader
from apps.telemetry.selectors import scheduler_state
from apps.trading import kill_switch
from apps.trading import services as execution
from apps.trading.models import Fill, Position, ReconcileReport
from apps.trading.reconcile import reconcile_bot
from apps.trading.symbols import venue_symbol

logger = logging.getLogger("tradeops.runners")

ACTIVE = (Runner.Status.STARTING, Runner.Status.RUNNING, Runner.Status.STOPPING)
RUNNABLE_STAGES = (Bot.Stage.PAPER, Bot.Stage.LIVE)


def _label(actor: Any) -> str:
    return actor.get_username() if getattr(actor, "is_authenticated", False) else "system"


def needed_integrations(bot: Bot) -> list[str]:
    """What a running bot needs: its data provider always; its broker when it trades LIVE."""
    needed = [bot.data_provider]
    if bot.stage == Bot.Stage.LIVE and bot.venue != Bot.Venue.SIM:
        needed.append(bot.venue)
    return needed


def _refuse(bot: Bot, actor: Any, action: str, error: ApplicationError) -> None:
    """Audit the refusal (visible on the bot's page) and raise it. Nothing else is written."""
    audit_record(
        action=f"runner.{action}_refused",
        actor=actor,
        target=bot,
        after={"error_code": error.error_code, "message": error.message, **error.extra},
    )
    raise error


def safe_start_check(*, bot: Bot) -> None:
    """Every gate, in the order an operator should fix them. Raises the first that fails."""
    kill_all = kill_switch.kill_all_state()
    if kill_all.engaged:
        raise StateConflict(
            f"No bot may start: {kill_all.describe()}.",
            error_code="BOT_KILLED",
            suggested_fix="When it is safe, an operator releases kill-all with a reason "
            f"({kill_switch.RELEASE_PATH}); a bot that kill-all killed then still needs its own unkill.",
            extra={"scope": "global", "kill_all": kill_all.as_json()},
        )
    if bot.killed:
        raise StateConflict(
            f"Bot {bot.name} is killed ({bot.kill_reason or 'no reason given'}).",
            error_code="BOT_KILLED",
            suggested_fix=f"An operator must unkill it with a reason (POST /api/bots/{bot.pk}/unkill) before it "
            "can start.",
            extra={"scope": "bot"},
        )
    rows = {r["provider"]: r for r in integration_selectors.integration_status_list()}
    for provider in needed_integrations(bot):
        row = rows[provider]
        if not row["configured"]:
            raise StateConflict(
                f"{row['label']} is not configured; bot {bot.name} needs it ({row['used_for']}).",
                error_code="INTEGRATION_KEY_MISSING",
                suggested_fix=fix_for("INTEGRATION_KEY_MISSING", provider),
                extra={"missing_env_vars": row["missing_env_vars"], "provider": provider},
            )
    for provider in needed_integrations(bot):
        row = rows[provider]
        if not row["connected"]:
            raise StateConflict(
                f"{row['label']} is configured but not verified ({row['error_code']}).",
                error_code="INTEGRATION_NOT_CONNECTED",
                suggested_fix=row["suggested_fix"] or fix_for("INTEGRATION_NOT_CONNECTED", provider),
                extra={"provider": provider},
            )
    if bot.stage not in RUNNABLE_STAGES:
        raise StateConflict(
            f"Bot {bot.name} is at {bot.stage}; only PAPER and LIVE bots run.",
            error_code="BOT_STAGE_NOT_RUNNABLE",
            suggested_fix="Promote it to PAPER first (POST /api/bots/{id}/promote).",
        )
    scheduler = scheduler_state()
    if scheduler["status"] != "ok":
        raise StateConflict(
            "The scheduler is not alive: " + " ".join(scheduler["reasons"]),
            error_code="SCHEDULER_UNAVAILABLE",
            suggested_fix="Start Celery beat and a worker (`make run` starts both) and wait for their heartbeats.",
        )


def broker_for(bot: Bot) -> Any:
    """The broker client a LIVE bot trades through (an OrderVenue), or None for SIM."""
    if bot.stage != Bot.Stage.LIVE or bot.venue == Bot.Venue.SIM:
        return None
    spec = integration_registry.get(bot.venue)
    assert spec is not None, bot.venue
    return spec.client_class().for_bot(bot.pk)


def protection_reference(bot: Bot, instrument: str, now: datetime) -> tuple[Any, Any]:
    """(price, time) to check a protective stop placed outside a tick against: the newer of the
    bot's latest fill in the instrument (the broker's own price, just learnt by reconcile) and the
    close of the newest stored bar, neither later than `now`. (None, None) without either: risk
    then refuses the stop, and the next tick places it."""
    tf = timedelta(seconds=TIMEFRAME_SECONDS.get(bot.timeframe, 60))
    candidates = []
    fill = (
        Fill.objects.filter(bot_id=bot.pk, instrument=instrument, filled_at__lte=now)
        .order_by("-filled_at", "-id")
        .first()
    )
    if fill is not None:
        candidates.append((fill.filled_at, fill.price))
    bar = latest_bar(instrument=instrument, timeframe=bot.timeframe, before=now - tf)  # closed by `now`
    if bar is not None:
        candidates.append((bar.ts + tf, bar.close))
    if not candidates:
        return None, None
    at, price = max(candidates, key=lambda c: c[0])
    return price, at


def _protector(bot: Bot, venue: Any) -> Callable[[], dict[str, Any]]:
    """What reconcile runs once it has applied broker fills: the LIVE bot's protection_sync, with a
    plan made here (the trading app does not know bots), so that the position's stop is placed as
    soon as its fill is known. A venue with brackets already has it (the entry's HELD stop)."""

    def protect() -> dict[str, Any]:
        if Bot.objects.filter(pk=bot.pk, killed=True).exists():
            # As at the tick's guard: a killed bot sends nothing new, not even a stop (its kill flattens).
            return {"unprotected": "the bot is killed: no new order is placed for it, not even its stop"}
        now = timezone.now()
        tf = TIMEFRAME_SECONDS.get(bot.timeframe, 60)
        closed = datetime.fromtimestamp(int(now.timestamp()) // tf * tf, tz=UTC)  # the last bar close
        try:
            contract = venue_symbol(bot.instrument, bot.venue, now)
        except ValueError as exc:
            return {"unprotected": f"no venue symbol for {bot.instrument}: {exc}; the next tick tries again"}
        price, at = protection_reference(bot, bot.instrument, now)
        runner = Runner.objects.filter(bot=bot).only("generation").first()
        plan = execution.OrderPlan(
            bot_id=bot.pk,
            generation=runner.generation if runner is not None else 0,
            mode=Runner.Mode.LIVE,
            venue=bot.venue,
            account=bot.broker_account,
            instrument=bot.instrument,
            contract=contract,
            bar_ts=closed,
            leg="stop",
            side="BUY",
            quantity=1,
            risk_limits=bot.risk_limits,
            reference_price=price,
            reference_price_at=at,
            trading_day_start=trade_date_start(now),
            now=now,
            trace_id=get_trace_id() or "",
        )
        return execution.protection_sync(plan, killed=killed_reader(bot.pk), venue=venue)

    return protect


def bot_reconcile(*, bot: Bot, actor: Any = None, trigger: str = "manual", actor_label: str = "") -> ReconcileReport:
    """Reconcile the bot against its venue (SPEC §3): the SIM ledger, or its broker when LIVE. A
    running LIVE bot whose broker cannot be read is halted (RELIABILITY J10). LIVE, a reconcile that
    applies broker fills protects the position at once (`_protector`)."""
    venue = broker_for(bot)
    runner = Runner.objects.filter(bot=bot).only("status", "mode").first()
    running_live = (
        venue is not None and runner is not None and runner.status in ACTIVE and runner.mode == Runner.Mode.LIVE
    )
    return reconcile_bot(
        bot_id=bot.pk,
        mode=Runner.Mode.LIVE if venue is not None else Runner.Mode.SIM,
        venue_name=bot.venue if venue is not None else "sim",
        account=bot.broker_account,
        instrument=bot.instrument,
        venue=venue,
        trigger=trigger,
        actor=actor,
        actor_label=actor_label,
        halt_on_failure=running_live,
        protect=_protector(bot, venue) if venue is not None else None,
    )


def _reconcile_before_start(bot: Bot, actor: Any) -> None:
    """Start reconciles first; a LIVE bot whose venue does not match, or cannot be read, does not start."""
    report = bot_reconcile(bot=bot, actor=actor, trigger="start")
    if report.status == ReconcileReport.Status.MISMATCH:
        raise StateConflict(
            f"Reconcile {report.pk} found differences it could not settle; the bot is HALTED.",
            error_code="RECONCILE_MISMATCH",
            suggested_fix="Read the reconcile report, settle the differences at the venue, then start again.",
            extra={"reconcile_id": report.pk, "unsettled": report.report["unsettled"][:20]},
        )
    if report.status == ReconcileReport.Status.FAILED:
        raise StateConflict(
            f"Not started: reconcile {report.pk} could not read {bot.venue} ({report.report['failure']}), so the "
            "bot's orders and position at the broker are unknown. A LIVE start is refused until a reconcile succeeds.",
            error_code="RECONCILE_FAILED",
            suggested_fix="Check the broker on the Connections page (Verify), reconcile the bot from its page until "
            "it succeeds, then start again.",
            extra={"reconcile_id": report.pk},
        )


def runner_start(*, bot: Bot, actor: Any) -> Runner:
    try:
        safe_start_check(bot=bot)
        _reconcile_before_start(bot, actor)
    except ApplicationError as error:
        _refuse(bot, actor, "start", error)
    mode = runner_mode_for(bot.stage)
    with transaction.atomic():
        runner, _ = Runner.objects.get_or_create(bot=bot)
        now = timezone.now()
        # R4: one conditional UPDATE; a concurrent start finds the row already moved.
        moved = Runner.objects.filter(pk=runner.pk, status__in=[Runner.Status.STOPPED, Runner.Status.FAILED]).update(
            status=Runner.Status.RUNNING,
            mode=mode,
            generation=F("generation") + 1,
            started_at=now,
            stopped_at=None,
            last_error="",
        )
        if moved != 1:
            runner.refresh_from_db()
            error = StateConflict(
                f"The runner of {bot.name} is already {runner.status}.",
                error_code="RUNNER_ALREADY_RUNNING",
                suggested_fix="Stop it first, or use restart.",
            )
        else:
            error = None
            runner.refresh_from_db()
            audit_record(
                action="runner.start",
                actor=actor,
                target=bot,
                after={"status": runner.status, "mode": runner.mode, "generation": runner.generation},
            )
    if error is not None:
        _refuse(bot, actor, "start", error)
    snapshots.invalidate("system-status")
    return runner


def _stop(*, bot: Bot, actor: Any, reason: str, action: str, actor_label: str = "") -> Runner | None:
    """Move the runner to STOPPED and bump its generation (fencing in-flight work). Returns None
    when it was not running."""
    runner = Runner.objects.filter(bot=bot).first()
    if runner is None:
        return None
    now = timezone.now()
    moved = Runner.objects.filter(pk=runner.pk, status__in=[*ACTIVE, Runner.Status.FAILED]).update(
        status=Runner.Status.STOPPED, generation=F("generation") + 1, stopped_at=now
    )
    if moved != 1:
        return None
    runner.refresh_from_db()
    audit_record(
        action=action, actor=actor, actor_label=actor_label, target=bot, after={"status": runner.status}, reason=reason
    )
    return runner


def runner_stop(*, bot: Bot, actor: Any, reason: str = "") -> Runner:
    with transaction.atomic():
        runner = _stop(bot=bot, actor=actor, reason=reason, action="runner.stop")
    if runner is None:
        raise StateConflict(
            f"The runner of {bot.name} is not running.",
            error_code="RUNNER_NOT_RUNNING",
            suggested_fix="Nothing to stop. Start it with POST /api/runners/start.",
        )
    snapshots.invalidate("system-status")
    return runner


def runner_restart(*, bot: Bot, actor: Any) -> Runner:
    # The gates first: a restart that would not start again must not stop a running bot.
    try:
        safe_start_check(bot=bot)
    except ApplicationError as error:
        _refuse(bot, actor, "restart", error)
    with transaction.atomic():
        _stop(bot=bot, actor=actor, reason="restart", action="runner.stop")
    return runner_start(bot=bot, actor=actor)


def runner_mode_for(stage: str) -> str:
    return Runner.Mode.LIVE if stage == Bot.Stage.LIVE else Runner.Mode.SIM


def bot_demote(*, bot: Bot, to_stage: str, reason: str, actor: Any, actor_label: str = "") -> bot_services.StageChange:
    """Demote (apps.bots decides whether it may), then settle the runner: a runner whose bot can
    no longer run at all (LAB, RETIRED) or no longer in its mode (LIVE→PAPER: it must not keep
    trading with the broker) is stopped with its generation bumped, so an in-flight tick of the
    old mode is fenced. The operator starts it again at the new stage, through every gate."""
    change = bot_services.bot_demote(bot=bot, to_stage=to_stage, reason=reason, actor=actor, actor_label=actor_label)
    runner = Runner.objects.filter(bot=bot).only("status", "mode").first()
    cannot_keep = runner is not None and (
        change.to_stage not in RUNNABLE_STAGES or runner.mode != runner_mode_for(change.to_stage)
    )
    if cannot_keep and runner.status in ACTIVE:
        with transaction.atomic():
            _stop(
                bot=bot,
                actor=actor,
                actor_label=actor_label,
                reason=f"demoted to {change.to_stage}: {reason}",
                action="runner.stop",
            )
        snapshots.invalidate("system-status")
    return change


@dataclass
class KillReport:
    bot_id: int
    latched: bool  # False when it was already killed (the latch holds either way)
    runner_stopped: bool
    orders_cancelled: int  # cancelled in the ledger (SIM) or cancel sent to the broker (LIVE)
    orders: dict[str, int]  # every open order's outcome: cancelled, cancel_requested, left_for_reconcile...
    flatten: str

    def as_dict(self) -> dict[str, Any]:
        return self.__dict__.copy()


def _flatten(bot: Bot, venue: Any, reason: str) -> str:
    """Close the bot's open positions after a kill with FLATTEN orders through the risk engine (they
    pass the kill latch only because they strictly reduce, and still need a fresh real price) and
    the normal execution path: the SIM ledger, or the broker for LIVE. Says what it did, or why it
    did not (no fresh price: the position is left for the operator; never a made-up price)."""
    said = []
    for position in Position.objects.filter(bot_id=bot.pk).exclude(quantity=0):
        now = timezone.now()
        latest = latest_bar(instrument=position.instrument, timeframe=bot.timeframe)
        seconds = TIMEFRAME_SECONDS.get(bot.timeframe, 60)
        live = venue is not None
        try:
            contract = venue_symbol(position.instrument, bot.venue if live else "sim", now)
        except ValueError as exc:
            said.append(f"{position.instrument} {position.quantity:+d}: not flattened ({exc}); left for the operator")
            continue
        plan = execution.OrderPlan(
            bot_id=bot.pk,
            generation=0,
            mode=Runner.Mode.LIVE if live else Runner.Mode.SIM,
            venue=bot.venue if live else execution.SIM_VENUE,
            account=bot.broker_account,
            instrument=position.instrument,
            contract=contract,
            bar_ts=now,
            leg=f"flatten-{now.isoformat()}",
            side="SELL" if position.quantity > 0 else "BUY",
            quantity=abs(position.quantity),
            risk_limits=bot.risk_limits,
            reference_price=latest.close if latest else None,
            reference_price_at=latest.ts + timedelta(seconds=seconds) if latest else None,
            trading_day_start=trade_date_start(now),
            now=now,
            trace_id=get_trace_id() or "",
            origin="FLATTEN",
        )
        order = execution.order_submit(plan, killed=lambda: True, venue=venue).order
        what = f"{position.instrument} {position.quantity:+d}"
        if order.status == order.Status.REJECTED_RISK:
            said.append(f"{what}: not flattened ({order.reason_code}: {order.detail}); left for the operator")
        elif order.status in (order.Status.REJECTED, order.Status.CANCELLED):
            said.append(f"{what}: the flatten order was refused ({order.reason_code}: {order.detail})")
        else:
            said.append(f"{what}: flatten order {order.client_order_id} {order.status}")
    return "; ".join(said) or "requested: no open position"


def bot_kill(*, bot: Bot, actor: Any, reason: str, flatten: bool = False, scope: str = "bot") -> KillReport:
    """The kill switch (RELIABILITY K1, K2). The latch is committed first, in its own transaction,
    so that even if everything after it fails the bot stays killed and every order path refuses
    (the execution path reads the latch from Postgres; no queue in between; an order being sent
    holds the bot row, so the latch waits for it and then sees it). Then the runner is stopped,
    open orders are cancelled (through no queue: directly, in this request), and on request the
    position is flattened."""
    if not reason or not reason.strip():
        raise ApplicationError(
            "A kill needs a reason.",
            error_code="VALIDATION_ERROR",
            status_code=400,
            suggested_fix="Send a reason.",
            extra={"fields": {"reason": ["This field is required."]}},
        )
    with transaction.atomic():
        latched = bot_services.bot_kill_latch(bot=bot, actor=actor, actor_label=_label(actor), reason=reason)
    with transaction.atomic():
        runner = _stop(bot=bot, actor=actor, reason=f"kill: {reason}", action="runner.stop")
    try:
        venue = broker_for(bot)
    except ApplicationError as exc:  # no broker keys: LIVE orders are left for reconcile, said so
        logger.warning("kill of bot %s: no broker client (%s)", bot.pk, exc.error_code)
        venue = None
    orders = execution.orders_cancel_for_kill(bot_id=bot.pk, reason=f"kill: {reason}", venue=venue)
    report = KillReport(
        bot_id=bot.pk,
        latched=latched,
        runner_stopped=runner is not None,
        orders_cancelled=orders.get("cancelled", 0) + orders.get("cancel_requested", 0),
        orders=orders,
        flatten=_flatten(bot, venue, reason) if flatten else "not requested",
    )
    audit_record(
        action="bot.kill_switch", actor=actor, target=bot, reason=reason, after={"scope": scope, **report.as_dict()}
    )
    snapshots.invalidate("system-status")
    return report


@dataclass
class KillAllReport:
    state: kill_switch.KillAllState
    newly_engaged: bool
    reports: list[KillReport]


def system_kill_all(*, actor: Any, reason: str) -> KillAllReport:
    """Kill-all (RELIABILITY K1): the global latch first (committed on its own, so every start,
    risk check and send refuses from here on, a bot created meanwhile included), then every bot
    killed as by its own kill switch (latched, runner stopped, open orders cancelled). The latch
    stays until a person releases it (system_kill_all_release)."""
    state, engaged = kill_switch.kill_all_engage(actor=actor, reason=reason)
    reports = [bot_kill(bot=bot, actor=actor, reason=reason, scope="system") for bot in Bot.objects.order_by("pk")]
    audit_record(
        action="system.kill_all",
        actor=actor,
        target_type="system",
        target_id="all",
        reason=reason,
        after={"scope": "global", "bots": len(reports), "newly_engaged": engaged},
    )
    return KillAllReport(state=state, newly_engaged=engaged, reports=reports)


def system_kill_all_release(*, actor: Any, reason: str) -> tuple[kill_switch.KillAllState, list[int]]:
    """Release the global latch (a person with the operator role, and a reason; audited). Bots stay
    as they are: those still killed (by kill-all or on their own) are returned, each needs its unkill."""
    state = kill_switch.kill_all_release(actor=actor, reason=reason)
    return state, list(Bot.objects.filter(killed=True).order_by("pk").values_list("pk", flat=True))


RECONCILE_EVERY_SECONDS = 300


def reconcile_sweep(*, now: Any = None) -> dict[str, list[int]]:
    """On a schedule: one reconcile job per RUNNING runner's bot per 5-minute window (the key makes
    every other run in the window a no-op)."""
    from apps.runners.services.jobs import job_enqueue

    window = int((now or timezone.now()).timestamp()) // RECONCILE_EVERY_SECONDS
    enqueued = []
    for runner in Runner.objects.filter(status=Runner.Status.RUNNING).order_by("pk"):
        job = job_enqueue(
            type="reconcile",
            payload={"bot_id": runner.bot_id, "trigger": "schedule"},
            idempotency_key=f"reconcile:{runner.bot_id}:{window}",
            runner=runner,
            max_attempts=2,
        )
        enqueued.append(job.pk)
    return {"jobs": enqueued}


def job_handle_reconcile(job: Any) -> dict[str, Any]:
    bot = Bot.objects.filter(pk=job.payload.get("bot_id")).first()
    if bot is None:
        return {"outcome": "SKIPPED", "reason": "the bot no longer exists"}
    report = bot_reconcile(bot=bot, trigger=job.payload.get("trigger", "schedule"), actor_label="system:reconcile")
    return {"bot_id": bot.pk, "report": report.pk, "status": report.status}
