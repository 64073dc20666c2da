from __future__ import annotations

from django.db import models

PRICE = {"max_digits": 18, "decimal_places": 9}  # Databento's fixed-point precision (1e-9), 9 integer digits


class Timeframe(models.TextChoices):
    M1 = "1m", "1 minute"
    M5 = "5m", "5 minutes"
    M15 = "15m", "15 minutes"
    H1 = "1h", "1 hour"


class Bar(models.Model):
    """One OHLCV bar of an instrument (root symbol) and timeframe; `ts` is the bar's open time, UTC.

    Written once: a later answer for the same (instrument, timeframe, ts) never changes it
    (INSERT … ON CONFLICT DO NOTHING); a different answer is kept as a BarConflict. So a tick, its
    replay and a backtest read the same numbers. The unique index also serves "the latest N bars
    before T" (an index scan backwards on (instrument, timeframe, ts))."""

    instrument = models.CharField(max_length=10)
    timeframe = models.CharField(max_length=4, choices=Timeframe.choices)
    ts = models.DateTimeField(help_text="Bar open time (UTC).")
    open = models.DecimalField(**PRICE)
    high = models.DecimalField(**PRICE)
    low = models.DecimalField(**PRICE)
    close = models.DecimalField(**PRICE)
    volume = models.BigIntegerField()
    source = models.CharField(max_length=40, help_text="Provider (databento, polygon) or import (csv, dbn).")
    derived = models.BooleanField(default=False, help_text="Aggregated by TradeOps from stored 1m bars.")
    fetched_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["instrument", "timeframe", "ts"], name="market_bar_unique_slot"),
            models.CheckConstraint(
                condition=models.Q(high__gte=models.F("low")) & models.Q(volume__gte=0), name="market_bar_sane"
            ),
        ]
        # The newest bar stored for an instrument and timeframe, and the bars stored after a given one,
        # as index lookups: what the per-process bar cache checks (apps/market/arrays.py).
        indexes = [models.Index(fields=["instrument", "timeframe", "id"], name="market_bar_inserted")]
        ordering = ["instrument", "timeframe", "ts"]

    def __str__(self) -> str:
        return f"{self.instrument} {self.timeframe} {self.ts:%Y-%m-%d %H:%M} C={self.close}"


class BarCoverage(models.Model):
    """A stretch [start, end) for which a provider (or an imported file) has answered and the answer
    is final: a slot inside it with no Bar had no trades, and is never asked for again. Overlapping
    and adjacent stretches are merged when added."""

    instrument = models.CharField(max_length=10)
    timeframe = models.CharField(max_length=4, choices=Timeframe.choices)
    start = models.DateTimeField()
    end = models.DateTimeField()
    source = models.CharField(max_length=40)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["instrument", "timeframe", "end"], name="market_coverage_lookup")]
        constraints = [models.CheckConstraint(condition=models.Q(end__gt=models.F("start")), name="market_cov_order")]

    def __str__(self) -> str:
        return f"{self.instrument} {self.timeframe} [{self.start:%Y-%m-%d %H:%M}, {self.end:%Y-%m-%d %H:%M})"


class BarFetch(models.Model):
    """One request for bars made to a provider, whatever its outcome: what was asked, what came
    back. Recent rows stop other workers from asking the same again (MARKET_DATA_REFETCH_SECONDS),
    and a recent failure is answered from here instead of hammering the provider."""

    class Status(models.TextChoices):
        OK = "ok", "ok"
        ERROR = "error", "error"

    instrument = models.CharField(max_length=10)
    timeframe = models.CharField(max_length=4, choices=Timeframe.choices)
    provider = models.CharField(max_length=40)
    symbol = models.CharField(max_length=40)
    start = models.DateTimeField()
    end = models.DateTimeField()
    requested_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices)
    bars_returned = models.PositiveIntegerField(default=0)
    bars_inserted = models.PositiveIntegerField(default=0)
    conflicts = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=60, blank=True)
    message = models.TextField(blank=True)
    details = models.JSONField(default=dict, blank=True)
    bot_id = models.BigIntegerField(null=True, blank=True)
    trace_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["instrument", "timeframe", "-requested_at"], name="market_fetch_recent")]

    def __str__(self) -> str:
        return f"{self.provider} {self.symbol} {self.timeframe} {self.status} @ {self.requested_at:%H:%M:%S}"


class BarConflict(models.Model):
    """A provider or a file offered a bar that differs from the stored one. The stored bar was kept."""

    instrument = models.CharField(max_length=10)
    timeframe = models.CharField(max_length=4, choices=Timeframe.choices)
    ts = models.DateTimeField()
    stored = models.JSONField()
    offered = models.JSONField()
    stored_source = models.CharField(max_length=40)
    offered_source = models.CharField(max_length=40)
    seen_at = models.DateTimeField()
    trace_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-seen_at", "-id"]
        indexes = [models.Index(fields=["instrument", "timeframe", "ts"], name="market_conflict_slot")]

    def __str__(self) -> str:
        return f"{self.instrument} {self.timeframe} {self.ts:%Y-%m-%d %H:%M} {self.stored_source}≠{self.offered_source}"
