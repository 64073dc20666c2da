"""Tradovate order flows against the stub venue (PROVIDERS.md §1, apps/integrations/orders.py):
accepted / rejected / unknown outcomes, finding our order by clOrdId, cancel, signed positions,
flatten, metering, and never a second order for one intent."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from apps.integrations.orders import (
    CANCELLED,
    FILLED,
    WORKING,
    BrokerPosition,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderRequest,
)
from apps.integrations.tradovate import client as tradovate
from apps.integrations.tradovate.client import TradovateClient
from apps.telemetry.models import IntegrationUsageEvent
from tests.integrations.helpers import failure, usage_events
from tests.stubs import tradovate as stubs

pytestmark = pytest.mark.django_db

ACCOUNT = "DEMO123456"
ACCOUNT_ID = 123456
MES = 2424242  # MESZ5, where the stub account starts short 2
PLACE = "/order/placeorder"


def client() -> TradovateClient:
    return TradovateClient.for_bot()


def order(cid: str = "bot7-20251104T1430-1", **changes: Any) -> OrderRequest:
    values: dict[str, Any] = {
        "client_order_id": cid,
        "account": ACCOUNT,
        "symbol": "MESZ5",
        "side": "BUY",
        "quantity": 1,
        "order_type": "MARKET",
    }
    return OrderRequest(**{**values, **changes})


def events() -> list[IntegrationUsageEvent]:
    return usage_events("tradovate")


def place_events() -> list[tuple[str, str]]:
    return [(e.status, e.error_code) for e in events() if e.operation == "order.place"]


# -- accepted ------------------------------------------------------------------------------------


def test_a_market_order_is_placed_with_the_documented_body_and_found_by_its_client_id(
    stub: stubs.TradovateStub,
) -> None:
    placed = client().place_order(order())

    (booked,) = stub.orders.values()
    assert placed.broker_order_id == str(booked["id"])
    assert stub.placed == [
        {
            "accountSpec": ACCOUNT,
            "accountId": ACCOUNT_ID,
            "clOrdId": "bot7-20251104T1430-1",
            "action": "Buy",
            "symbol": "MESZ5",
            "orderQty": 1,
            "orderType": "Market",
            "timeInForce": "Day",
            "isAutomated": True,
        }
    ]
    found = client().find_order(account=ACCOUNT, client_order_id="bot7-20251104T1430-1")
    assert found is not None
    assert (found.broker_order_id, found.client_order_id, found.symbol, found.side) == (
        placed.broker_order_id,
        "bot7-20251104T1430-1",
        "MESZ5",
        "BUY",
    )
    assert (found.status, found.quantity, found.filled_quantity, found.avg_fill_price) == (
        FILLED,
        1,
        1,
        Decimal("5000.25"),
    )
    assert [(f.quantity, f.price) for f in found.fills] == [(1, Decimal("5000.25"))]


def test_limit_and_stop_orders_carry_their_price_and_stay_working(stub: stubs.TradovateStub) -> None:
    client().place_order(order("lim-1", order_type="LIMIT", limit_price=Decimal("4990.50"), side="SELL"))
    client().place_order(order("stp-1", order_type="STOP", stop_price=Decimal("5010.75")))

    limit, stop = stub.placed
    assert (limit["orderType"], limit["price"], limit["action"], "stopPrice" in limit) == (
        "Limit",
        4990.5,
        "Sell",
        False,
    )
    assert (stop["orderType"], stop["stopPrice"], "price" in stop) == ("Stop", 5010.75, False)
    found = client().find_order(account=ACCOUNT, client_order_id="lim-1")
    assert found is not None and (found.status, found.filled_quantity, found.avg_fill_price) == (WORKING, 0, None)
    assert len(stub.working()) == 2


def test_the_account_may_be_given_by_its_numeric_id_and_is_resolved_once(stub: stubs.TradovateStub) -> None:
    client().place_order(order("a-1", account=str(ACCOUNT_ID)))
    client().place_order(order("a-2", account=str(ACCOUNT_ID)))

    assert [b["accountSpec"] for b in stub.placed] == [ACCOUNT, ACCOUNT]
    assert len(stub.calls("/account/list")) == 1


def test_list_orders_returns_every_order_of_the_account_with_our_client_ids(stub: stubs.TradovateStub) -> None:
    client().place_order(order("l-1"))
    client().place_order(order("l-2", order_type="LIMIT", limit_price=Decimal("4000")))

    orders = client().list_orders(account=ACCOUNT)

    assert [(o.client_order_id, o.status) for o in orders] == [("l-1", FILLED), ("l-2", WORKING)]
    assert client().list_orders(account="DEMO123457") == []


# -- refused before sending: not sent ------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"order_type": "LIMIT"},  # no limit price
        {"order_type": "MARKET", "limit_price": Decimal("1")},
        {"quantity": 0},
        {"side": "LONG"},
        {"client_order_id": "x" * 65},  # clOrdId is at most 64 characters
    ],
)
def test_a_malformed_order_is_refused_before_anything_is_sent(stub: stubs.TradovateStub, changes: dict) -> None:
    error = failure(lambda: client().place_order(order(**changes)))
    assert error.error_code == "INTEGRATION_REQUEST_REJECTED"
    assert stub.requests == []


def test_an_unknown_account_is_refused_without_a_place_call(stub: stubs.TradovateStub) -> None:
    error = failure(lambda: client().place_order(order(account="DEMO999")))
    assert error.error_code == "INTEGRATION_REQUEST_REJECTED"
    assert not isinstance(error, OrderOutcomeUnknown | OrderRejected)
    assert stub.calls(PLACE) == []


def test_a_failed_sign_in_means_the_order_was_not_sent(stub: stubs.TradovateStub) -> None:
    stub.mode = "bad_key"
    error = failure(lambda: client().place_order(order()))
    assert error.error_code == "INTEGRATION_AUTH_FAILED"
    assert stub.calls(PLACE) == [] and stub.placed == []


def test_a_sign_in_that_times_out_before_the_order_means_it_was_not_sent(stub: stubs.TradovateStub) -> None:
    client().list_orders(account=ACCOUNT)  # the account is resolved
    tradovate._tokens.clear()  # the next call signs in first
    stub.mode = "timeout"  # every answer stalls: the sign-in times out after it was sent

    error = failure(lambda: client().place_order(order()))

    assert error.error_code == "INTEGRATION_TIMEOUT"
    assert not isinstance(error, OrderOutcomeUnknown)
    assert stub.calls(PLACE) == []
    stub.mode = "ok"
    client().place_order(order())  # not sent the first time, so it may be sent now


@pytest.mark.parametrize(("mode", "status"), [("rate_limit", 429), ("locked_423", 423)])
def test_a_rate_limit_means_the_order_was_not_taken(stub: stubs.TradovateStub, mode: str, status: int) -> None:
    client().list_orders(account=ACCOUNT)
    stub.mode = mode

    error = failure(lambda: client().place_order(order()))

    assert (error.error_code, error.http_status) == ("INTEGRATION_RATE_LIMITED", status)
    assert stub.placed == [] and len(stub.calls(PLACE)) == 1


# -- rejected ------------------------------------------------------------------------------------


def test_a_refusal_in_a_200_is_a_rejection_and_nothing_is_working(stub: stubs.TradovateStub) -> None:
    stub.mode = "reject"

    error = failure(lambda: client().place_order(order()))

    assert isinstance(error, OrderRejected)
    assert (error.error_code, error.http_status) == ("ORDER_REJECTED", 200)
    assert "MaxPosLimitReached" in error.message and "Max position limit" in error.extra["broker_reason"]
    assert stub.orders == {} and len(stub.placed) == 1
    stub.mode = "ok"
    assert client().find_order(account=ACCOUNT, client_order_id=order().client_order_id) is None
    assert place_events() == [("error", "ORDER_REJECTED")]


def test_a_documented_refusal_of_the_order_itself_is_a_rejection(stub: stubs.TradovateStub) -> None:
    error = failure(lambda: client().place_order(order(symbol="ZZZZ9")))
    assert isinstance(error, OrderRejected)
    assert "InvalidContract" in error.message
    assert stub.orders == {}


# -- unknown: sent, no usable answer -------------------------------------------------------------


def test_a_timeout_after_the_venue_accepted_is_unknown_and_reconcile_finds_the_one_order(
    stub: stubs.TradovateStub,
) -> None:
    client().list_orders(account=ACCOUNT)
    stub.mode = "timeout_after_accept"

    error = failure(lambda: client().place_order(order()))

    assert isinstance(error, OrderOutcomeUnknown)
    assert error.error_code == "ORDER_STATE_UNKNOWN"
    assert "Do not resend" in error.suggested_fix
    assert place_events() == [("error", "INTEGRATION_TIMEOUT")]
    # The reconcile path: the venue holds exactly one order, and find_order finds it by clOrdId.
    found = client().find_order(account=ACCOUNT, client_order_id=order().client_order_id)
    assert found is not None and found.status == FILLED
    assert len(stub.placed) == 1 and list(stub.orders) == [int(found.broker_order_id)]


def test_an_order_lost_before_the_venue_is_unknown_and_then_not_found(stub: stubs.TradovateStub) -> None:
    stub.mode = "lost"
    error = failure(lambda: client().place_order(order()))
    assert isinstance(error, OrderOutcomeUnknown)
    assert client().find_order(account=ACCOUNT, client_order_id=order().client_order_id) is None
    assert len(stub.placed) == 1 and stub.orders == {}


@pytest.mark.parametrize(("mode", "status"), [("server_error", 500), ("malformed", 200)])
def test_a_5xx_or_an_unreadable_200_is_unknown(stub: stubs.TradovateStub, mode: str, status: int) -> None:
    client().list_orders(account=ACCOUNT)
    stub.mode = mode

    error = failure(lambda: client().place_order(order()))

    assert isinstance(error, OrderOutcomeUnknown) and error.http_status == status
    assert place_events() == [("error", "ORDER_STATE_UNKNOWN")]
    stub.mode = "ok"
    found = client().find_order(account=ACCOUNT, client_order_id=order().client_order_id)
    assert found is not None and len(stub.orders) == 1


def test_a_penalty_ticket_on_an_order_is_unknown_and_never_resent(
    stub: stubs.TradovateStub, waits: list[float]
) -> None:
    client().list_orders(account=ACCOUNT)
    stub.mode = "p_ticket_order"

    error = failure(lambda: client().place_order(order()))

    assert isinstance(error, OrderOutcomeUnknown)
    assert waits == [] and len(stub.calls(PLACE)) == 1 and len(stub.placed) == 1


def test_a_401_on_the_order_signs_in_again_and_sends_it_once(stub: stubs.TradovateStub) -> None:
    client().list_orders(account=ACCOUNT)
    stub.revoke_tokens()  # e.g. another sign-in ended the session: the 401 is a refusal, not an order

    client().place_order(order())

    first, second = stub.calls(PLACE)
    assert first.header("authorization") == f"Bearer {stub.tokens[0]}"
    assert second.header("authorization") == f"Bearer {stub.tokens[1]}"
    assert len(stub.placed) == 1 and len(stub.orders) == 1


# -- find_order never guesses ---------------------------------------------------------------------


def test_an_order_state_tradovate_calls_unknown_is_not_guessed(stub: stubs.TradovateStub) -> None:
    placed = client().place_order(order(order_type="LIMIT", limit_price=Decimal("4000")))
    stub.orders[int(placed.broker_order_id)]["ordStatus"] = "Unknown"

    error = failure(lambda: client().find_order(account=ACCOUNT, client_order_id=order().client_order_id))

    assert isinstance(error, OrderOutcomeUnknown)


def test_a_failed_lookup_raises_instead_of_answering_none(stub: stubs.TradovateStub) -> None:
    client().place_order(order())
    stub.mode = "error_text"
    error = failure(lambda: client().find_order(account=ACCOUNT, client_order_id=order().client_order_id))
    assert error.error_code == "INTEGRATION_REQUEST_REJECTED"


# -- cancel ---------------------------------------------------------------------------------------


def test_cancel_sends_the_order_id_and_the_order_is_cancelled(stub: stubs.TradovateStub) -> None:
    placed = client().place_order(order(order_type="LIMIT", limit_price=Decimal("4000")))

    client().cancel_order(account=ACCOUNT, broker_order_id=placed.broker_order_id)

    assert stub.calls("/order/cancelorder")[0].json() == {"orderId": int(placed.broker_order_id), "isAutomated": True}
    found = client().find_order(account=ACCOUNT, client_order_id=order().client_order_id)
    assert found is not None and found.status == CANCELLED
    assert stub.working() == []


# -- positions and flatten ------------------------------------------------------------------------


def test_positions_are_signed_and_named_by_symbol_and_follow_fills(stub: stubs.TradovateStub) -> None:
    assert client().positions(account=ACCOUNT) == [BrokerPosition("MESZ5", -2, Decimal("4801.25"))]

    client().place_order(order("p-1", symbol="MNQZ5", quantity=3))
    client().place_order(order("p-2", symbol="MESZ5", quantity=1))

    positions = {p.symbol: p for p in client().positions(account=ACCOUNT)}
    assert (positions["MNQZ5"].quantity, positions["MNQZ5"].avg_price) == (3, Decimal("5000.25"))
    assert positions["MESZ5"].quantity == -1
    assert client().positions(account="DEMO123457") == []


def test_flatten_liquidates_the_contract_the_documented_way(stub: stubs.TradovateStub) -> None:
    client().place_order(order("w-1", order_type="LIMIT", limit_price=Decimal("4000")))

    client().flatten(account=ACCOUNT, symbol="MESZ5")

    assert stub.calls("/contract/find")[0].query == {"name": ["MESZ5"]}
    assert stub.calls("/order/liquidateposition")[0].json() == {
        "accountId": ACCOUNT_ID,
        "contractId": MES,
        "admin": False,
        "isAutomated": True,
    }
    assert stub.net_position(ACCOUNT_ID, MES) == 0
    assert stub.working() == []
    assert client().positions(account=ACCOUNT) == []
    client().flatten(account=ACCOUNT, symbol="MESZ5")  # already flat: nothing to do, no error


def test_a_flatten_without_an_answer_is_unknown_and_not_resent(stub: stubs.TradovateStub) -> None:
    stub.mode = "timeout_after_accept"
    error = failure(lambda: client().flatten(account=ACCOUNT, symbol="MESZ5"))
    assert isinstance(error, OrderOutcomeUnknown)
    assert len(stub.calls("/order/liquidateposition")) == 1


def test_flatten_of_an_unknown_symbol_sends_nothing(stub: stubs.TradovateStub) -> None:
    error = failure(lambda: client().flatten(account=ACCOUNT, symbol="ZZZZ9"))
    assert error.error_code == "INTEGRATION_REQUEST_REJECTED"
    assert stub.calls("/order/liquidateposition") == []


# -- metering and secrets -------------------------------------------------------------------------


def test_every_call_is_metered_under_its_operation(stub: stubs.TradovateStub) -> None:
    placed = client().place_order(order(order_type="LIMIT", limit_price=Decimal("4000")))
    client().find_order(account=ACCOUNT, client_order_id=order().client_order_id)
    client().cancel_order(account=ACCOUNT, broker_order_id=placed.broker_order_id)
    client().positions(account=ACCOUNT)
    client().flatten(account=ACCOUNT, symbol="MESZ5")

    assert [e.operation for e in events()] == [
        "auth.token",
        "account.list",
        "order.place",
        "order.commands",
        "order.list",
        "order.versions",
        "order.fills",
        "contract.item",
        "order.cancel",
        "position.list",
        "contract.find",
        "order.liquidate",
    ]
    assert all(e.status == "ok" and e.latency_ms is not None and e.trace_id for e in events())


# -- brackets (placeoso) --------------------------------------------------------------------------

OSO = "/order/placeoso"


def stop_for(entry: OrderRequest, cid: str = "bot7-stop-1", price: str = "4990.25") -> OrderRequest:
    return OrderRequest(
        client_order_id=cid,
        account=entry.account,
        symbol=entry.symbol,
        side="SELL" if entry.side == "BUY" else "BUY",
        quantity=entry.quantity,
        order_type="STOP",
        stop_price=Decimal(price),
    )


def test_a_bracket_goes_as_one_placeoso_and_its_stop_works_once_the_entry_fills(stub: stubs.TradovateStub) -> None:
    stub.fill_market = False  # the entry rests until the test fills it
    entry = order("bot7-entry-1")

    placed = client().place_bracket(entry, stop_for(entry))

    assert stub.placed == [] and len(stub.calls(PLACE)) == 0
    (request,) = stub.calls(OSO)
    assert request.json() == {
        "accountSpec": ACCOUNT,
        "accountId": ACCOUNT_ID,
        "clOrdId": "bot7-entry-1",
        "action": "Buy",
        "symbol": "MESZ5",
        "orderQty": 1,
        "orderType": "Market",
        "timeInForce": "Day",
        "isAutomated": True,
        "bracket1": {
            "action": "Sell",
            "clOrdId": "bot7-stop-1",
            "orderType": "Stop",
            "stopPrice": 4990.25,
            "timeInForce": "Day",
        },
    }
    assert placed.entry_broker_order_id == str(next(iter(stub.orders)))
    # Held: Tradovate sends the stop only once the entry fills; until then no list names it.
    assert client().find_order(account=ACCOUNT, client_order_id="bot7-stop-1") is None
    assert [o["id"] for o in stub.working()] == [int(placed.entry_broker_order_id)]

    stub.fill(int(placed.entry_broker_order_id))

    found = client().find_order(account=ACCOUNT, client_order_id="bot7-stop-1")
    assert found is not None
    assert (found.broker_order_id, found.side, found.quantity, found.status) == (
        placed.stop_broker_order_id,
        "SELL",
        1,
        WORKING,
    )
    entry_state = client().find_order(account=ACCOUNT, client_order_id="bot7-entry-1")
    assert entry_state is not None and entry_state.status == FILLED
    assert [e.operation for e in events() if e.operation.startswith("order.place")] == ["order.place_bracket"]


def test_a_bracket_stop_whose_command_does_not_carry_our_id_is_found_by_the_id_the_answer_gave(
    stub: stubs.TradovateStub,
) -> None:
    stub.bracket_commands_carry_clordid = False
    entry = order("bot7-entry-2")
    placed = client().place_bracket(entry, stop_for(entry, "bot7-stop-2"))  # the Market entry fills at once

    assert client().find_order(account=ACCOUNT, client_order_id="bot7-stop-2") is None
    found = client().find_order(
        account=ACCOUNT, client_order_id="bot7-stop-2", broker_order_id=placed.stop_broker_order_id
    )
    assert found is not None
    assert (found.broker_order_id, found.client_order_id, found.status) == (
        placed.stop_broker_order_id,
        "bot7-stop-2",
        WORKING,
    )
    # An id Tradovate does not list is not ours to claim.
    assert client().find_order(account=ACCOUNT, client_order_id="bot7-stop-x", broker_order_id="999999999") is None


def test_a_refused_bracket_leaves_neither_order_working(stub: stubs.TradovateStub) -> None:
    stub.mode = "reject"
    entry = order("bot7-entry-3")

    error = failure(lambda: client().place_bracket(entry, stop_for(entry, "bot7-stop-3")))

    assert isinstance(error, OrderRejected) and "MaxPosLimitReached" in error.message
    assert len(stub.calls(OSO)) == 1 and stub.orders == {} and stub.held == {}
    # Refused, so the same intent may be sent again (nothing of it is at the venue).
    stub.mode = "ok"
    assert client().place_bracket(entry, stop_for(entry, "bot7-stop-3")).stop_broker_order_id


def test_a_bracket_without_an_answer_is_unknown_for_both_and_never_sent_again(stub: stubs.TradovateStub) -> None:
    client().list_orders(account=ACCOUNT)
    stub.mode = "timeout_after_accept"
    entry = order("bot7-entry-4")

    error = failure(lambda: client().place_bracket(entry, stop_for(entry, "bot7-stop-4")))

    assert isinstance(error, OrderOutcomeUnknown)
    stub.mode = "ok"
    again = failure(lambda: client().place_bracket(entry, stop_for(entry, "bot7-stop-4")))
    assert again.error_code == "INTEGRATION_REQUEST_REJECTED" and "not sent again" in again.message
    alone = failure(lambda: client().place_order(stop_for(entry, "bot7-stop-4")))
    assert "not sent again" in alone.message
    assert len(stub.calls(OSO)) == 1 and len(stub.calls(PLACE)) == 0
    # Reconcile finds both: the entry filled, its stop working.
    stop = client().find_order(account=ACCOUNT, client_order_id="bot7-stop-4")
    assert stop is not None and stop.status == WORKING


@pytest.mark.parametrize(
    "changes",
    [
        {"side": "BUY"},  # the stop on the entry's side would add to the position
        {"quantity": 2},  # a stop larger than what the entry opens
        {"symbol": "MNQZ5"},
        {"order_type": "LIMIT", "stop_price": None, "limit_price": Decimal("4990")},
    ],
)
def test_a_malformed_bracket_is_refused_before_anything_is_sent(stub: stubs.TradovateStub, changes: dict) -> None:
    entry = order("bot7-entry-5")
    stop = replace(stop_for(entry, "bot7-stop-5"), **changes)
    error = failure(lambda: client().place_bracket(entry, stop))
    assert error.error_code == "INTEGRATION_REQUEST_REJECTED" and "bracket was not sent" in error.message
    assert stub.calls(OSO) == []
