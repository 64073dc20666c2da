"""The global kill latch at the level it must hold: the risk engine and the send path refuse every
new order of every bot while kill-all is engaged, a bot that was never killed included (K1, K2)."""

from __future__ import annotations

import threading
from decimal import Decimal as D
from typing import Any

import pytest
from django.db import connection

from apps.integrations.orders import OrderRequest, PlacedOrder
from apps.trading import kill_switch, services
from apps.trading.models import AccountRisk, Order, Position
from tests.trading.plans import order_plan

NEW_BOT = 77  # a bot that was never killed on its own


def _plan(**changes: Any) -> services.OrderPlan:
    return order_plan(**{**{"bot_id": NEW_BOT, "trace_id": "t-kill-all"}, **changes})


def _not_killed() -> bool:
    return False


class Broker:
    provider = "tradovate"

    def __init__(self) -> None:
        self.placed: list[OrderRequest] = []

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        self.placed.append(request)
        return PlacedOrder(broker_order_id=f"B{len(self.placed)}")

    def cancel_order(self, *, account: str, broker_order_id: str) -> None:
        pass


@pytest.mark.django_db
def test_risk_refuses_every_new_order_while_kill_all_is_engaged() -> None:
    assert services.order_submit(_plan(leg="before"), killed=_not_killed).order.status == Order.Status.WORKING
    kill_switch.kill_all_engage(actor=None, actor_label="alice", reason="exchange halt")

    refused = services.order_submit(_plan(leg="after"), killed=_not_killed)
    order = refused.order
    assert order.status == Order.Status.REJECTED_RISK and order.reason_code == "RISK_KILLED"
    # The reject names the scope and who enforced it (K1).
    assert "kill-all (scope: global)" in order.detail and "alice" in order.detail and "exchange halt" in order.detail
    assert refused.verdict is not None and not refused.verdict.result("kill_latch").passed


@pytest.mark.django_db
def test_a_reducing_flatten_still_passes_the_global_latch() -> None:
    Position.objects.create(bot_id=NEW_BOT, venue="sim", instrument="MES", quantity=1, avg_price=D("5000"))
    kill_switch.kill_all_engage(actor=None, actor_label="alice", reason="exchange halt")
    flatten = services.order_submit(_plan(leg="flatten", side="SELL", origin="FLATTEN"), killed=_not_killed)
    assert flatten.order.status == Order.Status.WORKING
    more = services.order_submit(_plan(leg="add", side="BUY"), killed=_not_killed)
    assert more.order.reason_code == "RISK_KILLED"


@pytest.mark.django_db
def test_after_release_orders_pass_again() -> None:
    from apps.accounts.services import user_set_role
    from apps.core.roles import Role
    from tests.factories import UserFactory

    kill_switch.kill_all_engage(actor=None, actor_label="alice", reason="exchange halt")
    person = UserFactory()
    user_set_role(user=person, role=Role.OPERATOR)
    kill_switch.kill_all_release(actor=person, reason="venue back")
    assert services.order_submit(_plan(), killed=_not_killed).order.status == Order.Status.WORKING


def _engage_from_another_connection() -> None:
    try:
        kill_switch.kill_all_engage(actor=None, actor_label="desk", reason="engaged while the order was in flight")
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_the_send_path_refuses_when_kill_all_lands_between_risk_and_send() -> None:
    AccountRisk.objects.create(venue="tradovate", account="", max_contracts=10)
    broker = Broker()
    reads = []

    def killed() -> bool:
        reads.append(True)
        if len(reads) == 2:  # the send's own read: kill-all is committed now, by someone else
            other = threading.Thread(target=_engage_from_another_connection)
            other.start()
            other.join(timeout=10)
            assert not other.is_alive()
        return False  # the bot itself is never killed

    sub = services.order_submit(_plan(mode="LIVE", venue="tradovate"), killed=killed, venue=broker)
    assert len(reads) == 2 and broker.placed == []
    assert sub.order.status == Order.Status.CANCELLED and sub.order.reason_code == "RISK_KILLED"
    assert "kill-all (scope: global)" in sub.order.detail and "desk" in sub.order.detail
