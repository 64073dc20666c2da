"""Backtests: the thresholds that classify a backtest's result (apps/backtests/metrics.py).

A backtest is PROMOTABLE when every threshold passes, MARGINAL when only the sample-size ones fail
(too few trades or trading days: the result may be real, there is not enough of it) or a figure a
threshold needs cannot be computed, and REJECTED when the result itself fails: a profit factor or
an expectancy below the minimum, or a drawdown deeper than the limit. A loss is always REJECTED:
the minimum profit factor cannot be set below 1 nor the minimum expectancy below 0.

- min_trades: closed trades (an exit at the window's end counts).
- min_trading_days: CME trade dates with at least one bar in the window.
- min_profit_factor: gross profit / gross loss of the trades (net of fees), at least this.
- min_expectancy: net USD per trade; it must be above 0 and at least this.
- max_drawdown_pct: the largest fall of the close-by-close equity from its running peak, in
  percent of the initial capital, at most this.
"""

from __future__ import annotations

from config.env import env

BACKTEST_CLASSIFICATION: dict[str, object] = {
    "min_trades": env.int("BACKTEST_MIN_TRADES", default=30),
    "min_trading_days": env.int("BACKTEST_MIN_TRADING_DAYS", default=20),
    "min_profit_factor": env.str("BACKTEST_MIN_PROFIT_FACTOR", default="1.2"),
    "min_expectancy": env.str("BACKTEST_MIN_EXPECTANCY", default="0"),
    "max_drawdown_pct": env.str("BACKTEST_MAX_DRAWDOWN_PCT", default="20"),
}

# The LAB→PAPER gate (apps/bots/selectors.py): it passes on a SUCCEEDED backtest of the bot's
# current config (config version, strategy, parameters, instrument, timeframe, risk limits; costs
# at least the SIM fill model's) classified PROMOTABLE, covering at least this many CME trading
# days and finished at most this many days ago.
BACKTEST_GATE_MIN_TRADING_DAYS = env.int(
    "BACKTEST_GATE_MIN_TRADING_DAYS", default=int(BACKTEST_CLASSIFICATION["min_trading_days"])
)
BACKTEST_GATE_MAX_AGE_DAYS = env.int("BACKTEST_GATE_MAX_AGE_DAYS", default=30)
