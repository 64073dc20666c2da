"""A fake market-data provider implementing the bars contract (apps/integrations/bars.py), and
helpers to make deterministic minute bars for the stretches the market is open."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from apps.integrations.bars import ProviderBar
from apps.integrations.errors import IntegrationError
from apps.market import hours

CT = ZoneInfo("America/Chicago")


def ct(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=CT)


def epoch(at: datetime) -> int:
    return int(at.timestamp())


def minute_bars(instrument: str, start: datetime, end: datetime, *, base: str = "6000.00") -> list[ProviderBar]:
    """One 1m bar per open minute in [start, end): prices step by 0.25 with the minute's index."""
    out = []
    for n, s in enumerate(hours.bar_slots_between(instrument, 60, epoch(start), epoch(end))):
        o = Decimal(base) + Decimal("0.25") * (n % 40)
        out.append(
            ProviderBar(
                ts=datetime.fromtimestamp(s, UTC),
                open=o,
                high=o + Decimal("1.00"),
                low=o - Decimal("0.50"),
                close=o + Decimal("0.25"),
                volume=100 + n,
            )
        )
    return out


@dataclass
class FakeBarSource:
    """Serves the bars it holds for (symbol, timeframe); records every call; can fail or lag."""

    provider: str = "databento"
    bars: dict[tuple[str, str], list[ProviderBar]] = field(default_factory=dict)
    error: IntegrationError | None = None
    published_until: datetime | None = None  # bars with ts >= this are not out yet (provider lag)
    calls: list[tuple[str, str, datetime, datetime]] = field(default_factory=list)

    def add(self, symbol: str, timeframe: str, bars: list[ProviderBar]) -> FakeBarSource:
        merged = {b.ts: b for b in self.bars.get((symbol, timeframe), [])}
        merged.update({b.ts: b for b in bars})
        self.bars[(symbol, timeframe)] = [merged[k] for k in sorted(merged)]
        return self

    def fetch_bars(self, *, symbol: str, timeframe: str, start: datetime, end: datetime) -> list[ProviderBar]:
        self.calls.append((symbol, timeframe, start, end))
        if self.error is not None:
            raise self.error
        return [
            b
            for b in self.bars.get((symbol, timeframe), [])
            if start <= b.ts < end and (self.published_until is None or b.ts < self.published_until)
        ]


def plus(at: datetime, **delta: float) -> datetime:
    return at + timedelta(**delta)
