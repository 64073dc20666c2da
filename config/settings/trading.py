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
