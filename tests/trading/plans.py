"""One order plan for the execution tests: an entry of 1 MES on the SIM venue, decided at the close
of a 10:00 CT bar, with its reference price fresh. Tests change what they are about."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from apps.trading import services

BAR = datetime(2025, 12, 16, 16, 0, tzinfo=UTC)  # the close of the decided bar (10:00 CT)
LIMITS = {"max_position_contracts": 2, "max_daily_loss": 500, "max_orders_per_day": 50}


def order_plan(**changes: Any) -> services.OrderPlan:
    plan = services.OrderPlan(
        bot_id=1,
        generation=1,
        mode="SIM",
        venue="sim",
        account="",
        instrument="MES",
        contract="MES.c.0",
        bar_ts=BAR,
        leg="entry",
        side="BUY",
        quantity=1,
        risk_limits=LIMITS,
        reference_price=Decimal("5000.00"),
        reference_price_at=BAR,
        trading_day_start=BAR - timedelta(hours=17),
        now=BAR + timedelta(seconds=3),
        trace_id="t-exec",
    )
    return replace(plan, **changes)
