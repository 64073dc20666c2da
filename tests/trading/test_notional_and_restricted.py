"""The notional limits (RELIABILITY R2: per order, per account) and the restricted list (R13)
through the execution path against PostgreSQL: where the limits are set (a bot's risk limits via
the API, the account cap and the restricted list in the admin, audited), what the engine reads
(other bots' exposure priced from stored bars), and that a refused order is a REJECTED_RISK row
with its reason code that never reaches the venue."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D
from typing import Any

import pytest

from apps.bots.models import Bot
from apps.market.models import Bar
from apps.telemetry.models import AuditEvent
from apps.trading import services
from apps.trading.models import AccountRisk, Order, Position, RestrictedInstrument
from tests.bots.factories import BotFactory
from tests.factories import UserFactory
from tests.trading.plans import BAR, order_plan

pytestmark = pytest.mark.django_db

LIMITS = {"max_position_contracts": 4, "max_daily_loss": 500, "max_orders_per_day": 50}


class SpyBroker:
    provider = "tradovate"

    def __init__(self) -> None:
        self.placed: list[Any] = []

    def place_order(self, request: Any) -> Any:  # pragma: no cover - a refused order never gets here
        self.placed.append(request)
        raise AssertionError("a refused order reached the broker")


def _plan(**changes: Any) -> services.OrderPlan:
    return order_plan(**{**{"risk_limits": LIMITS, "trace_id": "t-notional"}, **changes})


def _refused(order: Order, code: str) -> None:
    assert (order.status, order.reason_code) == ("REJECTED_RISK", code), (order.status, order.reason_code, order.detail)
    assert AuditEvent.objects.filter(action="order.rejected_risk", after__reason_code=code).exists()


@pytest.mark.parametrize("side", ["BUY", "SELL"])
def test_a_bots_max_order_notional_refuses_a_larger_order_on_either_side_and_nothing_is_sent(side: str) -> None:
    limits = {**LIMITS, "max_order_notional": 40_000}  # one MES at 5000 is 25,000 USD
    broker = SpyBroker()
    AccountRisk.objects.create(venue="tradovate", account="A1", max_contracts=10)
    order = services.order_submit(
        _plan(
            mode="LIVE", venue="tradovate", account="A1", contract="MESZ5", side=side, quantity=2, risk_limits=limits
        ),
        killed=lambda: False,
        venue=broker,  # type: ignore[arg-type]
    ).order
    _refused(order, "RISK_MAX_NOTIONAL")
    assert "50,000.00 USD exceeds max_order_notional 40,000.00 USD" in order.detail and broker.placed == []
    within = services.order_submit(_plan(leg="entry-2", risk_limits=limits), killed=lambda: False).order
    assert within.status == "WORKING"


def test_a_notional_limit_without_a_reference_price_fails_closed() -> None:
    limits = {**LIMITS, "max_order_notional": 1_000_000}
    order = services.order_submit(_plan(risk_limits=limits, reference_price=None), killed=lambda: False).order
    _refused(order, "RISK_NOTIONAL_UNKNOWN")  # the first check that failed; the price collar fails too


def test_the_restricted_list_refuses_opening_but_not_closing_and_applies_where_it_is_scoped() -> None:
    RestrictedInstrument.objects.create(instrument="MES", venue="sim", account="", reason="exchange outage review")
    RestrictedInstrument.objects.create(instrument="MNQ", venue="tradovate", account="OTHER", reason="not here")
    order = services.order_submit(_plan(), killed=lambda: False).order
    _refused(order, "RISK_RESTRICTED")
    assert "exchange outage review" in order.detail
    assert services.order_submit(
        _plan(instrument="MNQ", contract="MNQ.c.0", leg="mnq"), killed=lambda: False
    ).order.status == ("WORKING")  # restricted only on another venue's account
    # A position opened before the restriction can still be closed.
    Position.objects.create(bot_id=1, venue="sim", account="", instrument="MES", quantity=1, avg_price=D("5000"))
    exit_ = services.order_submit(_plan(side="SELL", leg="exit"), killed=lambda: False).order
    assert exit_.status == "WORKING", exit_.detail


def test_the_account_notional_cap_prices_other_bots_exposure_from_stored_bars_and_fails_closed_without() -> None:
    AccountRisk.objects.create(venue="sim", account="", max_contracts=100, max_notional=D("60000"))
    # Another bot on the account holds 2 MNQ; its price is only known from the bar store.
    Position.objects.create(bot_id=2, venue="sim", account="", instrument="MNQ", quantity=2, avg_price=D("21000"))
    unknown = services.order_submit(_plan(), killed=lambda: False).order
    _refused(unknown, "RISK_NOTIONAL_UNKNOWN")  # no MNQ price at all: never taken as 0
    fields = {"open": 1, "high": 22000, "low": 1, "volume": 1, "source": "csv", "fetched_at": BAR}
    Bar.objects.create(instrument="MNQ", timeframe="1m", ts=BAR - timedelta(minutes=1), close=D("21000"), **fields)
    # 2 MNQ × 21,000 × 2 = 84,000 USD already: over the cap with anything added.
    over = services.order_submit(_plan(leg="entry-2"), killed=lambda: False).order
    _refused(over, "RISK_ACCOUNT_NOTIONAL")
    assert "84,000.00 USD + 25,000.00 USD = 109,000.00 USD" in over.detail
    AccountRisk.objects.update(max_notional=D("110000"))
    assert services.order_submit(_plan(leg="entry-3"), killed=lambda: False).order.status == "WORKING"


def test_max_order_notional_is_a_bot_risk_limit_set_through_the_api(token_client: Any) -> None:
    bot = BotFactory()
    operator = token_client("operator")
    bad = operator.patch(f"/api/bots/{bot.pk}", {"risk_limits": {"max_order_notional": -1}}, format="json")
    assert bad.status_code == 400 and "max_order_notional" in bad.json()["fields"]["risk_limits"]
    done = operator.patch(f"/api/bots/{bot.pk}", {"risk_limits": {"max_order_notional": 30000}}, format="json")
    assert done.status_code == 200, done.json()
    assert done.json()["risk_limits"]["max_order_notional"] == 30000.0
    assert Bot.objects.get(pk=bot.pk).risk_limits["max_order_notional"] == 30000.0


def test_the_account_notional_cap_and_the_restricted_list_are_set_in_the_admin_and_audited(client: Any) -> None:
    client.force_login(UserFactory(is_staff=True, is_superuser=True, username="risk-officer"))
    added = client.post(
        "/admin/trading/accountrisk/add/",
        {"venue": "tradovate", "account": "A1", "max_contracts": 6, "max_notional": "150000"},
    )
    assert added.status_code == 302
    cap = AuditEvent.objects.get(action="trading.account_cap_set")
    assert D(cap.after["max_notional"]) == D("150000")
    assert AccountRisk.objects.get(account="A1").max_notional == D("150000")
    refused = client.post(
        "/admin/trading/accountrisk/add/", {"venue": "tradovate", "account": "A2", "max_notional": "-5"}
    )
    assert refused.status_code == 200 and not AccountRisk.objects.filter(account="A2").exists()
    restricted = client.post(
        "/admin/trading/restrictedinstrument/add/",
        {"instrument": "mes", "venue": "", "account": "", "reason": "compliance hold"},
    )
    assert restricted.status_code == 302
    row = RestrictedInstrument.objects.get()
    assert (row.instrument, row.created_by) == ("MES", "risk-officer")
    assert AuditEvent.objects.get(action="trading.instrument_restricted").after["reason"] == "compliance hold"
    client.post(f"/admin/trading/restrictedinstrument/{row.pk}/delete/", {"post": "yes"})
    assert not RestrictedInstrument.objects.exists()
    assert AuditEvent.objects.get(action="trading.instrument_unrestricted").before["instrument"] == "MES"
