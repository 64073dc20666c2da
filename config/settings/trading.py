"""Trading: the SIM venue's fill model and account cap, and the engine-wide risk policy."""

from __future__ import annotations

from config.env import env

# The SIM fill model (apps/trading/fills.py): market and stop orders fill this many ticks against
# the order, and each contract pays this commission (USD per side). A model, not a broker's bill.
TRADING_SIM_SLIPPAGE_TICKS = env.int("TRADING_SIM_SLIPPAGE_TICKS", default=1)
TRADING_SIM_COMMISSION_PER_CONTRACT = env.str("TRADING_SIM_COMMISSION_PER_CONTRACT", default="0.85")
# The aggregate cap of a SIM account across its bots (RELIABILITY R5). A broker account has no
# default: an admin sets its cap, and until then its orders are refused (RISK_LIMIT_MISSING).
TRADING_SIM_ACCOUNT_MAX_CONTRACTS = env.int("TRADING_SIM_ACCOUNT_MAX_CONTRACTS", default=100)
# Overrides of apps.trading.risk.RiskPolicy fields (burst limit, duplicate window, collar...).
TRADING_RISK_POLICY: dict[str, object] = {}
# Reconcile of an order that never got a broker id (PENDING_SUBMIT after a crash, UNKNOWN after a
# timeout) that the broker does not list (RELIABILITY J3). It may still be on its way: it is closed
# as never received (REJECTED NOT_AT_BROKER) only when it was sent (or, never sent, created) more
# than TRADING_INFLIGHT_WINDOW_SECONDS ago AND the broker missed it on at least
# TRADING_NOT_AT_BROKER_LOOKUPS lookups, each at least TRADING_NOT_AT_BROKER_LOOKUP_SPACING_SECONDS
# after the previous one that counted. Until then it stays open (UNKNOWN) and the report is PENDING.
TRADING_INFLIGHT_WINDOW_SECONDS = env.float("TRADING_INFLIGHT_WINDOW_SECONDS", default=60.0)
TRADING_NOT_AT_BROKER_LOOKUPS = env.int("TRADING_NOT_AT_BROKER_LOOKUPS", default=2)
TRADING_NOT_AT_BROKER_LOOKUP_SPACING_SECONDS = env.float("TRADING_NOT_AT_BROKER_LOOKUP_SPACING_SECONDS", default=5.0)
