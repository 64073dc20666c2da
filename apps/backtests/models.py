"""Backtest runs (SPEC §9): one row per backtest, its trades, and the matrix that fans runs out.

A row changes only through apps/backtests/services.py: created QUEUED with its ledger job, claimed
RUNNING by that job's handler, closed SUCCEEDED / FAILED / CANCELLED with conditional UPDATEs (R4).
Bots and jobs are higher apps: they are named by label."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Status(models.TextChoices):
    QUEUED = "QUEUED", "Queued"
    RUNNING = "RUNNING", "Running"
    SUCCEEDED = "SUCCEEDED", "Succeeded"
    FAILED = "FAILED", "Failed"
    CANCELLED = "CANCELLED", "Cancelled"


OPEN_STATUSES = (Status.QUEUED, Status.RUNNING)


class BacktestMatrix(models.Model):
    """A parameter grid × instruments × windows over one base config, each combination a Backtest
    (`runs`), ranked by `objective`."""

    Status = Status

    base_config = models.JSONField(default=dict)
    grid = models.JSONField(default=dict)  # {parameter: [values]}
    instruments = models.JSONField(default=list)
    windows = models.JSONField(default=list)  # [{"start", "end"}]
    objective = models.CharField(max_length=40, default="expectancy")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    runs = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "backtest matrices"

    def __str__(self) -> str:
        return f"matrix {self.pk} ({self.status}, {self.runs} runs)"


class Backtest(models.Model):
    """One strategy config over one window of bars, run by the engine in a `backtest.run` job.

    `config_version` is the bot's config version it was created from (null for a strategy backtest):
    the LAB→PAPER gate reads it. `error` is the SPEC §2 envelope when FAILED."""

    Status = Status

    bot = models.ForeignKey("bots.Bot", null=True, blank=True, on_delete=models.SET_NULL, related_name="backtests")
    config_version = models.PositiveIntegerField(null=True, blank=True)
    strategy_key = models.CharField(max_length=60)
    parameters = models.JSONField(default=dict)
    instrument = models.CharField(max_length=20)
    timeframe = models.CharField(max_length=10)
    start = models.DateTimeField()
    end = models.DateTimeField()
    # {"slippage_ticks": int, "commission_per_contract": "0.85"} (a decimal string).
    fill_model = models.JSONField(default=dict)
    # null: no risk checks at all; an object: the limits checked as in SIM.
    risk_limits = models.JSONField(null=True, blank=True)
    initial_capital = models.DecimalField(max_digits=18, decimal_places=2)
    data_provider = models.CharField(max_length=20, help_text="Where missing bars are fetched from.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    job = models.ForeignKey("runners.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    matrix = models.ForeignKey(
        BacktestMatrix, null=True, blank=True, on_delete=models.CASCADE, related_name="backtests"
    )
    bars = models.PositiveIntegerField(null=True, blank=True)  # window bars the engine decided over
    trading_days = models.PositiveIntegerField(null=True, blank=True)
    elapsed_ms = models.PositiveIntegerField(null=True, blank=True)
    timings = models.JSONField(default=dict, blank=True)  # {"bars_ms", "engine_ms", "store_ms"}
    metrics = models.JSONField(default=dict, blank=True)
    classification = models.JSONField(default=dict, blank=True)
    equity_curve = models.JSONField(default=list, blank=True)
    decisions = models.JSONField(default=dict, blank=True)
    error = models.JSONField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The LAB→PAPER gate: a bot's backtests of its current config version that succeeded.
            models.Index(fields=["bot", "config_version", "status"], name="backtest_bot_version_status"),
            models.Index(fields=["status", "-created_at"], name="backtest_status_created"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(start__lt=models.F("end")), name="backtest_window_ordered"),
            models.CheckConstraint(condition=models.Q(initial_capital__gt=0), name="backtest_capital_positive"),
        ]

    def __str__(self) -> str:
        return f"backtest {self.pk} {self.strategy_key} {self.instrument} {self.timeframe} ({self.status})"


class BacktestTrade(models.Model):
    """One closed trade of a backtest, in the order the engine closed them (`seq` from 1). Written
    once, in bulk, with the result."""

    class Side(models.TextChoices):
        LONG = "LONG", "Long"
        SHORT = "SHORT", "Short"

    class ExitReason(models.TextChoices):
        STOP = "STOP", "Protective stop"
        SIGNAL = "SIGNAL", "Strategy signal"
        END = "END", "End of the window"

    # A matrix run stores thousands of trades in one COPY: no index of its own on backtest_id
    # (backtest_trade_seq_unique (backtest, seq) leads with it). The foreign key stays: its per-row
    # check costs about 5 µs a trade on the server, which the matrix benchmark can afford.
    backtest = models.ForeignKey(Backtest, on_delete=models.CASCADE, related_name="trades", db_index=False)
    seq = models.PositiveIntegerField()
    side = models.CharField(max_length=5, choices=Side.choices)
    quantity = models.PositiveIntegerField()
    entry_ts = models.DateTimeField()
    entry_price = models.DecimalField(max_digits=18, decimal_places=9)
    exit_ts = models.DateTimeField()
    exit_price = models.DecimalField(max_digits=18, decimal_places=9)
    exit_reason = models.CharField(max_length=6, choices=ExitReason.choices)
    # USD. pnl is net of the trade's fees; slippage is already inside the fill prices.
    pnl = models.DecimalField(max_digits=18, decimal_places=9)
    fees = models.DecimalField(max_digits=18, decimal_places=9)
    slippage = models.DecimalField(max_digits=18, decimal_places=9)

    class Meta:
        ordering = ["backtest", "seq"]
        constraints = [models.UniqueConstraint(fields=["backtest", "seq"], name="backtest_trade_seq_unique")]

    def __str__(self) -> str:
        return f"backtest {self.backtest_id} trade {self.seq}"
