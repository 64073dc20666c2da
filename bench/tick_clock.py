"""Bench-only: the wall clock of benchmark worker processes, set to a past bar's close.

A live tick reads the wall clock (`django.utils.timezone.now()`): the bar must have closed, its
bars must be settled as of then, and risk wants a reference price at most a couple of minutes old.
To tick a fixed past bar *live* (replay=False, the path `tick_dispatch` → Celery → `job_run` takes),
the workers' clock must read that bar's close, as a live system's does a second after it.

`install()` (called when a worker imports the benchmark module) replaces
`django.utils.timezone.now` with real time minus an offset. The offset lives in a small file that
the benchmark process maps and sets before each round (`Clock.set(at)`): from then on, the workers'
clock reads `at` and runs at real speed, so every duration (ticks, latencies, the round's clock,
which the benchmark takes from PostgreSQL's own clock anyway) is the real one. Only where the
clock reads changes. Every module on the tick's path calls `timezone.now()` through the module
attribute, so they all see it; PostgreSQL's clock (job leases, started_at/finished_at) is untouched.
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ENV = "BENCH_CLOCK_FILE"
_FORMAT = "d"  # seconds the clock runs behind real time; NaN: not set (real time)
_SIZE = struct.calcsize(_FORMAT)


class Clock:
    """The benchmark process's side: owns the file, sets the offset."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(struct.pack(_FORMAT, math.nan))
        self._file = path.open("r+b")
        self._map = mmap.mmap(self._file.fileno(), _SIZE)

    def set(self, at: datetime) -> None:
        """From now on, the workers' clock reads `at` and runs at real speed."""
        struct.pack_into(_FORMAT, self._map, 0, time.time() - at.timestamp())

    def offset(self) -> float:
        return struct.unpack_from(_FORMAT, self._map, 0)[0]

    def to_real(self, fake: datetime) -> datetime:
        return fake + timedelta(seconds=self.offset())

    def close(self) -> None:
        self._map.close()
        self._file.close()


def install(path: str | None = None) -> bool:
    """In a worker process: make `timezone.now()` read the shared offset clock. False when no clock
    file is named (the real clock stays)."""
    path = path or os.environ.get(ENV)
    if not path:
        return False
    from django.utils import timezone

    with open(path, "rb") as f:
        shared = mmap.mmap(f.fileno(), _SIZE, access=mmap.ACCESS_READ)
    unpack_from, now, utc = struct.Struct(_FORMAT).unpack_from, datetime.now, UTC
    cache: list[float | timedelta] = [math.nan, timedelta(0)]

    def offset_now() -> datetime:
        offset = unpack_from(shared, 0)[0]
        if offset != offset:  # NaN: not set
            return now(utc)
        if offset != cache[0]:
            cache[0], cache[1] = offset, timedelta(seconds=offset)
        return now(utc) - cache[1]  # type: ignore[operator]

    timezone.now = offset_now
    return True
