"""Reconcile: a bot's internal orders and position against its venue (SPEC §3, RELIABILITY J3, J10).

SIM: the fills are the venue's record. A SIM order the risk engine approved whose status flip was
lost (PENDING_SUBMIT) is working; an order's filled quantity must equal its fills; the position
must equal its fills replayed (a position that does not is rebuilt from them, and said so).

LIVE: each open order is looked up at the broker by its client order id:
- found: its status and fills are taken from the broker (missed fills applied once);
- the broker answers it has no such order, and it never got a broker id (PENDING_SUBMIT after a
  crash, UNKNOWN after a timeout): it may still be on its way (J3: a reconcile racing a send). It is
  closed as never received (REJECTED NOT_AT_BROKER) only when it is older than the in-flight window
  (TRADING_INFLIGHT_WINDOW_SECONDS, from its send, or its creation if it was never sent) AND the
  broker missed it on TRADING_NOT_AT_BROKER_LOOKUPS lookups spaced at least
  TRADING_NOT_AT_BROKER_LOOKUP_SPACING_SECONDS apart (counted on the order row). Until then it stays
  open and the report is PENDING; if the broker lists it later, its state is applied.
- one that had a broker id and vanished cannot be settled;
- the broker cannot say (Ironbeam keeps no client id, a failed call): cannot be settled.
A bracket's stop (sent with its entry as one OSO: Order.bracket_entry) is settled after the other
orders, once its entry's state is known: looked up by its client order id or the broker id the OSO
answer gave; while the entry is open it stays HELD (the venue holds it; a cancel or a rejection is
taken); once the entry has filled it takes the broker's state (WORKING: it now protects the
position; FILLED: its fills close the position as any stop's do); an entry that ended without a
fill ends it too. An entry that filled while the broker has no such stop cannot be settled (the
position may be without its stop).
Then the broker's position in the bot's contract is compared with the internal positions of every
bot trading that account and instrument (a difference that orders still in flight would explain
is PENDING, not a mismatch), and the broker's working orders that are not ours are flagged.
A positions call that fails is never taken as flat: the reconcile FAILS and says so.
When broker fills were applied (and the reconcile neither failed nor found a mismatch), the
caller's `protect` runs at once: the position's protective stop is placed now that the fill is
known (a venue without brackets), instead of a tick later.
What cannot be settled halts the bot (RECONCILE_MISMATCH); a failed reconcile of a running LIVE bot
halts it too (RECONCILE_FAILED; the caller says whether it is running). Each halt is audited with an
alert-level row (action `alert.raised`, severity CRITICAL). The report is kept either way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from apps.core.audit import audit_record
from apps.core.context import get_trace_id
from apps.core.exceptions import ApplicationError
from apps.integrations.errors import IntegrationError
from apps.integrations.orders import CANCELLED, FILLED, REJECTED, WORKING, OrderOutcomeUnknown, OrderVenue
from apps.market import instruments
from apps.trading.fills import PositionState, apply_fill
from apps.trading.models import Fill, Order, Position, ReconcileReport, TradingState
from apps.trading.services import SIM, fill_apply, trading_state_set

logger = logging.getLogger("tradeops.reconcile")


@dataclass
class _Diff:
    matched: list[str] = field(default_factory=list)
    fixed: list[dict[str, Any]] = field(default_factory=list)
    unsettled: list[dict[str, Any]] = field(default_factory=list)
    pending: list[dict[str, Any]] = field(default_factory=list)
    # Signed quantities of the orders still in flight (BUY > 0), by order: they may land any moment.
    in_flight: dict[str, int] = field(default_factory=dict)
    fills_applied: int = 0  # contracts of broker fills applied by this reconcile


def _replayed_position(bot_id: int, instrument: str, point_value: Decimal) -> PositionState:
    state = PositionState(0, None, Decimal(0))
    for fill in Fill.objects.filter(bot_id=bot_id, instrument=instrument).order_by("filled_at", "id"):
        state = apply_fill(state, side=fill.side, quantity=fill.quantity, price=fill.price, point_value=point_value)
    return state


def _reconcile_sim(bot_id: int, instrument: str, diff: _Diff) -> None:
    spec = instruments.get(instrument)
    assert spec is not None
    for order in Order.objects.filter(bot_id=bot_id, mode=SIM, status=Order.Status.PENDING_SUBMIT):
        Order.objects.filter(pk=order.pk, status=Order.Status.PENDING_SUBMIT).update(status=Order.Status.WORKING)
        diff.fixed.append({"order": order.client_order_id, "was": "PENDING_SUBMIT", "now": "WORKING"})
    filled = {
        row["order_id"]: row["qty"]
        for row in Fill.objects.filter(bot_id=bot_id).values("order_id").annotate(qty=Sum("quantity"))
    }
    for order in Order.objects.filter(bot_id=bot_id, mode=SIM).exclude(status=Order.Status.REJECTED_RISK):
        if order.filled_quantity != filled.get(order.pk, 0):
            fills_sum = filled.get(order.pk, 0)
            diff.unsettled.append(
                {
                    "order": order.client_order_id,
                    "problem": f"filled_quantity {order.filled_quantity} but its fills sum to {fills_sum}",
                }
            )
    replayed = _replayed_position(bot_id, instrument, spec.point_value)
    row = Position.objects.filter(bot_id=bot_id, instrument=instrument).first()
    held = row.quantity if row else 0
    if held != replayed.quantity:
        Position.objects.filter(bot_id=bot_id, instrument=instrument).update(
            quantity=replayed.quantity, avg_price=replayed.avg_price, realized_pnl=replayed.realized_pnl
        )
        diff.fixed.append({"position": instrument, "was": held, "now": replayed.quantity, "from": "its fills"})
    else:
        diff.matched.append(f"position {instrument} {held:+d}")


def _apply_broker_order(order: Order, found: Any, point_value: Decimal, diff: _Diff) -> None:
    """Take the broker's status and fills for one of our orders."""
    changes: dict[str, Any] = {}
    if found.broker_order_id and order.venue_order_id != found.broker_order_id:
        changes["venue_order_id"] = found.broker_order_id
    applied = 0
    known = order.filled_quantity
    with transaction.atomic():
        fills = list(found.fills)
        for fill in fills:
            if fill_apply(
                order,
                venue_fill_id=fill.fill_id,
                quantity=fill.quantity,
                price=fill.price,
                fee=Decimal(0),
                slippage=Decimal(0),
                filled_at=fill.at,
                point_value=point_value,
            ):
                applied += fill.quantity
        if not fills and found.filled_quantity > known and found.avg_fill_price is not None:
            # The broker reports only a cumulative fill: apply the part we have not seen, once.
            missing = found.filled_quantity - known
            fill_apply(
                order,
                venue_fill_id=f"{found.broker_order_id}-cum-{found.filled_quantity}",
                quantity=missing,
                price=found.avg_fill_price,
                fee=Decimal(0),
                slippage=Decimal(0),
                filled_at=timezone.now(),
                point_value=point_value,
            )
            applied += missing
        order.refresh_from_db()
        status = {FILLED: Order.Status.FILLED, CANCELLED: Order.Status.CANCELLED, REJECTED: Order.Status.REJECTED}.get(
            found.status, Order.Status.PARTIALLY_FILLED if order.filled_quantity else Order.Status.WORKING
        )
        if status != order.status:
            changes["status"] = status
            if status in (Order.Status.FILLED, Order.Status.CANCELLED, Order.Status.REJECTED):
                changes["closed_at"] = timezone.now()
        if changes:
            Order.objects.filter(pk=order.pk).update(**changes)
    diff.fills_applied += applied
    if changes or applied:
        diff.fixed.append(
            {
                "order": order.client_order_id,
                "status": changes.get("status", order.status),
                "fills_applied": applied,
                "broker_order_id": found.broker_order_id,
            }
        )
    else:
        diff.matched.append(f"order {order.client_order_id} {order.status}")


def _not_at_broker(order: Order, provider: str, diff: _Diff) -> None:
    """The broker has no order with our id, and we never had its id (J3). Count the miss (if it is
    spaced from the last one that counted); close the order as never received only when it is past
    the in-flight window and missed often enough; otherwise leave it open, said so."""
    now = timezone.now()
    window = float(settings.TRADING_INFLIGHT_WINDOW_SECONDS)
    lookups = max(int(settings.TRADING_NOT_AT_BROKER_LOOKUPS), 1)
    spacing = float(settings.TRADING_NOT_AT_BROKER_LOOKUP_SPACING_SECONDS)
    last = order.last_broker_miss_at
    counts = last is None or (now - last).total_seconds() >= spacing
    misses = order.broker_misses + (1 if counts else 0)
    age = (now - (order.submitted_at or order.created_at)).total_seconds()
    # Conditional on the status and on no broker id: a send that has just been answered wins.
    still = Order.objects.filter(pk=order.pk, status=order.status, venue_order_id="")
    if age >= window and misses >= lookups:
        moved = still.update(
            status=Order.Status.REJECTED,
            reason_code="NOT_AT_BROKER",
            detail=(
                f"{provider} has no order {order.client_order_id}: it never reached the broker (not found on "
                f"{misses} lookups, the last {age:.0f}s after it was sent)"
            ),
            broker_misses=misses,
            last_broker_miss_at=now,
            closed_at=now,
        )
        if moved:
            diff.fixed.append({"order": order.client_order_id, "was": order.status, "now": "REJECTED (never sent)"})
            audit_record(  # J3: a closed in-flight order is worth an operator's look
                action="alert.raised",
                actor_label="system:reconcile",
                target_type="bots.bot",
                target_id=str(order.bot_id),
                after={
                    "severity": "WARNING",
                    "code": "NOT_AT_BROKER",
                    "bot_id": order.bot_id,
                    "message": f"Order {order.client_order_id} ({order.side} {order.quantity} {order.instrument}) "
                    f"never reached {provider}: closed as REJECTED after {misses} lookups over {age:.0f}s.",
                    "suggested_fix": f"Nothing is working at {provider} for it and it is never resent. If you "
                    "expected a position, check the broker's order history, then reconcile the bot.",
                },
            )
            return
    elif counts:
        still.update(broker_misses=misses, last_broker_miss_at=now)
    order.refresh_from_db()
    if order.status not in Order.OPEN_STATUSES or order.venue_order_id:
        diff.matched.append(f"order {order.client_order_id} {order.status} (settled by its send meanwhile)")
        return
    if age < window:
        why = (
            f"{provider} does not list it yet; it was sent {age:.0f}s ago and an order is in flight for "
            f"{window:.0f}s: the next reconcile looks again"
        )
    else:
        why = (
            f"{provider} does not list it; missed on {misses} of the {lookups} lookups (at least {spacing:.0f}s "
            "apart) needed to close it as never received: the next reconcile looks again"
        )
    diff.pending.append(
        {"order": order.client_order_id, "status": order.status, "age_seconds": round(age, 1), "misses": misses,
         "problem": why}
    )  # fmt: skip
    open_quantity = order.quantity - order.filled_quantity
    diff.in_flight[order.client_order_id] = open_quantity if order.side == Order.Side.BUY else -open_quantity


def _reconcile_bracket_stop(stop: Order, venue: OrderVenue, account: str, point_value: Decimal, diff: _Diff) -> None:
    """A bracket's stop, after its entry has been reconciled (see the module docstring)."""
    entry = stop.bracket_entry
    assert entry is not None
    entry.refresh_from_db()
    try:
        if stop.venue_order_id:
            found = venue.find_order(
                account=account,
                client_order_id=stop.client_order_id,
                broker_order_id=stop.venue_order_id,  # type: ignore[call-arg]
            )
        else:
            found = venue.find_order(account=account, client_order_id=stop.client_order_id)
    except OrderOutcomeUnknown as exc:
        diff.unsettled.append({"order": stop.client_order_id, "problem": exc.message, **exc.extra})
        return
    entry_open = entry.status in Order.OPEN_STATUSES
    if found is not None:
        if entry_open and found.status == WORKING and not found.fills:
            # Listed before its entry filled (a venue may show a held bracket order): still the entry's.
            changes: dict[str, Any] = {}
            if stop.status != Order.Status.HELD:
                changes["status"] = Order.Status.HELD
            if found.broker_order_id and stop.venue_order_id != found.broker_order_id:
                changes["venue_order_id"] = found.broker_order_id
            if changes and Order.objects.filter(pk=stop.pk, status=stop.status).update(**changes):
                diff.fixed.append({"order": stop.client_order_id, "was": stop.status, "now": "HELD", **changes})
            else:
                diff.matched.append(f"order {stop.client_order_id} HELD (with entry {entry.client_order_id})")
            return
        _apply_broker_order(stop, found, point_value, diff)
        return
    if entry_open:
        diff.matched.append(
            f"order {stop.client_order_id} {stop.status} (held with entry {entry.client_order_id} until it fills)"
        )
        return
    if entry.filled_quantity == 0:
        # The entry ended without a fill (cancelled, refused, never at the broker): the venue never
        # releases its bracket, so the stop ends with it.
        status = Order.Status.REJECTED if entry.status == Order.Status.REJECTED else Order.Status.CANCELLED
        moved = Order.objects.filter(pk=stop.pk, status=stop.status).update(
            status=status,
            reason_code="BRACKET_ENTRY_ENDED",
            detail=f"its entry {entry.client_order_id} ended {entry.status} without a fill: the stop never worked",
            closed_at=timezone.now(),
        )
        if moved:
            diff.fixed.append({"order": stop.client_order_id, "was": stop.status, "now": status})
        return
    diff.unsettled.append(
        {
            "order": stop.client_order_id,
            "problem": f"its entry {entry.client_order_id} filled {entry.filled_quantity}, but {venue.provider} "
            "has no such stop: the position may be without its protective stop",
        }
    )


def _explained_by_in_flight(difference: int, in_flight: dict[str, int]) -> bool:
    """Whether `difference` (broker − internal) could be orders still in flight landing meanwhile."""
    buys = sum(q for q in in_flight.values() if q > 0)
    sells = sum(q for q in in_flight.values() if q < 0)
    return (0 < difference <= buys) or (sells <= difference < 0)


def _reconcile_live(bot_id: int, instrument: str, venue: OrderVenue, account: str, diff: _Diff) -> None:
    spec = instruments.get(instrument)
    assert spec is not None
    ours = {o.client_order_id for o in Order.objects.filter(venue=venue.provider, account=account)}
    ours_broker_ids = set(
        Order.objects.filter(venue=venue.provider, account=account)
        .exclude(venue_order_id="")
        .values_list("venue_order_id", flat=True)
    )
    open_orders = Order.objects.filter(bot_id=bot_id, mode="LIVE", status__in=Order.OPEN_STATUSES).order_by(
        "created_at", "id"
    )
    for order in open_orders.filter(bracket_entry__isnull=True):
        try:
            found = venue.find_order(account=account, client_order_id=order.client_order_id)
        except OrderOutcomeUnknown as exc:
            diff.unsettled.append({"order": order.client_order_id, "problem": exc.message, **exc.extra})
            continue
        if found is not None:
            _apply_broker_order(order, found, spec.point_value, diff)
        elif not order.venue_order_id:
            _not_at_broker(order, venue.provider, diff)
        else:
            diff.unsettled.append(
                {
                    "order": order.client_order_id,
                    "problem": f"{venue.provider} no longer knows broker order {order.venue_order_id}",
                }
            )
    for stop in open_orders.filter(bracket_entry__isnull=False).select_related("bracket_entry"):
        _reconcile_bracket_stop(stop, venue, account, spec.point_value, diff)
    symbol = Order.objects.filter(bot_id=bot_id, mode="LIVE").exclude(contract="").values_list("contract", flat=True)
    contracts = set(symbol)
    for broker_order in venue.list_orders(account=account):
        theirs = broker_order.client_order_id not in ours and broker_order.broker_order_id not in ours_broker_ids
        if theirs and broker_order.status == "WORKING" and (not contracts or broker_order.symbol in contracts):
            diff.unsettled.append(
                {
                    "external_order": broker_order.broker_order_id,
                    "symbol": broker_order.symbol,
                    "side": broker_order.side,
                }
            )
    broker_positions = {p.symbol: p.quantity for p in venue.positions(account=account)}
    internal = (
        Position.objects.filter(venue=venue.provider, account=account, instrument=instrument).aggregate(
            q=Sum("quantity")
        )["q"]
        or 0
    )
    at_broker = sum(q for s, q in broker_positions.items() if not contracts or s in contracts)
    if at_broker != internal and _explained_by_in_flight(at_broker - internal, diff.in_flight):
        diff.pending.append(
            {
                "position": instrument,
                "internal": internal,
                "broker": at_broker,
                "problem": "the difference is what orders still in flight would make: the next reconcile looks again",
            }
        )
    elif at_broker != internal:
        diff.unsettled.append(
            {"position": instrument, "internal": internal, "broker": at_broker, "symbols": sorted(contracts)}
        )
    else:
        diff.matched.append(f"position {instrument} {internal:+d} (all bots on the account)")


RECONCILE_FIX = (
    "Read the reconcile report on the bot's page, settle each difference at the broker (or in the ledger), "
    "reconcile again, then set the trading state back to ACTIVE with a reason."
)
RECONCILE_FAILED_FIX = (
    "Check the broker on the Connections page (Verify), then reconcile the bot from its page. It stays HALTED, "
    "and a LIVE start is refused, until a reconcile succeeds; then set its trading state back to ACTIVE."
)


def _halt(bot_id: int, report: ReconcileReport, *, code: str, reason: str, fix: str) -> None:
    """HALTED (the existing trading-state mechanism, audited) and an alert-level audit row."""
    with transaction.atomic():
        trading_state_set(
            bot_id=bot_id,
            state=TradingState.State.HALTED,
            reason_code=code,
            reason=reason,
            actor_label="system:reconcile",
        )
    audit_record(
        action="alert.raised",
        actor_label="system:reconcile",
        target_type="bots.bot",
        target_id=str(bot_id),
        after={
            "severity": "CRITICAL",
            "code": code,
            "bot_id": bot_id,
            "message": reason,
            "suggested_fix": fix,
            "reconcile_id": report.pk,
        },
        reason=reason,
    )


def reconcile_bot(
    *,
    bot_id: int,
    mode: str,
    venue_name: str,
    account: str,
    instrument: str,
    venue: OrderVenue | None = None,
    trigger: str = "manual",
    actor: Any = None,
    actor_label: str = "",
    halt_on_failure: bool = False,
    protect: Callable[[], dict[str, Any]] | None = None,
) -> ReconcileReport:
    """Reconcile one bot and keep the report. `venue` is the broker client for LIVE (None: SIM).
    `halt_on_failure`: the bot is running LIVE, so a reconcile that cannot read the venue halts it
    (RELIABILITY J10: what cannot be read is never taken as matching). `protect`: keeps the bot's
    position protected (apps.trading.services.protection_sync with the bot's plan); run when broker
    fills were applied and nothing failed or mismatched, its answer kept in the report."""
    diff = _Diff()
    status = ReconcileReport.Status.MATCHED
    failure = ""
    try:
        if mode == SIM or venue is None:
            _reconcile_sim(bot_id, instrument, diff)
        else:
            _reconcile_live(bot_id, instrument, venue, account, diff)
    except IntegrationError as exc:
        status, failure = ReconcileReport.Status.FAILED, f"{exc.error_code}: {exc.message}"
    else:
        if diff.unsettled:
            status = ReconcileReport.Status.MISMATCH
        elif diff.pending:
            status = ReconcileReport.Status.PENDING
        elif diff.fixed:
            status = ReconcileReport.Status.FIXED
    protection: dict[str, Any] | None = None
    settled = status in (ReconcileReport.Status.FIXED, ReconcileReport.Status.PENDING)
    if protect is not None and diff.fills_applied and settled:
        try:
            protection = protect()
        except ApplicationError as exc:
            protection = {"error": f"{exc.error_code}: {exc.message}"}
            logger.warning("bot %s: protection after reconcile failed: %s", bot_id, protection["error"])
    report = ReconcileReport.objects.create(
        bot_id=bot_id,
        venue=venue_name,
        account=account,
        trigger=trigger,
        status=status,
        report={
            "matched": diff.matched,
            "fixed": diff.fixed,
            "pending": diff.pending,
            "unsettled": diff.unsettled,
            "failure": failure,
            **({"protection": protection} if protection is not None else {}),
        },
        actor_label=actor_label or getattr(actor, "username", "") or "system:reconcile",
        trace_id=get_trace_id() or "",
    )
    if status == ReconcileReport.Status.MISMATCH:
        _halt(
            bot_id,
            report,
            code="RECONCILE_MISMATCH",
            reason=f"reconcile {report.pk}: {len(diff.unsettled)} difference(s) it could not settle",
            fix=RECONCILE_FIX,
        )
    elif status == ReconcileReport.Status.FAILED and halt_on_failure:
        _halt(
            bot_id,
            report,
            code="RECONCILE_FAILED",
            reason=f"reconcile {report.pk} could not read {venue_name} while the bot runs LIVE ({failure})",
            fix=RECONCILE_FAILED_FIX,
        )
    audit_record(
        action="bot.reconcile",
        actor=actor,
        actor_label=report.actor_label,
        target_type="bots.bot",
        target_id=str(bot_id),
        after={
            "report": report.pk,
            "status": status,
            "fixed": len(diff.fixed),
            "pending": len(diff.pending),
            "unsettled": len(diff.unsettled),
        },
        reason=failure,
    )
    return report
