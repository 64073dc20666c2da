"""Reads of backtests: the list, one backtest, and its trades a page at a time."""

from __future__ import annotations

from typing import Any

from django.apps import apps as django_apps
from django.db.models import QuerySet

from apps.backtests.exceptions import BacktestNotFound
from apps.backtests.models import OPEN_STATUSES, Backtest, BacktestTrade

# Fields the list does not carry (large JSON): read them on the detail.
_LIST_DEFERRED = ("equity_curve", "decisions")


def backtest_list(*, filters: dict[str, Any] | None = None) -> QuerySet[Backtest]:
    """Newest first, by id on ties (a stable order for pagination). Filters: bot_id, status,
    matrix_id; a None value means "any"."""
    qs = Backtest.objects.select_related("created_by").defer(*_LIST_DEFERRED).order_by("-created_at", "-id")
    for key, value in (filters or {}).items():
        if value is not None:
            qs = qs.filter(**{key: value})
    return qs


def backtest_get(*, backtest_id: int) -> Backtest:
    backtest = Backtest.objects.select_related("created_by").filter(pk=backtest_id).first()
    if backtest is None:
        raise BacktestNotFound(f"No backtest has id {backtest_id}.")
    return backtest


def backtest_trades_page(*, backtest: Backtest, limit: int, after: int = 0) -> tuple[list[BacktestTrade], int | None]:
    """(up to `limit` trades with seq > after, oldest first; the cursor of the next page or None).
    Keyset pagination on (backtest, seq): every page is one index range, however deep."""
    rows = list(BacktestTrade.objects.filter(backtest=backtest, seq__gt=after).order_by("seq")[: limit + 1])
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].seq
    return rows, None


# -- reads of the Observatory's pages ----------------------------------------------------------


def backtest_activity(*, bot_id: int | None = None) -> bool:
    """True while a backtest (of this bot, when given) is QUEUED or RUNNING: while its progress or
    its outcome can change without anyone acting, the pages that show it poll; only then."""
    qs = Backtest.objects.filter(status__in=OPEN_STATUSES)
    if bot_id is not None:
        qs = qs.filter(bot_id=bot_id)
    return qs.exists()


def backtest_bot_choices(*, retired: bool = False) -> list[Any]:
    """The bots a backtest can be run from (every one but the RETIRED, unless `retired`: a filter
    of past backtests lists those too), by name then id. Bots sit above backtests: the model is
    reached by its label."""
    qs = django_apps.get_model("bots", "Bot").objects.order_by("name", "id")
    return list(qs if retired else qs.exclude(stage="RETIRED"))


def backtest_trade_marks(*, backtest: Backtest, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """(the first `limit` trades' side, entry and exit times and exit reason, oldest first; True
    when there are more) — what the price chart marks, without reading whole trade rows."""
    rows = list(
        BacktestTrade.objects.filter(backtest=backtest)
        .order_by("seq")
        .values("side", "entry_ts", "exit_ts", "exit_reason")[: limit + 1]
    )
    return rows[:limit], len(rows) > limit
