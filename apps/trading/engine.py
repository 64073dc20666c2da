"""The bot's bar-by-bar state as one pure piece: position, working orders, protective stop, fills and
PnL, stepped over closed bars with a SIM runner's rules (SPEC §1.5, §9). No database, no clock, no
provider: a backtest runs it in memory over years of bars.

INTERFACE FIRST: the dataclasses and `run` below are the contract the backtests app builds on;
`run` is filled in by the next commit.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import numpy as np

from apps.trading.fills import FillModel
from apps.trading.risk import DEFAULT_POLICY, RiskPolicy


@dataclass(frozen=True)
class EngineConfig:
    strategy_key: str
    parameters: Mapping[str, Any]
    instrument: str  # root symbol (MES)
    tick_size: Decimal
    point_value: Decimal
    timeframe_seconds: int
    fill_model: FillModel = FillModel()
    risk_limits: Mapping[str, Any] | None = None  # None: no risk checks at all
    risk_policy: RiskPolicy = DEFAULT_POLICY
    account_limit_contracts: int | None = None
    initial_capital: Decimal = Decimal(10000)


@dataclass(frozen=True, slots=True)
class EngineFill:
    ts: datetime  # the open time of the bar the fill happened on
    side: str  # BUY | SELL
    quantity: int
    price: Decimal
    fee: Decimal
    slippage: Decimal  # USD, >= 0
    order_type: str  # MARKET | STOP
    decided_at: datetime  # the close the order works from


@dataclass(frozen=True, slots=True)
class EngineTrade:
    side: str  # LONG | SHORT
    quantity: int
    entry_ts: datetime
    entry_price: Decimal
    exit_ts: datetime
    exit_price: Decimal
    exit_reason: str  # STOP | SIGNAL | END
    pnl: Decimal  # USD, net of its fees
    fees: Decimal
    slippage: Decimal


@dataclass(frozen=True, slots=True)
class DecisionRecord:
    bar_ts: datetime  # the close decided at
    outcome: str  # TRADE | NO_TRADE
    stage: str  # "" for TRADE; market_hours | strategy | risk
    reason_code: str


@dataclass
class EngineResult:
    fills: list[EngineFill]
    trades: list[EngineTrade]
    decisions: dict[str, dict[str, int]]  # {"TRADE": {code: n}, "NO_TRADE": {code: n}}
    bars: int  # bars in the window (decided or closed)
    close_ts: np.ndarray  # int64 epoch seconds: each window bar's close
    equity: np.ndarray  # float64 USD at each window bar's close (capital + realized - fees + open PnL)
    position: np.ndarray  # int64 signed contracts held at each window bar's close
    decision_log: list[DecisionRecord] | None = None
    notes: list[str] = field(default_factory=list)


class Cancelled(Exception):
    """`cancelled()` answered True: the run stopped where it was."""


def run(
    bars: Any,  # apps.market.arrays.BarArrays: the warm-up bars before `start`, then the window
    config: EngineConfig,
    *,
    start: datetime,
    record_decisions: bool = False,
    progress: Callable[[float], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> EngineResult:
    raise NotImplementedError
