from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import factory
import numpy as np
from django.utils import timezone
from factory.django import DjangoModelFactory

from apps.backtests.models import Backtest, BacktestTrade, Status
from apps.market import hours
from apps.market.bars import MarketBar
from apps.market.services import bars_store
from apps.trading import catalogue as strategies
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


# A window of CME equity-index futures trading (Monday 08:00 CT to Tuesday 08:00 CT, no holiday).
DAY_START = datetime(2025, 12, 15, 14, 0, tzinfo=UTC)
DAY_END = datetime(2025, 12, 16, 14, 0, tzinfo=UTC)
# Short lookbacks and a tight stop, so a day of one-minute bars holds trades of every kind.
TREND_PARAMETERS = {"fast_period": 3, "slow_period": 8, "atr_period": 5, "stop_atr_multiple": 1.0}


def store_walk(*, seed: int, start: datetime, end: datetime, instrument: str = "MES", timeframe: str = "1m") -> int:
    """A random walk on MES's tick grid, one bar per slot the market trades in [start, end),
    stored as the bar store's own (no gap: a backtest over it needs no provider). The number of bars."""
    tf = {"1m": 60, "5m": 300}[timeframe]
    slots = hours.bar_slots_between(instrument, tf, int(start.timestamp()), int(end.timestamp()))
    rng = np.random.default_rng(seed)
    tick = Decimal("0.25")
    price, bars = 24000, []
    for s in slots:
        o = price
        c = o + int(rng.integers(-6, 7))
        h = max(o, c) + int(rng.integers(0, 4))
        lo = min(o, c) - int(rng.integers(0, 4))
        bars.append(MarketBar(datetime.fromtimestamp(s, UTC), o * tick, h * tick, lo * tick, c * tick, 100))
        price = c
    bars_store(instrument=instrument, timeframe=timeframe, bars=bars, source="test", fetched_at=timezone.now())
    return len(bars)


class StrategyBacktestFactory(DjangoModelFactory):
    """A strategy backtest row as the service writes it, QUEUED, without its job: for tests of what
    the pages show of a row in each state (a finished one: `finished=True` stores a result of the
    shape apps.backtests.metrics writes)."""

    class Meta:
        model = Backtest
        skip_postgeneration_save = True

    class Params:
        finished = factory.Trait(
            status=Status.SUCCEEDED,
            progress=1.0,
            bars=1380,
            trading_days=2,
            elapsed_ms=420,
            metrics=factory.LazyFunction(lambda: finished_metrics()),
            classification=factory.LazyFunction(
                lambda: {
                    "verdict": "MARGINAL",
                    "reasons": [
                        {
                            "code": "TOO_FEW_TRADES",
                            "threshold": "min_trades",
                            "verdict": "MARGINAL",
                            "message": "2 trades, 30 needed",
                        }
                    ],
                    "thresholds": {"min_trades": 30, "min_trading_days": 20},
                }
            ),
            equity_curve=factory.LazyFunction(
                lambda: [
                    {"ts": "2025-12-15T14:00:00Z", "equity": "10000.00"},
                    {"ts": "2025-12-15T15:00:00Z", "equity": "10120.50"},
                    {"ts": "2025-12-15T16:00:00Z", "equity": "9980.25"},
                    {"ts": "2025-12-16T13:59:00Z", "equity": "10048.30"},
                ]
            ),
            decisions=factory.LazyFunction(
                lambda: {
                    "TRADE": {"TREND_UP": 3, "TREND_DOWN": 2},
                    "NO_TRADE": {"IN_POSITION": 900, "MARKET_CLOSED": 60},
                }
            ),
            finished_at=factory.LazyFunction(timezone.now),
            started_at=factory.LazyFunction(timezone.now),
        )

    strategy_key = "trend_following"
    parameters = factory.LazyFunction(lambda: dict(strategies.STRATEGIES["trend_following"].defaults()))
    instrument = "MES"
    timeframe = "1m"
    start = DAY_START
    end = DAY_END
    fill_model = factory.LazyFunction(lambda: {"slippage_ticks": 1, "commission_per_contract": "0.85"})
    risk_limits = None
    initial_capital = Decimal(10000)
    data_provider = "databento"
    status = Status.QUEUED


def finished_metrics(**overrides: Any) -> dict[str, Any]:
    metrics: dict[str, Any] = {
        "net_pnl": "48.30",
        "gross_pnl": "51.70",
        "fees": "3.40",
        "slippage": "2.50",
        "trades": 2,
        "win_rate": "0.5000",
        "profit_factor": "1.4321",
        "expectancy": "24.15",
        "max_drawdown": "140.25",
        "max_drawdown_pct": "1.39",
        "sharpe": "0.8123",
        "sortino": "1.2001",
        "exposure": "0.6200",
        "unknown": {},
    }
    metrics.update(overrides)
    return metrics


def trade(backtest: Backtest, seq: int, **overrides: Any) -> BacktestTrade:
    fields: dict[str, Any] = {
        "side": "LONG",
        "quantity": 1,
        "entry_ts": DAY_START + timedelta(minutes=2 * seq),
        "entry_price": Decimal("6000.25"),
        "exit_ts": DAY_START + timedelta(minutes=2 * seq + 1),
        "exit_price": Decimal("6010.50"),
        "exit_reason": "SIGNAL",
        "pnl": Decimal("49.55"),
        "fees": Decimal("1.70"),
        "slippage": Decimal("1.25"),
        **overrides,
    }
    return BacktestTrade.objects.create(backtest=backtest, seq=seq, **fields)
