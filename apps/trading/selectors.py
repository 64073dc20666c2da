"""Reads of the order/fill/position ledger: a bot's performance variables (SPEC §3 performance), and
what the risk engine reads about an account (worst-case exposure, notional, restricted instruments).

Definitions (each figure is computed from fills, never estimated):
- realized_pnl: PnL realized by closing fills, before fees; fees: commissions of every fill;
  slippage: the fill model's or the venue's cost against the reference price; net = realized − fees.
- trades: closing fills (a fill that reduced or closed a position); win_rate: the share of them
  with realized PnL > 0; expectancy: net PnL per trade (fees of opening fills included).
- max_drawdown: the largest fall of closed equity (cumulative net PnL after each fill) from its
  running peak, as a positive USD amount.
- unrealized_pnl: the open position at the latest stored bar's close (`mark`, with its time).
Unknown is null with a reason, never 0: no trades → win rate and expectancy are null; an open
position without a mark → unrealized is null.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import F, Sum

from apps.market import instruments
from apps.market.models import Bar
from apps.trading.fills import PositionState, unrealized_pnl
from apps.trading.models import Fill, Order, Position, ReconcileReport, RestrictedInstrument


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.01")))


def _summary(fills: list[Fill]) -> dict[str, Any]:
    realized = sum((f.realized_pnl for f in fills), Decimal(0))
    fees = sum((f.fee for f in fills), Decimal(0))
    slippage = sum((f.slippage for f in fills), Decimal(0))
    closing = [f for f in fills if f.realized_pnl != 0]
    net = realized - fees
    peak = equity = drawdown = Decimal(0)
    for f in fills:
        equity += f.realized_pnl - f.fee
        peak = max(peak, equity)
        drawdown = max(drawdown, peak - equity)
    unknown: dict[str, str] = {}
    if not closing:
        unknown["win_rate"] = unknown["expectancy"] = "no closed trades yet"
    return {
        "realized_pnl": _money(realized),
        "fees": _money(fees),
        "slippage": _money(slippage),
        "net_pnl": _money(net),
        "trades": len(closing),
        "fills": len(fills),
        "win_rate": None
        if not closing
        else str((Decimal(sum(f.realized_pnl > 0 for f in closing)) / len(closing)).quantize(Decimal("0.0001"))),
        "expectancy": None if not closing else _money(net / len(closing)),
        "max_drawdown": _money(drawdown),
        "unknown": unknown,
    }


def bot_performance(*, bot_id: int, mark: Decimal | None, mark_at: datetime | None) -> dict[str, Any]:
    """Per CME trade date and in total. `mark` is the latest real price of the bot's instrument
    (None when there is none: unrealized is then null for an open position)."""
    fills = list(Fill.objects.filter(bot_id=bot_id).order_by("filled_at", "id"))
    days: OrderedDict[str, list[Fill]] = OrderedDict()
    for fill in fills:
        days.setdefault(instruments.trade_date(fill.filled_at).isoformat(), []).append(fill)
    total = _summary(fills)
    positions = []
    unrealized_total: Decimal | None = Decimal(0)
    for row in Position.objects.filter(bot_id=bot_id).exclude(quantity=0):
        spec = instruments.get(row.instrument)
        state = PositionState(row.quantity, row.avg_price, row.realized_pnl)
        open_pnl = None if spec is None else unrealized_pnl(state, mark=mark, point_value=spec.point_value)
        positions.append(
            {
                "instrument": row.instrument,
                "quantity": row.quantity,
                "avg_price": None if row.avg_price is None else str(row.avg_price),
                "unrealized_pnl": _money(open_pnl),
            }
        )
        unrealized_total = None if open_pnl is None or unrealized_total is None else unrealized_total + open_pnl
    total["unrealized_pnl"] = _money(unrealized_total)
    if unrealized_total is None:
        total["unknown"]["unrealized_pnl"] = "an open position and no price to mark it at"
    return {
        "bot_id": bot_id,
        "total": total,
        "days": [{"trade_date": day, **_summary(day_fills)} for day, day_fills in days.items()],
        "positions": positions,
        "mark": None if mark is None else {"price": str(mark), "at": mark_at.isoformat() if mark_at else None},
        "unknown_orders": Order.objects.filter(bot_id=bot_id, status=Order.Status.UNKNOWN).count(),
    }


def bots_pnl_summary(*, bot_ids: list[int], day_start: datetime) -> dict[int, dict[str, Any]]:
    """Closed PnL per bot in total and since day_start (the current CME trade date), in one query:
    {bot_id: {"fills", "net_pnl", "fills_today", "net_pnl_today"}}. A bot with no fills is absent:
    its PnL is not 0, there is nothing behind it (the page says "no trades yet")."""
    from django.db.models import Count, Q, Sum

    today = Q(filled_at__gte=day_start)
    rows = (
        Fill.objects.filter(bot_id__in=bot_ids)
        .order_by()
        .values("bot_id")
        .annotate(
            n=Count("id"),
            realized=Sum("realized_pnl"),
            fees=Sum("fee"),
            n_today=Count("id", filter=today),
            realized_today=Sum("realized_pnl", filter=today),
            fees_today=Sum("fee", filter=today),
        )
    )
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        out[r["bot_id"]] = {
            "fills": r["n"],
            "net_pnl": _money(r["realized"] - r["fees"]),
            "fills_today": r["n_today"],
            "net_pnl_today": _money(r["realized_today"] - r["fees_today"]) if r["n_today"] else None,
        }
    return out


def fill_list_recent(*, limit: int = 20) -> list[Fill]:
    """The newest fills across every bot, with their orders (one query)."""
    return list(Fill.objects.select_related("order").order_by("-filled_at", "-id")[:limit])


def reconcile_blocker(*, bot_id: int) -> ReconcileReport | None:
    """The bot's newest reconcile when it did not succeed (MISMATCH or FAILED), else None. A bot
    halted by reconcile goes back to ACTIVE only after a reconcile succeeds (RELIABILITY J10)."""
    newest = ReconcileReport.objects.filter(bot_id=bot_id).order_by("-created_at", "-id").first()
    if newest is not None and newest.status in (ReconcileReport.Status.MISMATCH, ReconcileReport.Status.FAILED):
        return newest
    return None


# -- what the risk engine reads about an account (apps/trading/risk.py, RELIABILITY R2, R5, R13) ---------


def account_worst_case_by_instrument(*, venue: str, account: str, excluding: Sequence[int] = ()) -> dict[str, int]:
    """Per instrument, Σ over the account's bots of the largest absolute position each could reach if
    all its working orders filled: max(position + working buys, working sells − position, |position|).
    `excluding`: order ids not counted (the stops an order being checked replaces)."""
    positions = {
        (p["bot_id"], p["instrument"]): p["quantity"]
        for p in Position.objects.filter(venue=venue, account=account).values("bot_id", "instrument", "quantity")
    }
    working: dict[tuple[int, str, str], int] = {}
    rows = (
        Order.objects.filter(venue=venue, account=account, status__in=Order.OPEN_STATUSES)
        .exclude(pk__in=excluding)
        .values("bot_id", "instrument", "side")
        .annotate(open=Sum(F("quantity") - F("filled_quantity")))
    )
    for row in rows:
        working[(row["bot_id"], row["instrument"], row["side"])] = row["open"] or 0
    totals: dict[str, int] = defaultdict(int)
    for bot, instrument in set(positions) | {(bot, instrument) for bot, instrument, _ in working}:
        held = positions.get((bot, instrument), 0)
        buys, sells = working.get((bot, instrument, "BUY"), 0), working.get((bot, instrument, "SELL"), 0)
        totals[instrument] += max(held + buys, sells - held, abs(held))
    return dict(totals)


def account_notional(
    *,
    venue: str,
    account: str,
    instrument: str,
    reference_price: Decimal | None,
    now: datetime,
    excluding: Sequence[int] = (),
) -> Decimal | None:
    """The account's worst-case gross notional in USD: each instrument's worst-case contracts × its
    price × point value. `instrument` is priced at the order's reference price; any other at the
    close of its latest stored bar before `now`. None when any of them has no price (unknown, never 0)."""
    total = Decimal(0)
    for root, contracts in account_worst_case_by_instrument(venue=venue, account=account, excluding=excluding).items():
        if contracts == 0:
            continue
        spec = instruments.get(root)
        if root == instrument:
            price = reference_price
        else:
            price = (
                Bar.objects.filter(instrument=root, ts__lt=now).order_by("-ts").values_list("close", flat=True).first()
            )
        if spec is None or price is None:
            return None
        total += contracts * price * spec.point_value
    return total


def restricted_instruments(*, venue: str, account: str, instrument: str) -> dict[str, str]:
    """The restrictions on `instrument` that apply to this venue and account (global, the venue's, or
    the account's), as {instrument: reason}."""
    rows = RestrictedInstrument.objects.filter(instrument=instrument, venue__in=("", venue)).filter(
        account__in=("", account)
    )
    reasons = [
        f"{r.reason} (set by {r.created_by or 'an admin'} for {r.venue or 'every venue'}"
        f"{', account ' + r.account if r.account else ''})"
        for r in rows.order_by("venue", "account")
    ]
    return {instrument: "; ".join(reasons)} if reasons else {}
