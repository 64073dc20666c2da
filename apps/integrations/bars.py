"""The contract between market-data provider clients and the market app's historical-data service.

A market-data client (Databento, Polygon/Massive) offers `fetch_bars(...)`, which returns the
provider's bars as `ProviderBar`s, or raises an IntegrationError (apps/integrations/errors.py) with
a SPEC error code when it cannot: it never returns a made-up or partial bar, and an empty list
means the provider answered and had no bars in the range (e.g. the market was closed).

- `symbol` is the provider's own symbol (Databento continuous `MES.c.0`, Massive `MESZ5`); the
  market app maps an instrument to it.
- `timeframe` is one of NATIVE_TIMEFRAMES; coarser bars (5m, 15m) are aggregated by the market
  app from 1m bars, so every provider yields the same 5m bar for the same minutes.
- `start` and `end` are tz-aware UTC datetimes, the range half-open: start <= bar.ts < end.
- The result is sorted by ts, one bar per ts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

NATIVE_TIMEFRAMES: tuple[str, ...] = ("1m", "1h")


@dataclass(frozen=True, slots=True)
class ProviderBar:
    ts: datetime  # the bar's open time, tz-aware UTC
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int


class BarSource(Protocol):
    provider: str

    def fetch_bars(self, *, symbol: str, timeframe: str, start: datetime, end: datetime) -> list[ProviderBar]: ...
