"""Bars from the store into arrays: apps.market.arrays.bar_arrays over 1,000,000 stored one-minute bars,
against the ORM peer (`values_list` into Python lists, then numpy) in the same run, with the arrays
checked equal on both sides. Also timed, for the record: the alternative fast path that converts to
ticks on the server (numeric `mod` and division in the COPY's SELECT), a cache hit, and bar_gaps.

The bars are MES 1m in a window of past years (BENCH_BARS open minutes from 2014-01-06), written with
COPY into the bench database (tradeops_bench) and deleted again at the end (and before, should an
earlier run have stopped half-way).

    .venv/bin/python -m config.embedded exec -- .venv/bin/python bench/bar_arrays.py
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.common import setup_django  # noqa: E402

BARS = int(os.environ.get("BENCH_BARS", 1_000_000))
REPEATS = int(os.environ.get("BENCH_REPEATS", 5))
INSTRUMENT, TIMEFRAME = "MES", "1m"
FIRST = datetime(2014, 1, 6, tzinfo=UTC)  # a Monday
SOURCE = "bench-bar-arrays"


def seed() -> tuple[datetime, datetime]:
    """BARS open minutes of MES from FIRST, a random walk in ticks; returns the window [start, end)."""
    import psycopg
    from django.db import connection

    from apps.market import hours

    slots: list[int] = []
    a = int(FIRST.timestamp())
    while len(slots) < BARS:
        b = a + 120 * 86400
        slots.extend(hours.bar_slots_between(INSTRUMENT, 60, a, b))
        a = b
    slots = slots[:BARS]
    start, end = datetime.fromtimestamp(slots[0], UTC), datetime.fromtimestamp(slots[-1] + 60, UTC)
    clean(start, end)
    rng = np.random.default_rng(10)
    close = 4 * 1800 + np.cumsum(rng.integers(-3, 4, BARS))  # ticks of 0.25
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) + rng.integers(0, 5, BARS)
    low = np.minimum(open_, close) - rng.integers(0, 5, BARS)
    volume = rng.integers(0, 5000, BARS)

    def price(ticks: np.ndarray) -> list[str]:
        return [f"{t // 4}.{(t % 4) * 25:02d}" for t in ticks.tolist()]

    t0 = time.perf_counter()
    columns = zip(
        (datetime.fromtimestamp(s, UTC) for s in slots),
        price(open_),
        price(high),
        price(low),
        price(close),
        volume.tolist(),
        strict=True,
    )
    connection.ensure_connection()
    with (
        psycopg.Cursor(connection.connection) as cursor,
        cursor.copy(
            "COPY market_bar (instrument, timeframe, ts, open, high, low, close, volume, source, derived, fetched_at) "
            "FROM STDIN"
        ) as copy,
    ):
        now = datetime.now(UTC)
        for ts, o, h, lo, c, v in columns:
            copy.write_row((INSTRUMENT, TIMEFRAME, ts, o, h, lo, c, v, SOURCE, False, now))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE market_bar")
    took = time.perf_counter() - t0
    print(f"  seeded {BARS:,} MES 1m bars [{start:%Y-%m-%d %H:%M}, {end:%Y-%m-%d %H:%M}) in {took:.1f}s")
    return start, end


def clean(start: datetime, end: datetime) -> None:
    from apps.market.models import Bar

    Bar.objects.filter(instrument=INSTRUMENT, timeframe=TIMEFRAME, ts__gte=start, ts__lt=end).delete()


def orm_peer(start: datetime, end: datetime) -> dict[str, np.ndarray]:
    """The ORM way: values_list into Python lists, then numpy, with the same exact tick conversion."""
    from apps.market.instruments import INSTRUMENTS
    from apps.market.models import Bar

    tick = INSTRUMENTS[INSTRUMENT].tick_size
    rows = list(
        Bar.objects.filter(instrument=INSTRUMENT, timeframe=TIMEFRAME, ts__gte=start, ts__lt=end)
        .order_by("ts")
        .values_list("ts", "open", "high", "low", "close", "volume")
    )
    out: dict[str, np.ndarray] = {"ts": np.array([int(r[0].timestamp()) for r in rows], dtype=np.int64)}
    for i, name in enumerate(("open", "high", "low", "close"), start=1):
        ticks = []
        for r in rows:
            q, rest = divmod(r[i], tick)
            if rest:
                raise ValueError(f"{name} {r[i]} at {r[0]} is off the tick grid")
            ticks.append(int(q))
        out[name] = np.array(ticks, dtype=np.int64)
    out["volume"] = np.array([r[5] for r in rows], dtype=np.int64)
    return out


def server_ticks(start: datetime, end: datetime) -> dict[str, np.ndarray]:
    """The alternative fast path: ticks computed on the server (exactness by numeric mod), binary COPY."""
    from psycopg import sql

    from apps.market import arrays
    from apps.market.instruments import INSTRUMENTS

    tick = sql.Literal(INSTRUMENTS[INSTRUMENT].tick_size)
    cols = [sql.SQL("ts")]
    for name in ("open", "high", "low", "close"):
        col = sql.Identifier(name)
        cols.append(sql.SQL("CASE WHEN mod({c}, {t}) = 0 THEN ({c} / {t})::bigint END").format(c=col, t=tick))
    cols.append(sql.SQL("volume"))
    query = sql.SQL(
        "COPY (SELECT {cols} FROM market_bar WHERE instrument = {i} AND timeframe = {tf} AND ts >= {s} AND ts < {e} "
        "ORDER BY ts) TO STDOUT (FORMAT binary)"
    ).format(
        cols=sql.SQL(", ").join(cols),
        i=sql.Literal(INSTRUMENT),
        tf=sql.Literal(TIMEFRAME),
        s=sql.Literal(start),
        e=sql.Literal(end),
    )
    records = arrays._parse(arrays._copy_bytes(query))  # a NULL (off the grid) breaks the fixed width: raises
    out = {"ts": records["ts"] // 1_000_000 + 946_684_800}
    for name in ("open", "high", "low", "close", "volume"):
        out[name] = records[name].astype(np.int64)
    return out


def timed(fn: Callable[[], Any], repeats: int = REPEATS) -> tuple[float, Any]:
    times = []
    result = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def same(got: Any, ref: dict[str, np.ndarray]) -> bool:
    def field(name: str) -> np.ndarray:
        return got[name] if isinstance(got, dict) else getattr(got, name)

    return all(np.array_equal(field(n), ref[n]) for n in ("ts", "open", "high", "low", "close", "volume"))


def main() -> int:
    setup_django()
    from django.core.management import call_command

    from apps.market import arrays

    call_command("migrate", verbosity=0)
    print(f"bar_arrays: {BARS:,} stored 1m bars into int64 arrays (median of {REPEATS} reads each)")
    start, end = seed()
    try:
        ours_s, ours = timed(
            lambda: arrays.bar_arrays(instrument=INSTRUMENT, timeframe=TIMEFRAME, start=start, end=end)
        )
        alt_s, alt = timed(lambda: server_ticks(start, end))
        peer_s, peer = timed(lambda: orm_peer(start, end), repeats=max(1, min(REPEATS, 3)))
        arrays.bar_cache_clear()
        arrays.cached_bar_arrays(instrument=INSTRUMENT, timeframe=TIMEFRAME, start=start, end=end)
        hit_s, hit = timed(
            lambda: arrays.cached_bar_arrays(instrument=INSTRUMENT, timeframe=TIMEFRAME, start=start, end=end)
        )
        gaps_s, gaps = timed(
            lambda: arrays.bar_gaps(instrument=INSTRUMENT, timeframe=TIMEFRAME, start=start, end=end, arrays=ours)
        )
    finally:
        clean(start, end)
    ok = len(ours) == BARS and same(ours, peer) and same(alt, peer) and same(hit, peer) and gaps == []
    rows = [
        ("bar_arrays (binary COPY, prices as bigint 1e-9 units, ticks in numpy)", ours_s),
        ("alternative: ticks on the server (numeric mod + division), binary COPY", alt_s),
        ("peer: ORM values_list -> Python lists -> numpy", peer_s),
    ]
    for label, seconds in rows:
        print(f"  {label:74s} {seconds * 1000:8.1f} ms {BARS / seconds:12,.0f} bars/s")
    print(f"  {'cached_bar_arrays, a hit':74s} {hit_s * 1000:8.3f} ms")
    print(f"  {'bar_gaps over the window (expected slots against the stored ones)':74s} {gaps_s * 1000:8.1f} ms")
    print(
        f"  bar_arrays / peer: {peer_s / ours_s:.1f}x faster; arrays identical on every side: {'yes' if ok else 'NO'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
