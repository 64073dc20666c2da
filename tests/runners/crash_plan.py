"""The order plan of the crash test, shared by the test and the process it kills."""

from __future__ import annotations

from datetime import timedelta

from apps.trading import services
from tests.trading.plans import BAR, order_plan


def plan(bot_id: int) -> services.OrderPlan:
    return order_plan(
        bot_id=bot_id,
        mode="LIVE",
        venue="tradovate",
        account="DEMO123457",
        contract="MESZ5",
        risk_limits={"max_position_contracts": 1, "max_daily_loss": 250, "max_orders_per_day": 10},
        now=BAR + timedelta(seconds=2),
        trace_id="t-crash",
    )
