"""The desk overview: one card per running or recently active bot, and the newest fills across
bots, read in a fixed number of queries whatever the number of bots (no N+1; a test counts them).

Every figure is a fact or says why it is not: a bot that never filled has no PnL ("no trades
yet"), an open position without a price to mark it at has no unrealized PnL (and says so)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from apps.bots.models import Bot
from apps.market import instruments
from apps.market.models import Bar
from apps.runners.models import Runner
from apps.telemetry.models import DecisionTrace
from apps.trading.fills import PositionState, unrealized_pnl
from apps.trading.models import Fill, Order, Position, TradingState
from apps.trading.selectors import bots_pnl_summary, fill_list_recent

ACTIVE_WINDOW = timedelta(hours=24)
RECENT_FILLS = 20
_ACTIVE_STATUSES = (Runner.Status.STARTING, Runner.Status.RUNNING, Runner.Status.STOPPING)

# The latest stored bar of each (instrument, timeframe) pair, one index probe per pair.
_MARKS_SQL = """
SELECT p.instrument, p.timeframe, b.close, b.ts
  FROM unnest(%s::text[], %s::text[]) AS p(instrument, timeframe)
  JOIN LATERAL (SELECT close, ts FROM {table} m
                 WHERE m.instrument = p.instrument AND m.timeframe = p.timeframe
                 ORDER BY m.ts DESC LIMIT 1) b ON TRUE
"""


@dataclass
class DeskCard:
    bot: Bot
    runner: Runner | None
    trading_state: str
    positions: list[dict[str, Any]]
    pnl: dict[str, Any]  # net_pnl/net_pnl_today/unrealized_pnl: str or None, with `unknown` reasons
    last_decision: DecisionTrace | None
    unknown_orders: int
    notes: list[str] = field(default_factory=list)


def _marks(pairs: set[tuple[str, str]]) -> dict[tuple[str, str], tuple[Decimal, datetime]]:
    if not pairs:
        return {}
    inst, tf = zip(*sorted(pairs), strict=True)
    with connection.cursor() as cursor:
        cursor.execute(_MARKS_SQL.format(table=connection.ops.quote_name(Bar._meta.db_table)), [list(inst), list(tf)])
        return {(i, t): (close, ts) for i, t, close, ts in cursor.fetchall()}


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.01")))


def desk_overview(*, now: datetime | None = None) -> dict[str, Any]:
    """{"cards": [DeskCard], "fills": [Fill], "since": datetime}. A bot is on the desk when its
    runner is starting, running or stopping, or it ticked, stopped or filled in the last 24 h."""
    now = now or timezone.now()
    since = now - ACTIVE_WINDOW
    recent_fill = Fill.objects.filter(bot_id=OuterRef("pk"), filled_at__gte=since)
    bots = list(
        Bot.objects.select_related("runner")
        .filter(
            Q(runner__status__in=_ACTIVE_STATUSES)
            | Q(runner__last_tick_at__gte=since)
            | Q(runner__stopped_at__gte=since)
            | Exists(recent_fill)
        )
        .order_by("name", "pk")
    )
    ids = [b.pk for b in bots]
    fills = fill_list_recent(limit=RECENT_FILLS)
    names = dict(Bot.objects.filter(pk__in={f.bot_id for f in fills}).values_list("pk", "name")) if fills else {}
    for f in fills:
        f.bot_name = names.get(f.bot_id, f"bot {f.bot_id}")  # type: ignore[attr-defined]
    if not ids:
        return {"cards": [], "fills": fills, "since": since}

    states = dict(TradingState.objects.filter(bot_id__in=ids).values_list("bot_id", "state"))
    positions: dict[int, list[Position]] = {}
    for p in Position.objects.filter(bot_id__in=ids).exclude(quantity=0).order_by("bot_id", "instrument"):
        positions.setdefault(p.bot_id, []).append(p)
    pnl = bots_pnl_summary(bot_ids=ids, day_start=instruments.trade_date_start(now))
    marks = _marks({(p.instrument, b.timeframe) for b in bots for p in positions.get(b.pk, [])})
    latest = DecisionTrace.objects.filter(bot_id__in=ids).order_by("bot_id", "-created_at", "-id").distinct("bot_id")
    decisions = {t.bot_id: t for t in latest}
    unknown = dict(
        Order.objects.filter(bot_id__in=ids, status=Order.Status.UNKNOWN)
        .order_by()
        .values("bot_id")
        .annotate(n=Count("id"))
        .values_list("bot_id", "n")
    )

    cards = []
    for bot in bots:
        runner: Runner | None = getattr(bot, "runner", None)
        summary = pnl.get(bot.pk)
        figures: dict[str, Any] = {"unknown": {}}
        if summary is None:
            figures["net_pnl"] = figures["net_pnl_today"] = None
            figures["unknown"]["net_pnl"] = "no trades yet"
            figures["unknown"]["net_pnl_today"] = "no trades yet"
        else:
            figures["net_pnl"] = summary["net_pnl"]
            figures["net_pnl_today"] = summary["net_pnl_today"]
            figures["fills"] = summary["fills"]
            if summary["net_pnl_today"] is None:
                figures["unknown"]["net_pnl_today"] = "no fills this trade date"
        open_rows = []
        unrealized: Decimal | None = Decimal(0)
        for p in positions.get(bot.pk, []):
            spec = instruments.get(p.instrument)
            mark = marks.get((p.instrument, bot.timeframe))
            state = PositionState(p.quantity, p.avg_price, p.realized_pnl)
            value = (
                None
                if spec is None or mark is None
                else unrealized_pnl(state, mark=mark[0], point_value=spec.point_value)
            )
            open_rows.append(
                {
                    "instrument": p.instrument,
                    "quantity": p.quantity,
                    "avg_price": p.avg_price,
                    "mark": mark[0] if mark else None,
                    "mark_at": mark[1] if mark else None,
                    "unrealized_pnl": _money(value),
                }
            )
            unrealized = None if value is None or unrealized is None else unrealized + value
        figures["unrealized_pnl"] = _money(unrealized) if open_rows else None
        if not open_rows:
            figures["unknown"]["unrealized_pnl"] = "flat: no open position"
        elif unrealized is None:
            figures["unknown"]["unrealized_pnl"] = "an open position and no stored price to mark it at"
        cards.append(
            DeskCard(
                bot=bot,
                runner=runner,
                trading_state=states.get(bot.pk, TradingState.State.ACTIVE),
                positions=open_rows,
                pnl=figures,
                last_decision=decisions.get(bot.pk),
                unknown_orders=unknown.get(bot.pk, 0),
            )
        )
    return {"cards": cards, "fills": fills, "since": since}
