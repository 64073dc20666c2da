"""Reads of the bar store. Times are tz-aware datetimes at the edges and epoch seconds inside the
data service (apps/market/services.py)."""

from __future__ import annotations

from datetime import datetime

from apps.core.db import fetch_prepared
from apps.market.bars import MarketBar, from_epoch
from apps.market.models import Bar, BarCoverage, BarFetch

# The tick's hot read: one index range scan on market_bar_unique_slot, as a prepared statement.
_BARS_SQL = (
    "SELECT ts, open, high, low, close, volume, source FROM market_bar "
    "WHERE instrument = %(instrument)s AND timeframe = %(timeframe)s AND ts >= %(start)s AND ts < %(stop)s "
    "ORDER BY ts"
)


def bar_rows_between(*, instrument: str, timeframe: str, start: int, stop: int) -> list[tuple[MarketBar, str]]:
    """Stored bars with start <= ts < stop (epoch seconds), oldest first, each with its source."""
    rows = fetch_prepared(
        _BARS_SQL,
        {"instrument": instrument, "timeframe": timeframe, "start": from_epoch(start), "stop": from_epoch(stop)},
    )
    return [(MarketBar(ts, o, h, lo, c, v), source) for ts, o, h, lo, c, v, source in rows]


def bars_between(*, instrument: str, timeframe: str, start: datetime, stop: datetime) -> list[MarketBar]:
    return [
        bar
        for bar, _ in bar_rows_between(
            instrument=instrument, timeframe=timeframe, start=int(start.timestamp()), stop=int(stop.timestamp())
        )
    ]


def latest_bar(*, instrument: str, timeframe: str, before: datetime | None = None) -> Bar | None:
    qs = Bar.objects.filter(instrument=instrument, timeframe=timeframe)
    if before is not None:
        qs = qs.filter(ts__lt=before)
    return qs.order_by("-ts").first()


def coverage_between(*, instrument: str, timeframe: str, start: int, stop: int) -> list[tuple[int, int]]:
    """The covered stretches overlapping [start, stop), merged, in epoch seconds, oldest first."""
    rows = (
        BarCoverage.objects.filter(
            instrument=instrument, timeframe=timeframe, start__lt=from_epoch(stop), end__gt=from_epoch(start)
        )
        .order_by("start")
        .values_list("start", "end")
    )
    merged: list[tuple[int, int]] = []
    for s, e in rows:
        a, b = int(s.timestamp()), int(e.timestamp())
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def recent_fetch(*, instrument: str, timeframe: str, start: int, stop: int, since: datetime) -> BarFetch | None:
    """The newest provider request since `since` that asked for all of [start, stop)."""
    return (
        BarFetch.objects.filter(
            instrument=instrument,
            timeframe=timeframe,
            start__lte=from_epoch(start),
            end__gte=from_epoch(stop),
            requested_at__gte=since,
        )
        .order_by("-requested_at", "-id")
        .first()
    )
