"""The order plan of the crash test, shared by the test and the process it kills."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from apps.trading import services

BAR = datetime(2025, 12, 16, 16, 0, tzinfo=UTC)


def plan(bot_id: int) -> services.OrderPlan:
    return services.OrderPlan(
        bot_id=bot_id,
        generation=1,
        mode="LIVE",
        venue="tradovate",
        account="DEMO123457",
        instrument="MES",
        contract="MESZ5",
        bar_ts=BAR,
        leg="entry",
        side="BUY",
        quantity=1,
        risk_limits={"max_position_contracts": 1, "max_daily_loss": 250, "max_orders_per_day": 10},
        reference_price=Decimal("5000.00"),
        reference_price_at=BAR,
        trading_day_start=BAR - timedelta(hours=17),
        now=BAR + timedelta(seconds=2),
        trace_id="t-crash",
    )
