"""Execution: the only way an order reaches a venue (SPEC §6, RELIABILITY R12).

`order_submit` takes a plan (plain values from the tick), and in ONE transaction holding the
account's risk row (SELECT … FOR UPDATE, RELIABILITY R5) reads the bot's position, working orders,
today's PnL, recent orders and trading state, runs the pure risk checks (apps/trading/risk.py) and
writes the order row: REJECTED_RISK (never sent) or PENDING_SUBMIT. The row is committed before
anything is sent. Its `client_order_id` is derived from the intent (bot, bar, leg), so running the
same tick again finds the row and sends nothing (J1).

Then the venue:
- SIM: the order is WORKING; `sim_settle` fills it on the first real bar after its decision
  (apps/trading/fills.py), never at a price made up when it was placed.
- LIVE: sent through the broker client while the bot's row is held FOR SHARE, so a kill (which
  updates that row) waits for the send to finish and then cancels what is working; a kill that
  came first is seen and nothing is sent (K1, K2). Accepted → WORKING with the broker's id;
  refused → REJECTED; anything ambiguous → UNKNOWN, never resent, until reconcile settles it.
  A worker killed during the send leaves the row PENDING_SUBMIT, which reconcile treats as unknown.
- LIVE bracket: an entry that carries a protective stop and opens a position from flat, on a venue
  with brackets (Tradovate's OSO), goes out WITH its stop in one command, so the position is never
  without it. Risk checks both (the stop as origin PROTECTIVE, against the position the entry
  opens) before anything is written as sendable; both rows are written before the send (the stop's
  client order id and working-from are those apps/trading/stops.py gives the entry's first stop);
  accepted → the entry WORKING and the stop HELD (the venue holds it until the entry fills), each
  with its broker id; refused → both REJECTED; ambiguous → both UNKNOWN, never resent. A venue
  without brackets gets the entry alone; its stop is placed as soon as the fill is known (the
  reconcile that applies it runs protection_sync: apps/trading/reconcile.py).

Rows name bots by plain id (bots live in a higher app); what the trading app needs to know about a
bot arrives in the plan, and the kill latch through a callable that reads it from PostgreSQL. The
global kill-all latch (apps/trading/kill_switch.py) is read here, at risk and again before a send.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from apps.core.audit import audit_record
from apps.core.exceptions import ApplicationError
from apps.integrations.errors import IntegrationError
from apps.integrations.orders import OrderOutcomeUnknown, OrderRejected, OrderRequest, OrderVenue, PlacedBracket
from apps.market import instruments
from apps.market.bars import MarketBar
from apps.trading import kill_switch, risk, selectors, stops
from apps.trading.fills import FillModel, PositionState, apply_fill, first_fill, unrealized_pnl
from apps.trading.models import AccountRisk, Fill, Order, Position, TradingState

logger = logging.getLogger("tradeops.trading")

SIM, LIVE = "SIM", "LIVE"
SIM_VENUE = "sim"


def client_order_id_for(*, bot_id: int, bar_ts: datetime, leg: str) -> str:
    """The same intent always gets the same id (≤ 40 characters, letters, digits and dashes)."""
    digest = hashlib.sha256(f"{bot_id}|{bar_ts.astimezone(UTC).isoformat()}|{leg}".encode()).hexdigest()
    return f"TRO-{bot_id}-{digest[: 34 - len(str(bot_id))]}"


@dataclass(frozen=True)
class OrderPlan:
    """One order a tick (or an operator's flatten) wants, with everything risk needs to know that
    the trading app cannot read itself."""

    bot_id: int
    generation: int
    mode: str  # SIM | LIVE
    venue: str
    account: str
    instrument: str
    contract: str
    bar_ts: datetime  # the close of the bar whose decision this is
    leg: str  # "entry", "exit", "stop", "flatten": one order per leg per bar
    side: str
    quantity: int
    risk_limits: Mapping[str, Any]
    reference_price: Decimal | None
    reference_price_at: datetime | None
    trading_day_start: datetime
    now: datetime
    trace_id: str
    order_type: str = "MARKET"
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    origin: str = risk.IntentOrigin.STRATEGY
    protective_stop: Decimal | None = None  # an entry's stop, placed as a STOP order once it fills
    # Client order ids of the position's working stops this order replaces (a reversal or an exit):
    # risk counts them as cancelled, and they are cancelled once the venue has accepted this order.
    # Refused (by risk or the venue), they stay working.
    replaces: tuple[str, ...] = ()


@dataclass
class Submission:
    order: Order
    created: bool  # False: the same intent was placed before; nothing was sent again
    verdict: risk.RiskVerdict | None = None
    halted: bool = False
    replaced: list[str] = field(default_factory=list)  # the stops it replaced, now cancelled
    bracket_stop: Order | None = None  # the protective stop sent with it as one bracket (LIVE OSO)
    not_replaced: list[str] = field(default_factory=list)  # stops it replaces that could not be cancelled

    @property
    def checks(self) -> list[dict[str, Any]]:
        if self.verdict is None:
            return []
        return [
            {"name": c.name, "passed": c.passed, "reason_code": c.reason_code, "detail": c.detail}
            for c in self.verdict.checks
        ]


def policy() -> risk.RiskPolicy:
    return risk.RiskPolicy(**getattr(settings, "TRADING_RISK_POLICY", {}))


def _account_row(venue: str, account: str) -> AccountRisk:
    """The account's risk row, locked. A SIM account gets the configured default cap; a broker
    account's cap is an admin's to set, and until then its orders fail closed (RISK_LIMIT_MISSING)."""
    default = settings.TRADING_SIM_ACCOUNT_MAX_CONTRACTS if venue == SIM_VENUE else None
    AccountRisk.objects.get_or_create(venue=venue, account=account, defaults={"max_contracts": default})
    return AccountRisk.objects.select_for_update().get(venue=venue, account=account)


def _open_quantities(orders: Any) -> dict[tuple[int, str, str], int]:
    rows = (
        orders.filter(status__in=Order.OPEN_STATUSES)
        .values("bot_id", "instrument", "side")
        .annotate(open=Sum(F("quantity") - F("filled_quantity")))
    )
    return {(r["bot_id"], r["instrument"], r["side"]): r["open"] or 0 for r in rows}


def _account_exposure(venue: str, account: str, *, excluding: Sequence[int] = ()) -> int:
    """Σ over the account's bots and instruments of the worst case if every working order fills
    (but the `excluding` order ids: stops the order being checked replaces)."""
    return sum(selectors.account_worst_case_by_instrument(venue=venue, account=account, excluding=excluding).values())


def position_state(*, bot_id: int, instrument: str) -> PositionState:
    row = Position.objects.filter(bot_id=bot_id, instrument=instrument).first()
    if row is None:
        return PositionState(0, None, Decimal(0))
    return PositionState(row.quantity, row.avg_price, row.realized_pnl)


def daily_pnl(
    *, bot_id: int, instrument: str, since: datetime, mark: Decimal | None, point_value: Decimal
) -> Decimal | None:
    """Realized PnL of fills since `since`, net of their fees, plus the open position's PnL at
    `mark`. None when the position is open and there is no mark: unknown, never 0."""
    realized = Fill.objects.filter(bot_id=bot_id, filled_at__gte=since).aggregate(
        pnl=Sum("realized_pnl"), fees=Sum("fee")
    )
    open_pnl = unrealized_pnl(position_state(bot_id=bot_id, instrument=instrument), mark=mark, point_value=point_value)
    if open_pnl is None:
        return None
    return (realized["pnl"] or Decimal(0)) - (realized["fees"] or Decimal(0)) + open_pnl


def _replaced_stops(plan: OrderPlan) -> Any:
    """The open STOP orders of the plan's bot and instrument that the plan says it replaces."""
    return Order.objects.filter(
        client_order_id__in=plan.replaces,
        bot_id=plan.bot_id,
        instrument=plan.instrument,
        order_type=Order.Type.STOP,
        status__in=Order.OPEN_STATUSES,
    )


def _context(plan: OrderPlan, *, killed: bool, account: AccountRisk, pol: risk.RiskPolicy) -> risk.RiskContext:
    spec = instruments.get(plan.instrument)
    held = position_state(bot_id=plan.bot_id, instrument=plan.instrument).quantity
    # The stops this order replaces are cancelled once it is accepted: they count as gone, or the
    # stop of a long would count as a working sell against the reversal that replaces it.
    replaced = list(_replaced_stops(plan).values_list("pk", flat=True)) if plan.replaces else []
    working = _open_quantities(
        Order.objects.filter(bot_id=plan.bot_id, instrument=plan.instrument).exclude(pk__in=replaced)
    )
    since = min(plan.trading_day_start, plan.now - pol.burst_window, plan.now - pol.duplicate_window)
    sent = list(
        Order.objects.filter(bot_id=plan.bot_id, placed_at__gte=since)
        .exclude(status=Order.Status.REJECTED_RISK)
        .values("instrument", "side", "quantity", "order_type", "limit_price", "stop_price", "placed_at")
    )
    state = TradingState.objects.filter(bot_id=plan.bot_id).values_list("state", flat=True).first()
    return risk.RiskContext(
        now=plan.now,
        risk_limits=plan.risk_limits,
        position=held,
        working_buy_quantity=working.get((plan.bot_id, plan.instrument, "BUY"), 0),
        working_sell_quantity=working.get((plan.bot_id, plan.instrument, "SELL"), 0),
        daily_pnl=None
        if spec is None
        else daily_pnl(
            bot_id=plan.bot_id,
            instrument=plan.instrument,
            since=plan.trading_day_start,
            mark=plan.reference_price,
            point_value=spec.point_value,
        ),
        trading_day_start=plan.trading_day_start,
        recent_order_times=[o["placed_at"] for o in sent if o["placed_at"] >= plan.trading_day_start],
        recent_intents=[
            risk.RecentIntent(
                instrument=o["instrument"],
                side=risk.Side(o["side"]),
                quantity=o["quantity"],
                order_type=risk.OrderType(o["order_type"]),
                limit_price=o["limit_price"],
                stop_price=o["stop_price"],
                at=o["placed_at"],
            )
            for o in sent
            if o["placed_at"] >= plan.now - pol.duplicate_window
        ],
        reference_price=plan.reference_price,
        reference_price_at=plan.reference_price_at,
        trading_state=state or TradingState.State.ACTIVE,
        killed=killed,
        account_exposure_contracts=_account_exposure(plan.venue, plan.account, excluding=replaced),
        account_limit_contracts=account.max_contracts,
        point_value=spec.point_value if spec is not None else None,
        account_limit_notional=account.max_notional,
        account_notional_usd=None
        if account.max_notional is None
        else selectors.account_notional(
            venue=plan.venue,
            account=plan.account,
            instrument=plan.instrument,
            reference_price=plan.reference_price,
            now=plan.now,
            excluding=replaced,
        ),
        restricted_instruments=selectors.restricted_instruments(
            venue=plan.venue, account=plan.account, instrument=plan.instrument
        ),
    )


def _halt_if_repeated(plan: OrderPlan, pol: risk.RiskPolicy) -> bool:
    """RELIABILITY R6: repeated breaches within the window halt the bot (audited)."""
    since = plan.now - pol.halt_breach_window
    breaches = [
        risk.Breach(code=code, at=at)
        for code, at in Order.objects.filter(
            bot_id=plan.bot_id, status=Order.Status.REJECTED_RISK, placed_at__gte=since
        ).values_list("reason_code", "placed_at")
    ]
    if not risk.should_halt(breaches, pol.halt_breach_window, now=plan.now, threshold=pol.halt_breach_threshold):
        return False
    return trading_state_set(
        bot_id=plan.bot_id,
        state=TradingState.State.HALTED,
        reason_code="RISK_REPEATED_BREACHES",
        reason=f"{len(breaches)} risk rejections within {pol.halt_breach_window}",
        actor_label="system:risk",
    )


def trading_state_set(
    *, bot_id: int, state: str, reason_code: str, reason: str, actor_label: str, actor: Any = None
) -> bool:
    """Move a bot's trading state; True when it changed. Audited as trading.state_changed."""
    row, _ = TradingState.objects.select_for_update().get_or_create(bot_id=bot_id)
    if row.state == state:
        return False
    before = row.state
    row.state, row.reason_code, row.reason = state, reason_code, reason
    row.changed_by, row.changed_at = actor_label or getattr(actor, "username", ""), timezone.now()
    row.save()
    audit_record(
        action="trading.state_changed",
        actor=actor,
        actor_label=actor_label,
        target_type="bots.bot",
        target_id=str(bot_id),
        before={"state": before},
        after={"state": state, "reason_code": reason_code},
        reason=reason,
    )
    return True


def trading_state_change(*, bot_id: int, state: str, reason: str, actor: Any) -> dict[str, Any]:
    """A person sets a bot's trading state (the way out of HALTED or REDUCING). Needs a reason."""
    if not reason or not reason.strip():
        raise ApplicationError(
            "A trading-state change needs a reason.",
            error_code="VALIDATION_ERROR",
            status_code=400,
            extra={"fields": {"reason": ["This field is required."]}},
        )
    label = actor.get_username() if getattr(actor, "is_authenticated", False) else ""
    if not label:
        raise ApplicationError(
            "Only a signed-in person changes a trading state.", error_code="FORBIDDEN", status_code=403
        )
    if state == TradingState.State.ACTIVE and (blocker := selectors.reconcile_blocker(bot_id=bot_id)) is not None:
        code = "RECONCILE_FAILED" if blocker.status == "FAILED" else "RECONCILE_MISMATCH"
        raise ApplicationError(
            f"Reconcile {blocker.pk} did not succeed ({blocker.status}): the bot's orders and position at its venue "
            "are not known to match, so it cannot go back to ACTIVE.",
            error_code=code,
            status_code=409,
            suggested_fix="Reconcile the bot from its page until it succeeds (MATCHED or FIXED), then set ACTIVE.",
            extra={"reconcile_id": blocker.pk},
        )
    with transaction.atomic():
        changed = trading_state_set(
            bot_id=bot_id, state=state, reason_code="OPERATOR", reason=reason, actor_label=label, actor=actor
        )
    return {"state": state, "changed": changed}


def _bracketed(plan: OrderPlan, venue: OrderVenue | None, position: int) -> bool:
    """Whether the order goes out with its protective stop as one bracket: a LIVE strategy entry
    carrying a stop, opening a position from flat, on a venue with brackets. From flat only: the
    bracket's stop has the entry's quantity, which is the position only when the entry opens it (a
    reversal's stop is placed for the position it leaves, once its fill is known)."""
    return (
        plan.mode == LIVE
        and plan.protective_stop is not None
        and plan.origin == risk.IntentOrigin.STRATEGY
        and plan.order_type != Order.Type.STOP
        and position == 0
        and bool(getattr(venue, "brackets", False))
    )


def _bracket_stop_intent(plan: OrderPlan, context: risk.RiskContext) -> tuple[risk.OrderIntent, risk.RiskContext]:
    """The bracket's stop as risk sees it: a PROTECTIVE STOP against the position the entry opens
    (the stop works only once the entry has filled), with the entry counted among the orders just
    sent (the burst limit, the duplicate window)."""
    signed = plan.quantity if plan.side == Order.Side.BUY else -plan.quantity
    after = context.position + signed
    side = stops.protective_side(after)
    entry = risk.RecentIntent(
        instrument=plan.instrument,
        side=risk.Side(plan.side),
        quantity=plan.quantity,
        order_type=risk.OrderType(plan.order_type),
        limit_price=plan.limit_price,
        stop_price=plan.stop_price,
        at=plan.now,
    )
    filled = replace(
        context,
        position=after,
        recent_order_times=[*context.recent_order_times, plan.now],
        recent_intents=[*context.recent_intents, entry],
    )
    intent = risk.OrderIntent.create(
        bot_id=plan.bot_id,
        account=plan.account,
        instrument=plan.instrument,
        side=risk.Side(side),
        quantity=plan.quantity,
        order_type=risk.OrderType.STOP,
        position=after,
        stop_price=plan.protective_stop,
        origin=risk.IntentOrigin.PROTECTIVE,
    )
    return intent, filled


STOP_CHECK_PREFIX = "protective_stop."


def _with_stop(entry: risk.RiskVerdict, stop: risk.RiskVerdict) -> risk.RiskVerdict:
    """One verdict for a bracket: the entry's checks, then its stop's (named `protective_stop.<check>`);
    allowed only if both are: an entry whose stop would be refused is not sent naked."""
    renamed = tuple(replace(c, name=STOP_CHECK_PREFIX + c.name) for c in stop.checks)
    return risk.RiskVerdict(entry.allowed and stop.allowed, entry.checks + renamed)


def order_submit(
    plan: OrderPlan,
    *,
    killed: Callable[[], bool],
    venue: OrderVenue | None = None,
) -> Submission:
    """Risk, then the order row, then the venue. `killed()` reads the bot's kill latch from
    PostgreSQL and locks the bot row FOR SHARE until the transaction ends. `venue` is the broker
    client for LIVE (None for SIM). A LIVE entry from flat with a protective stop, on a venue with
    brackets, goes out with its stop (see the module docstring): both rows, one command."""
    coid = client_order_id_for(bot_id=plan.bot_id, bar_ts=plan.bar_ts, leg=plan.leg)
    existing = Order.objects.filter(client_order_id=coid).first()
    if existing is not None:
        # The same intent again (a redelivered tick): finish what it started, send nothing.
        held = existing.bracket_stops.first()
        return _replace_stops(Submission(order=existing, created=False, bracket_stop=held), plan, venue=venue)
    if plan.mode == LIVE and venue is None:
        raise ValueError("a LIVE order needs its broker client")
    pol = policy()
    halted = False
    stop: Order | None = None
    # durable: the order row must be COMMITTED before anything is sent, so this may not run inside
    # a caller's transaction (a rollback after a send would leave an order at the venue, no row).
    with transaction.atomic(durable=True):
        account = _account_row(plan.venue, plan.account)
        context = _context(plan, killed=killed(), account=account, pol=pol)
        kill_all = kill_switch.kill_all_state_for_send()  # K1: the global latch, read like the bot's
        context = replace(context, global_kill=kill_all.describe() if kill_all.engaged else None)
        intent = risk.OrderIntent.create(
            bot_id=plan.bot_id,
            account=plan.account,
            instrument=plan.instrument,
            side=risk.Side(plan.side),
            quantity=plan.quantity,
            order_type=risk.OrderType(plan.order_type),
            position=context.position,
            limit_price=plan.limit_price,
            stop_price=plan.stop_price,
            origin=risk.IntentOrigin(plan.origin),
        )
        verdict = risk.check(intent, context, pol)
        bracket = _bracketed(plan, venue, context.position)
        if bracket:
            stop_intent, filled = _bracket_stop_intent(plan, context)
            verdict = _with_stop(verdict, risk.check(stop_intent, filled, pol))
        failed = next((c for c in verdict.checks if not c.passed and c.reason_code), None)
        detail = ""
        if failed is not None:
            detail = failed.detail
            if failed.name.startswith(STOP_CHECK_PREFIX):
                detail = f"its protective stop would be refused ({failed.name[len(STOP_CHECK_PREFIX) :]}): {detail}"
        order = Order.objects.create(
            client_order_id=coid,
            bot_id=plan.bot_id,
            generation=plan.generation,
            mode=plan.mode,
            venue=plan.venue,
            account=plan.account,
            instrument=plan.instrument,
            contract=plan.contract,
            side=plan.side,
            quantity=plan.quantity,
            order_type=plan.order_type,
            limit_price=plan.limit_price,
            stop_price=plan.stop_price,
            reduce_only=intent.reduces_position,
            protective_stop=plan.protective_stop,
            status=Order.Status.PENDING_SUBMIT if verdict.allowed else Order.Status.REJECTED_RISK,
            reference_price=plan.reference_price,
            bar_ts=plan.bar_ts,
            reason_code=failed.reason_code if failed else "",
            detail=detail,
            trace_id=plan.trace_id,
            placed_at=plan.now,
            closed_at=None if verdict.allowed else plan.now,
        )
        if bracket and verdict.allowed:
            stop = _bracket_stop_row(plan, order)
        if not verdict.allowed:
            audit_record(
                action="order.rejected_risk",
                actor_label="system:risk",
                target_type="bots.bot",
                target_id=str(plan.bot_id),
                after={"client_order_id": coid, "reason_code": order.reason_code, "detail": order.detail},
            )
            halted = _halt_if_repeated(plan, pol)
    if not verdict.allowed:
        return Submission(order=order, created=True, verdict=verdict, halted=halted)
    if plan.mode == SIM:
        Order.objects.filter(pk=order.pk, status=Order.Status.PENDING_SUBMIT).update(
            status=Order.Status.WORKING, submitted_at=plan.now
        )
    else:
        _send(order, killed=killed, venue=venue, stop=stop)  # type: ignore[arg-type]
    order.refresh_from_db()
    if stop is not None:
        stop.refresh_from_db()
    return _replace_stops(Submission(order=order, created=True, verdict=verdict, bracket_stop=stop), plan, venue=venue)


def _bracket_stop_row(plan: OrderPlan, entry: Order) -> Order:
    """The bracket's stop row, written with its entry before the send: the entry's first stop
    (sequence 0), with the client order id and working-from apps/trading/stops.py gives it, so that
    protection_sync finds it as the position's stop instead of placing another."""
    working_from = stops.stop_working_from(entry_bar_ts=entry.bar_ts, tick_bar_ts=plan.bar_ts, sequence=0)
    leg = stops.stop_leg(entry_id=entry.pk, quantity=entry.quantity, sequence=0)
    signed = entry.quantity if entry.side == Order.Side.BUY else -entry.quantity
    return Order.objects.create(
        client_order_id=client_order_id_for(bot_id=plan.bot_id, bar_ts=working_from, leg=leg),
        bot_id=plan.bot_id,
        generation=plan.generation,
        mode=plan.mode,
        venue=plan.venue,
        account=plan.account,
        instrument=plan.instrument,
        contract=plan.contract,
        side=stops.protective_side(signed),
        quantity=entry.quantity,
        order_type=Order.Type.STOP,
        stop_price=entry.protective_stop,
        reduce_only=True,
        bracket_entry=entry,
        status=Order.Status.PENDING_SUBMIT,
        reference_price=plan.reference_price,
        bar_ts=working_from,
        trace_id=plan.trace_id,
        placed_at=plan.now,
    )


# The venue has the order: it is working, or it has filled.
_ACCEPTED = (Order.Status.WORKING, Order.Status.PARTIALLY_FILLED, Order.Status.FILLED)


def _replace_stops(submission: Submission, plan: OrderPlan, *, venue: OrderVenue | None) -> Submission:
    """Once the venue has accepted an order that replaces the position's stops, cancel them. An
    order refused (by risk or the venue) leaves them working; so does one whose outcome is UNKNOWN
    (the position it protects may still be the one there is: reconcile settles it first)."""
    if not plan.replaces or submission.order.status not in _ACCEPTED:
        return submission
    reason = f"replaced by {submission.order.client_order_id} ({submission.order.side} {submission.order.quantity})"
    for stop in _replaced_stops(plan):
        if order_cancel(stop, venue=venue, reason=reason):
            submission.replaced.append(stop.client_order_id)
        else:
            submission.not_replaced.append(stop.client_order_id)
    return submission


def _request(order: Order) -> OrderRequest:
    return OrderRequest(
        client_order_id=order.client_order_id,
        account=order.account,
        symbol=order.contract,
        side=order.side,
        quantity=order.quantity,
        order_type=order.order_type,
        limit_price=order.limit_price,
        stop_price=order.stop_price,
    )


def _send(order: Order, *, killed: Callable[[], bool], venue: OrderVenue, stop: Order | None = None) -> None:
    """Send the order (with `stop`, as one bracket) and record the venue's answer on its row(s).
    Only rows still PENDING_SUBMIT move: a reconcile that settled them meanwhile wins."""
    rows = [order] if stop is None else [order, stop]

    def close(status: str, reason_code: str, detail: str, **fields: Any) -> None:
        for row in rows:
            said = detail if row is order or not detail else f"its bracket with {order.client_order_id}: {detail}"
            Order.objects.filter(pk=row.pk, status=Order.Status.PENDING_SUBMIT).update(
                status=status, reason_code=reason_code, detail=said[:2000], **fields
            )

    with transaction.atomic(durable=True):
        if killed():  # the latch moved between risk and send: nothing leaves
            close(Order.Status.CANCELLED, "RISK_KILLED", "the bot was killed before the order was sent")
            return
        kill_all = kill_switch.kill_all_state_for_send()
        if kill_all.engaged:
            close(Order.Status.CANCELLED, "RISK_KILLED", f"not sent: {kill_all.describe()}")
            return
        now = timezone.now()
        try:
            if stop is None:
                placed: Any = venue.place_order(_request(order))
            else:
                placed = venue.place_bracket(_request(order), _request(stop))
        except OrderRejected as exc:
            close(Order.Status.REJECTED, exc.error_code, exc.message, closed_at=now)
        except OrderOutcomeUnknown as exc:
            close(Order.Status.UNKNOWN, exc.error_code, exc.message, submitted_at=now)
        except IntegrationError as exc:  # refused before anything left: not sent
            close(Order.Status.REJECTED, exc.error_code, f"not sent: {exc.message}", closed_at=now)
        else:
            if isinstance(placed, PlacedBracket):  # the stop is held by the venue until the entry fills
                answers = [(order, Order.Status.WORKING, placed.entry_broker_order_id)]
                answers.append((stop, Order.Status.HELD, placed.stop_broker_order_id))  # type: ignore[arg-type]
            else:
                answers = [(order, Order.Status.WORKING, placed.broker_order_id)]
            for row, status, broker_id in answers:
                Order.objects.filter(pk=row.pk, status=Order.Status.PENDING_SUBMIT).update(
                    status=status, reason_code="", detail="", venue_order_id=broker_id, submitted_at=now
                )


@dataclass
class SettleReport:
    filled: list[Order] = field(default_factory=list)
    still_working: int = 0


def sim_working_since(*, bot_id: int, instrument: str) -> datetime | None:
    """The time the oldest working SIM order of the bot works from (its bar_ts), or None when none
    is working: a settle must see every bar from then on."""
    return (
        Order.objects.filter(bot_id=bot_id, instrument=instrument, mode=SIM, status=Order.Status.WORKING)
        .order_by("bar_ts")
        .values_list("bar_ts", flat=True)
        .first()
    )


def sim_settle(
    *, bot_id: int, instrument: str, bars: Sequence[MarketBar], timeframe_seconds: int, model: FillModel | None = None
) -> SettleReport:
    """Fill the bot's working SIM orders on the real bars that followed their decisions. An order
    works from its `bar_ts` (decided at the close of bar N: eligible on bars opening at or after
    that close) and fills on the first bar that reaches it (apps.trading.fills.first_fill); `bars`
    must reach back to the oldest working order's bar_ts (sim_working_since), or the bars it missed
    are never tried. Fills are applied in the order they happened (bar time, then order age)."""
    spec = instruments.get(instrument)
    if spec is None:
        raise ValueError(f"unknown instrument {instrument}")
    model = model or sim_fill_model()
    report = SettleReport()
    working_filter = {"bot_id": bot_id, "instrument": instrument, "mode": SIM, "status": Order.Status.WORKING}
    if not Order.objects.filter(**working_filter).exists():
        return report  # nothing to fill: no transaction, no lock (most ticks)
    with transaction.atomic():
        working = list(Order.objects.select_for_update().filter(**working_filter).order_by("created_at", "id"))
        found = []
        for age, order in enumerate(working):
            hit = first_fill(
                side=order.side,
                quantity=order.quantity,
                order_type=order.order_type,
                working_from=order.bar_ts,
                bars=bars,
                tick_size=spec.tick_size,
                point_value=spec.point_value,
                limit_price=order.limit_price,
                stop_price=order.stop_price,
                model=model,
            )
            if hit is None:
                report.still_working += 1
            else:
                found.append((hit[0].ts, age, order, hit[1]))
        for at, _, order, fill in sorted(found, key=lambda f: (f[0], f[1])):
            fill_apply(
                order,
                venue_fill_id=f"sim-{int(at.timestamp())}",
                quantity=order.quantity,
                price=fill.price,
                fee=fill.fee,
                slippage=fill.slippage,
                filled_at=at,
                point_value=spec.point_value,
            )
            report.filled.append(order)
    return report


def sim_fill_model() -> FillModel:
    return FillModel(
        slippage_ticks=settings.TRADING_SIM_SLIPPAGE_TICKS,
        commission_per_contract=Decimal(str(settings.TRADING_SIM_COMMISSION_PER_CONTRACT)),
    )


def fill_apply(
    order: Order,
    *,
    venue_fill_id: str,
    quantity: int,
    price: Decimal,
    fee: Decimal,
    slippage: Decimal,
    filled_at: datetime,
    point_value: Decimal,
) -> Fill | None:
    """Apply one fill once (unique per order and venue fill id): the order's filled quantity and
    average, and the bot's position with its realized PnL and fees. Call inside a transaction."""
    if Fill.objects.filter(order=order, venue_fill_id=venue_fill_id).exists():
        return None
    position, _ = Position.objects.select_for_update().get_or_create(
        bot_id=order.bot_id,
        instrument=order.instrument,
        defaults={"venue": order.venue, "account": order.account},
    )
    before = PositionState(position.quantity, position.avg_price, position.realized_pnl)
    after = apply_fill(before, side=order.side, quantity=quantity, price=price, point_value=point_value)
    fill = Fill.objects.create(
        order=order,
        bot_id=order.bot_id,
        instrument=order.instrument,
        venue_fill_id=venue_fill_id,
        side=order.side,
        quantity=quantity,
        price=price,
        fee=fee,
        slippage=slippage,
        realized_pnl=after.realized_pnl - before.realized_pnl,
        filled_at=filled_at,
    )
    position.quantity, position.avg_price = after.quantity, after.avg_price
    position.realized_pnl, position.fees = after.realized_pnl, position.fees + fee
    position.save(update_fields=["quantity", "avg_price", "realized_pnl", "fees", "updated_at"])
    filled = order.filled_quantity + quantity
    total = (order.avg_fill_price or Decimal(0)) * order.filled_quantity + price * quantity
    order.filled_quantity, order.avg_fill_price = filled, total / filled
    order.status = Order.Status.FILLED if filled >= order.quantity else Order.Status.PARTIALLY_FILLED
    if order.status == Order.Status.FILLED:
        order.closed_at = timezone.now()
    order.save(update_fields=["filled_quantity", "avg_fill_price", "status", "closed_at", "updated_at"])
    return fill


def open_orders(*, bot_id: int) -> list[Order]:
    return list(Order.objects.filter(bot_id=bot_id, status__in=Order.OPEN_STATUSES).order_by("created_at"))


def orders_cancel_for_kill(*, bot_id: int, reason: str, venue: OrderVenue | None = None) -> dict[str, int]:
    """K1: cancel every open order of a killed bot. A SIM order is cancelled in the ledger (the
    ledger is its venue). A LIVE order with a broker id gets a cancel at the broker and keeps its
    status until the broker's answer is reconciled (it may have filled first). A LIVE order without
    a broker id (a send that died, or UNKNOWN) is left for reconcile: cancelling in the ledger what
    may be working at the broker would be a lie. Counts by outcome."""
    counts: dict[str, int] = defaultdict(int)
    now = timezone.now()
    for order in open_orders(bot_id=bot_id):
        if order.mode == SIM:
            moved = Order.objects.filter(pk=order.pk, status=order.status).update(
                status=Order.Status.CANCELLED, reason_code="BOT_KILLED", detail=reason[:2000], closed_at=now
            )
            counts["cancelled" if moved else "changed_meanwhile"] += 1
        elif order.venue_order_id and venue is not None:
            try:
                venue.cancel_order(account=order.account, broker_order_id=order.venue_order_id)
            except IntegrationError as exc:
                logger.warning("cancel of %s failed: %s", order.client_order_id, exc.message)
                counts["cancel_failed"] += 1
            else:
                Order.objects.filter(pk=order.pk).update(reason_code="CANCEL_REQUESTED", detail=reason[:2000])
                counts["cancel_requested"] += 1
        else:
            counts["left_for_reconcile"] += 1
    return dict(counts)


# -- protective stops --------------------------------------------------------------------------
# An entry carries the stop its decision wanted (Order.protective_stop). Once the entry has filled,
# the position is protected by one working STOP order on the other side for its whole size; the
# tick keeps that true (protection_sync, the rules in apps/trading/stops.py). A reversal or an exit
# replaces the stop (OrderPlan.replaces): the stop stays working until the venue has accepted the
# order that replaces it. A STOP order goes through risk like any order, as origin PROTECTIVE: it
# reduces, so REDUCING allows it; its price is not collared, and max_orders_per_day does not refuse
# it (refusing a protective stop would leave the position naked).
# LIVE, the stop comes with its entry where the venue has brackets (HELD until reconcile sees the
# entry's fill and the stop working); elsewhere it is placed by the first protection_sync after the
# fill is known, which is the reconcile that applies it (the `protect` hook of reconcile_bot).


def working_stops(*, bot_id: int, instrument: str) -> list[Order]:
    """The bot's open STOP orders in the instrument, oldest first (HELD bracket stops included)."""
    return list(
        Order.objects.filter(
            bot_id=bot_id, instrument=instrument, order_type=Order.Type.STOP, status__in=Order.OPEN_STATUSES
        )
        .select_related("bracket_entry")
        .order_by("created_at", "id")
    )


def attached_to_entry(stop: Order) -> bool:
    """A bracket's stop that belongs to its entry rather than to the position (yet): HELD (the venue
    holds it until the entry fills), or sent with an entry that is still open (its outcome not yet
    settled). protection_sync leaves it alone and places no other stop while it is there."""
    if stop.status == Order.Status.HELD:
        return True
    entry = stop.bracket_entry
    return entry is not None and entry.status in Order.OPEN_STATUSES


def order_cancel(order: Order, *, venue: OrderVenue | None, reason: str) -> bool:
    """Cancel one open order. SIM: in the ledger. LIVE: at the broker; on its acknowledgement the
    order is CANCELLED here (a fill that raced the cancel is caught by reconcile's position check).
    An order the broker cannot be asked about (no broker id) is not cancelled: False."""
    now = timezone.now()
    if order.mode == SIM:
        return bool(
            Order.objects.filter(pk=order.pk, status__in=Order.OPEN_STATUSES).update(
                status=Order.Status.CANCELLED, reason_code="CANCELLED", detail=reason[:2000], closed_at=now
            )
        )
    if not order.venue_order_id or venue is None:
        return False
    try:
        venue.cancel_order(account=order.account, broker_order_id=order.venue_order_id)
    except IntegrationError as exc:
        logger.warning("cancel of %s failed: %s", order.client_order_id, exc.message)
        return False
    return bool(
        Order.objects.filter(pk=order.pk, status__in=Order.OPEN_STATUSES).update(
            status=Order.Status.CANCELLED, reason_code="CANCELLED", detail=reason[:2000], closed_at=now
        )
    )


def cancellable(order: Order, *, venue: OrderVenue | None) -> bool:
    """Whether order_cancel can cancel it: always in SIM; in LIVE only with a broker id and a client."""
    return order.mode == SIM or bool(order.venue_order_id and venue is not None)


def protection_replaceable(*, bot_id: int, instrument: str, venue: OrderVenue | None) -> tuple[list[str], list[str]]:
    """(the working stops an order that changes the position would replace, the ones among them
    that could not be cancelled once it is accepted: a LIVE stop without a broker id)."""
    found = working_stops(bot_id=bot_id, instrument=instrument)
    return (
        [o.client_order_id for o in found],
        [o.client_order_id for o in found if not cancellable(o, venue=venue)],
    )


def _protecting_entry(*, bot_id: int, instrument: str, position: int) -> Order | None:
    """The newest filled entry on the position's side that carried a stop: it opened the position."""
    return (
        Order.objects.filter(
            bot_id=bot_id, instrument=instrument, side="BUY" if position > 0 else "SELL",
            status=Order.Status.FILLED, protective_stop__isnull=False,
        )
        .order_by("-closed_at", "-id")
        .first()
    )  # fmt: skip


def protection_sync(plan: OrderPlan, *, killed: Callable[[], bool], venue: OrderVenue | None) -> dict[str, Any]:
    """Make the position's protection match it (apps/trading/stops.py decides, this does it): no
    stop when flat; otherwise exactly one working STOP for the whole position, at the stop of the
    entry that opened it, placed again under a fresh id when it is missing. `plan` carries the bot,
    venue, instrument, clock and reference price; side, quantity, leg and time are set here.
    A bracket's stop still attached to its entry (attached_to_entry) is left alone and counts as in
    flight, so no second stop is placed beside it. Answers what it found and did, for the trace:
    `stop` (the protecting stop's id), `placed`, `cancelled`, `waiting_for`, `held` (bracket stops
    still attached), and `unprotected` with the reason when the position has no stop."""
    held = position_state(bot_id=plan.bot_id, instrument=plan.instrument).quantity
    found = working_stops(bot_id=plan.bot_id, instrument=plan.instrument)
    # A bracket's stop still attached to its entry is not the plan's to keep or cancel: it counts as
    # an order about to change the protection (no other stop is placed while it is there).
    attached = [o.client_order_id for o in found if attached_to_entry(o)]
    found = [o for o in found if o.client_order_id not in attached]
    in_flight = (
        list(
            Order.objects.filter(bot_id=plan.bot_id, instrument=plan.instrument, status__in=Order.OPEN_STATUSES)
            .exclude(order_type=Order.Type.STOP)
            .order_by("created_at", "id")
            .values_list("client_order_id", flat=True)
        )
        + attached
    )
    entry = _protecting_entry(bot_id=plan.bot_id, instrument=plan.instrument, position=held) if held else None
    decided = stops.protection_plan(
        position=held,
        stop_price=entry.protective_stop if entry else None,
        stops=[
            stops.WorkingStop(o.client_order_id, o.side, o.quantity - o.filled_quantity, o.stop_price) for o in found
        ],
        in_flight=in_flight,
    )
    by_ref = {o.client_order_id: o for o in found}
    result: dict[str, Any] = {"position": held, "stop": decided.keep, "cancelled": []}
    if attached:
        result["held"] = attached  # sent with their entries as brackets: they protect what those open
        if held and decided.keep is None:
            result["stop"] = attached[0]
    stuck = []
    for ref in decided.cancel:
        if order_cancel(by_ref[ref], venue=venue, reason="the position changed: this stop no longer fits it"):
            result["cancelled"].append(ref)
        else:
            stuck.append(ref)
    if stuck:
        result["not_cancelled"] = stuck
    if decided.waiting_for:
        result["waiting_for"] = list(decided.waiting_for)
    if decided.unprotected:
        result["unprotected"] = decided.unprotected
    wanted = decided.place
    if wanted is None or entry is None:
        return result
    if stuck:  # another stop beside one that could not be cancelled could over-close the position
        result["unprotected"] = f"stop(s) {', '.join(stuck)} that no longer fit could not be cancelled"
        return result
    sequence = Order.objects.filter(
        bot_id=plan.bot_id, instrument=plan.instrument, order_type=Order.Type.STOP, pk__gt=entry.pk
    ).count()
    placed = order_submit(
        replace(
            plan,
            bar_ts=stops.stop_working_from(entry_bar_ts=entry.bar_ts, tick_bar_ts=plan.bar_ts, sequence=sequence),
            leg=stops.stop_leg(entry_id=entry.pk, quantity=wanted.quantity, sequence=sequence),
            side=wanted.side,
            quantity=wanted.quantity,
            order_type=Order.Type.STOP,
            stop_price=wanted.stop_price,
            limit_price=None,
            protective_stop=None,
            origin=risk.IntentOrigin.PROTECTIVE,
            replaces=(),
        ),
        killed=killed,
        venue=venue,
    )
    order = placed.order
    result |= {"stop": order.client_order_id, "status": order.status, "placed": placed.created}
    if order.status not in Order.OPEN_STATUSES:
        result["stop"] = None
        result["unprotected"] = f"the stop {order.client_order_id} was refused: {order.reason_code} {order.detail}"
        logger.warning("bot %s: position %s has no stop: %s", plan.bot_id, held, result["unprotected"])
    return result
