from __future__ import annotations

from django.db import models


class Bot(models.Model):
    """A trading bot: what it trades, how, where, and how far it is trusted.

    Lifecycle fields (stage, autonomy tier, kill latch, config version) change only through
    services (apps/bots/services.py), each change audited; the admin shows them read-only."""

    class Stage(models.TextChoices):
        LAB = "LAB", "Lab"
        PAPER = "PAPER", "Paper (simulated money)"
        LIVE = "LIVE", "Live"
        RETIRED = "RETIRED", "Retired"

    class Tier(models.TextChoices):
        LOCKED = "LOCKED", "Locked"
        SIM_ONLY = "SIM_ONLY", "Sim only"
        LIVE_REDUCED = "LIVE_REDUCED", "Live, reduced"
        LIVE_FULL = "LIVE_FULL", "Live, full"

    class Venue(models.TextChoices):
        SIM = "sim", "Simulated"
        TRADOVATE = "tradovate", "Tradovate"
        IRONBEAM = "ironbeam", "Ironbeam"

    class DataProvider(models.TextChoices):
        DATABENTO = "databento", "Databento"
        POLYGON = "polygon", "Polygon (Massive)"

    name = models.CharField(max_length=100, unique=True)
    strategy_key = models.CharField(max_length=60)
    parameters = models.JSONField(default=dict, blank=True)
    instrument = models.CharField(max_length=20, help_text="Root symbol, e.g. MES, MNQ.")
    timeframe = models.CharField(max_length=10, default="1m")
    data_provider = models.CharField(max_length=20, choices=DataProvider.choices, default=DataProvider.DATABENTO)
    venue = models.CharField(max_length=20, choices=Venue.choices, default=Venue.SIM)
    broker_account = models.CharField(max_length=100, blank=True)
    stage = models.CharField(max_length=10, choices=Stage.choices, default=Stage.LAB)
    autonomy_tier = models.CharField(max_length=20, choices=Tier.choices, default=Tier.LOCKED)
    risk_limits = models.JSONField(default=dict, blank=True)
    config_version = models.PositiveIntegerField(default=1)
    # The kill latch: set before anything else on a kill, cleared only by an operator with a reason.
    killed = models.BooleanField(default=False)
    killed_at = models.DateTimeField(null=True, blank=True)
    kill_reason = models.TextField(blank=True)
    killed_by = models.CharField(max_length=150, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["stage"]), models.Index(fields=["autonomy_tier"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.stage})"


class BotConfigVersion(models.Model):
    """Every version of a bot's parameters and risk limits, kept: version N is what ran between
    its created_at and the next version's."""

    bot = models.ForeignKey(Bot, on_delete=models.CASCADE, related_name="config_versions")
    version = models.PositiveIntegerField()
    parameters = models.JSONField(default=dict)
    risk_limits = models.JSONField(default=dict)
    changed_by = models.CharField(max_length=150, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["bot", "-version"]
        constraints = [models.UniqueConstraint(fields=["bot", "version"], name="bot_config_version_unique")]

    def __str__(self) -> str:
        return f"{self.bot_id} v{self.version}"
