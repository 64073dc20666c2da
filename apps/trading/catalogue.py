"""The catalogue a bot is validated against, as data: the strategies TradeOps knows (with their
parameters and defaults), the instruments it trades, the bar timeframes and the risk-limit keys.

A strategy's parameters are complete once stored (defaults filled in), so a tick, a replayed tick
and a backtest of the same config version all read the same numbers (SPEC §1.5)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apps.market import hours
from apps.market import instruments as market_instruments


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    kind: type  # int or float
    default: int | float
    minimum: int | float
    maximum: int | float
    help: str

    def problem(self, value: Any) -> str | None:
        """Why value is not acceptable for this parameter, or None."""
        # bool is an int subclass: true/false must not pass as 1/0.
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be a number ({self.kind.__name__})."
        if self.kind is int and not (isinstance(value, int) or float(value).is_integer()):
            return "must be a whole number."
        if not self.minimum <= value <= self.maximum:
            return f"must be between {self.minimum} and {self.maximum}."
        return None

    def coerce(self, value: int | float) -> int | float:
        """The stored form of an acceptable value: 20.0 → 20 for a whole-number parameter."""
        return int(value) if self.kind is int else float(value)


@dataclass(frozen=True)
class StrategySpec:
    key: str
    label: str
    description: str
    parameters: tuple[ParameterSpec, ...]
    # Checks across parameters: (message, predicate on the complete parameters, field to blame).
    rules: tuple[tuple[str, Callable[[dict[str, Any]], bool], str], ...] = field(default=())

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.parameters}

    def parameter(self, name: str) -> ParameterSpec | None:
        return next((p for p in self.parameters if p.name == name), None)


_ATR_PERIOD = ParameterSpec("atr_period", int, 14, 2, 100, "bars in the ATR that sizes the stop")

STRATEGIES: dict[str, StrategySpec] = {
    s.key: s
    for s in (
        StrategySpec(
            key="trend_following",
            label="Trend following",
            description="Long when the fast moving average is above the slow one, short below; ATR stop.",
            parameters=(
                ParameterSpec("fast_period", int, 20, 2, 200, "bars in the fast moving average"),
                ParameterSpec("slow_period", int, 50, 3, 500, "bars in the slow moving average"),
                _ATR_PERIOD,
                ParameterSpec("stop_atr_multiple", float, 2.0, 0.5, 10.0, "stop distance in ATRs"),
            ),
            rules=(
                (
                    "must be smaller than slow_period.",
                    lambda p: p["fast_period"] < p["slow_period"],
                    "fast_period",
                ),
            ),
        ),
        StrategySpec(
            key="breakout",
            label="Breakout",
            description="Enters when price closes beyond the range of the last lookback bars; ATR stop.",
            parameters=(
                ParameterSpec("lookback_bars", int, 30, 5, 500, "bars that define the range"),
                ParameterSpec("breakout_buffer_ticks", int, 2, 0, 50, "ticks beyond the range before entering"),
                _ATR_PERIOD,
                ParameterSpec("stop_atr_multiple", float, 1.5, 0.5, 10.0, "stop distance in ATRs"),
            ),
        ),
        StrategySpec(
            key="mean_reversion",
            label="Mean reversion",
            description="Fades moves beyond entry_zscore standard deviations from the mean; exits near it.",
            parameters=(
                ParameterSpec("lookback_bars", int, 20, 5, 500, "bars in the mean and standard deviation"),
                ParameterSpec("entry_zscore", float, 2.0, 0.5, 5.0, "distance from the mean that opens a trade"),
                ParameterSpec("exit_zscore", float, 0.5, 0.0, 3.0, "distance from the mean that closes it"),
                _ATR_PERIOD,
                ParameterSpec("stop_atr_multiple", float, 2.5, 0.5, 10.0, "stop distance in ATRs"),
            ),
            rules=(
                (
                    "must be smaller than entry_zscore.",
                    lambda p: p["exit_zscore"] < p["entry_zscore"],
                    "exit_zscore",
                ),
            ),
        ),
    )
}


def strategy_for(key: Any) -> StrategySpec | None:
    return STRATEGIES.get(key) if isinstance(key, str) else None


# The instruments and bar timeframes a bot may use: the market app's (its contract specs, hours and
# provider symbols are what a tick needs).
INSTRUMENTS: dict[str, str] = {root: spec.name for root, spec in market_instruments.INSTRUMENTS.items()}

TIMEFRAMES: tuple[str, ...] = market_instruments.TIMEFRAMES


@dataclass(frozen=True)
class RiskLimitSpec:
    name: str
    kind: type
    help: str
    required: bool = True


# Each must be a positive number. The required ones must be set before a bot may go LIVE; an
# optional one binds once set (apps/trading/risk.py reads them all).
RISK_LIMITS: dict[str, RiskLimitSpec] = {
    s.name: s
    for s in (
        RiskLimitSpec("max_position_contracts", int, "largest open position, in contracts"),
        RiskLimitSpec("max_daily_loss", float, "realized + unrealized loss in USD that stops the day"),
        RiskLimitSpec("max_orders_per_day", int, "orders sent per trading day"),
        RiskLimitSpec(
            "max_order_notional",
            float,
            "largest order's notional in USD (quantity × price × point value); optional",
            required=False,
        ),
    )
}
REQUIRED_RISK_LIMITS: tuple[str, ...] = tuple(name for name, spec in RISK_LIMITS.items() if spec.required)


def risk_limit_problem(spec: RiskLimitSpec, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"must be a number ({spec.kind.__name__})."
    if spec.kind is int and not float(value).is_integer():
        return "must be a whole number."
    if value <= 0:
        return "must be a positive number."
    return None


def coerce_risk_limit(spec: RiskLimitSpec, value: int | float) -> int | float:
    return int(value) if spec.kind is int else float(value)


def missing_risk_limits(risk_limits: dict[str, Any]) -> list[str]:
    """Required keys that are absent, and any key that is not a positive number."""
    return [
        name
        for name, spec in RISK_LIMITS.items()
        if (spec.required and name not in risk_limits)
        or (name in risk_limits and risk_limit_problem(spec, risk_limits[name]) is not None)
    ]


def parameter_errors(strategy: StrategySpec, parameters: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(normalized parameters, errors by parameter name) for a complete parameter set."""
    clean: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, value in parameters.items():
        spec = strategy.parameter(name)
        if spec is None:
            known = ", ".join(p.name for p in strategy.parameters)
            errors[name] = [f"is not a parameter of {strategy.key} (known: {known})."]
        elif (problem := spec.problem(value)) is not None:
            errors[name] = [problem]
        else:
            clean[name] = spec.coerce(value)
    missing = [p.name for p in strategy.parameters if p.name not in parameters]
    for name in missing:
        errors[name] = ["is required."]
    if not errors:
        for message, holds, blamed in strategy.rules:
            if not holds(clean):
                errors.setdefault(blamed, []).append(message)
    return clean, errors


def risk_limit_errors(risk_limits: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """(normalized limits, errors by key). Limits may be partial here; LIVE needs them all."""
    clean: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, value in risk_limits.items():
        spec = RISK_LIMITS.get(name)
        if spec is None:
            errors[name] = [f"is not a risk limit (known: {', '.join(RISK_LIMITS)})."]
        elif (problem := risk_limit_problem(spec, value)) is not None:
            errors[name] = [problem]
        else:
            clean[name] = coerce_risk_limit(spec, value)
    return clean, errors


# What a strategy can send in a trading day, which is what max_orders_per_day must allow for it:
# at most one decision order per closed bar (an entry, a reversal or an exit; a HOLD sends none),
# and one protective stop for each such order whose fill opens a position. A stop's fill and the
# cancel of the stop a reversal replaces send no new order. So 2 orders per bar, times the bars of
# a full CME trade date (23 hours: 17:00 CT to 16:00 CT): 92 at 15m, 276 at 5m, 1380 at 1m.
# A limit below that binds on the strategy's own ordinary days (the trend bot's former 12 did): a
# refused entry, or a refusal count that halts the bot (RELIABILITY R6). A limit at it binds only
# when a bot sends more than its strategy can, i.e. a runaway; the day's loss limit, the position
# limit and the burst limit (6 a minute) bound an ordinary bad day. tests/bots/test_starter_limits.py
# derives the figures from the market calendar and runs the strategies over generated days.
ORDERS_PER_BAR = 2


def max_orders_per_day_for(instrument: str, timeframe: str) -> int:
    """ORDERS_PER_BAR × the bars of one full trade date of `instrument` at `timeframe` (an ordinary
    Tuesday's, from apps.market.hours: holidays and early closes only have fewer)."""
    tf = market_instruments.TIMEFRAME_SECONDS[timeframe]
    day = datetime(2025, 12, 16, 18, 0, tzinfo=UTC)  # an ordinary Tuesday, no holiday around it
    start = int(market_instruments.trade_date_start(day).timestamp())
    return ORDERS_PER_BAR * len(hours.bar_slots_between(instrument, tf, start, start + 86400))


# The curated first bots (POST /api/bots/starter-pack): LAB, on the simulated venue, small limits.
# max_orders_per_day is max_orders_per_day_for(instrument, timeframe), written out (the calendar it
# is computed from takes a moment to build; a test holds the two equal). Bots created from an older
# pack keep the limits they were created with: a bot's limits change only through an edit, which
# versions its config and is audited (PATCH /api/bots/{id} with new risk_limits).
STARTER_PACK: tuple[dict[str, Any], ...] = (
    {
        "name": "MES trend following",
        "strategy_key": "trend_following",
        "instrument": "MES",
        "timeframe": "15m",
        "parameters": {"fast_period": 20, "slow_period": 50, "atr_period": 14, "stop_atr_multiple": 2.0},
        "risk_limits": {"max_position_contracts": 1, "max_daily_loss": 250.0, "max_orders_per_day": 184},
    },
    {
        "name": "MNQ breakout",
        "strategy_key": "breakout",
        "instrument": "MNQ",
        "timeframe": "5m",
        "parameters": {"lookback_bars": 30, "breakout_buffer_ticks": 2, "atr_period": 14, "stop_atr_multiple": 1.5},
        "risk_limits": {"max_position_contracts": 1, "max_daily_loss": 300.0, "max_orders_per_day": 552},
    },
    {
        "name": "MES mean reversion",
        "strategy_key": "mean_reversion",
        "instrument": "MES",
        "timeframe": "5m",
        "parameters": {
            "lookback_bars": 20,
            "entry_zscore": 2.0,
            "exit_zscore": 0.5,
            "atr_period": 14,
            "stop_atr_multiple": 2.5,
        },
        "risk_limits": {"max_position_contracts": 1, "max_daily_loss": 200.0, "max_orders_per_day": 552},
    },
)


def label(key: str) -> str:
    """The strategy's name for people (its key when the catalogue no longer has it)."""
    spec = strategy_for(key)
    return spec.label if spec is not None else key
