from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from apps.backtests.models import Backtest
from tests.bots.factories import BotFactory

WINDOW_START = datetime(2025, 9, 1, tzinfo=UTC)


class BacktestFactory(DjangoModelFactory):
    """A SUCCEEDED backtest of its bot's current config (version, strategy, parameters, instrument,
    timeframe, risk limits, the SIM fill model), classified PROMOTABLE over 40 trading days and
    finished a day ago. It writes the row directly: for tests of what reads backtests (the gate)."""

    class Meta:
        model = Backtest

    class Params:
        verdict = "PROMOTABLE"
        reasons: list[dict[str, str]] = []

    bot = factory.SubFactory(BotFactory)
    config_version = factory.LazyAttribute(lambda o: o.bot.config_version)
    strategy_key = factory.LazyAttribute(lambda o: o.bot.strategy_key)
    parameters = factory.LazyAttribute(lambda o: dict(o.bot.parameters))
    instrument = factory.LazyAttribute(lambda o: o.bot.instrument)
    timeframe = factory.LazyAttribute(lambda o: o.bot.timeframe)
    risk_limits = factory.LazyAttribute(lambda o: dict(o.bot.risk_limits))
    data_provider = "databento"
    start = WINDOW_START
    end = WINDOW_START + timedelta(days=56)
    fill_model = factory.LazyFunction(lambda: {"slippage_ticks": 1, "commission_per_contract": "0.85"})
    initial_capital = Decimal(10000)
    status = Backtest.Status.SUCCEEDED
    progress = 1.0
    bars = 15000
    trading_days = 40
    metrics = factory.LazyFunction(
        lambda: {"trades": 64, "expectancy": "12.40", "profit_factor": "1.3500", "net_pnl": "793.60", "unknown": {}}
    )
    classification = factory.LazyAttribute(lambda o: {"verdict": o.verdict, "reasons": o.reasons, "thresholds": {}})
    started_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1, minutes=1))
    finished_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))
