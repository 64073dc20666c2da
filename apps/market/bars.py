"""Plain bar values and the pure computations on them (no database, no provider)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal

PRICE_QUANTUM = Decimal("1e-9")  # the store's precision (Databento's fixed-point unit)


@dataclass(frozen=True, slots=True)
class MarketBar:
    """A closed bar as the market app serves it. `ts` is the bar's open time (UTC)."""

    ts: datetime
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int

    @property
    def epoch(self) -> int:
        return int(self.ts.timestamp())


def quantize(price: Decimal) -> Decimal:
    return price.quantize(PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


def from_epoch(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def aggregate(minutes: Iterable[MarketBar], *, bucket: int) -> list[MarketBar]:
    """Coarser bars from 1m bars: buckets aligned to UTC multiples of `bucket` seconds; open of the
    first minute, high of the highs, low of the lows, close of the last minute, sum of the volumes.
    Only buckets with at least one minute yield a bar; the caller decides whether a bucket is
    complete enough to aggregate (apps/market/services.py)."""
    out: list[MarketBar] = []
    current: list[MarketBar] = []
    current_start: int | None = None
    for bar in sorted(minutes, key=lambda b: b.ts):
        start = bar.epoch // bucket * bucket
        if start != current_start and current:
            out.append(_merge(current_start, current))  # type: ignore[arg-type]
            current = []
        current_start = start
        current.append(bar)
    if current:
        out.append(_merge(current_start, current))  # type: ignore[arg-type]
    return out


def _merge(start: int, bars: list[MarketBar]) -> MarketBar:
    return MarketBar(
        ts=from_epoch(start),
        open=bars[0].open,
        high=max(b.high for b in bars),
        low=min(b.low for b in bars),
        close=bars[-1].close,
        volume=sum(b.volume for b in bars),
    )
