"""Hand-built bar series for the strategy tests (no database)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from apps.integrations.bars import ProviderBar

T0 = datetime(2025, 1, 6, 14, 30, tzinfo=UTC)
TICK = Decimal("0.25")


def bars(
    rows: Sequence[tuple[str, str, str]], *, start: datetime = T0, step: timedelta = timedelta(minutes=5)
) -> list[ProviderBar]:
    """One 5-minute bar per (high, low, close) row, oldest first; open = close."""
    return [
        ProviderBar(start + i * step, Decimal(c), Decimal(h), Decimal(low), Decimal(c), 100)
        for i, (h, low, c) in enumerate(rows)
    ]


def closes(values: Sequence[str], *, spread: str = "1") -> list[ProviderBar]:
    """Bars whose high and low are close ± spread."""
    s = Decimal(spread)
    return bars([(str(Decimal(c) + s), str(Decimal(c) - s), c) for c in values])


def random_walk(seed: int, n: int = 400) -> list[ProviderBar]:
    """A seeded MES-like series on the 0.25 grid (random.Random is stable across platforms)."""
    rng = random.Random(seed)
    price = Decimal("5000.00")
    rows = []
    for _ in range(n):
        close = price + rng.randint(-12, 12) * TICK
        high = max(price, close) + rng.randint(0, 6) * TICK
        low = min(price, close) - rng.randint(0, 6) * TICK
        rows.append((str(high), str(low), str(close)))
        price = close
    return bars(rows, start=T0, step=timedelta(minutes=5))


SERIES = random_walk(20250106)
