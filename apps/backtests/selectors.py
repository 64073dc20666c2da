"""Reads of backtests: the list, one backtest, and its trades a page at a time."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apps.backtests.exceptions import BacktestNotFound
from apps.backtests.models import Backtest, BacktestTrade

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
