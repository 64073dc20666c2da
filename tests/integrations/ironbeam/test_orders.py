"""Ironbeam order flows against the stub venue (PROVIDERS.md §2, apps/integrations/orders.py):
accepted / rejected / unknown outcomes, what find_order can and cannot prove without a client order
id, cancel, signed positions, flatten without a flatten endpoint, metering, and never a second
order for one intent."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.integrations.ironbeam import client as ironbeam
from apps.integrations.ironbeam.client import IronbeamClient, OrderNotIdentified
from apps.integrations.orders import (
    CANCELLED,
    FILLED,
    WORKING,
    BrokerPosition,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderRequest,
)
from apps.telemetry.models import IntegrationUsageEvent
from tests.integrations.helpers import failure, usage_events
from tests.stubs import ironbeam as stubs

pytestmark = pytest.mark.django_db

ACCOUNT = stubs.USERNAME  # "51395669": starts short 2 XCME:MES.Z25
MES = "XCME:MES.Z25"
PLACE = f"/order/{ACCOUNT}/place"
LIST = f"/order/{ACCOUNT}/ANY"


def client() -> IronbeamClient:
    return IronbeamClient.for_bot()


def order(cid: str = "bot9-20251104T1430-1", **changes: Any) -> OrderRequest:
    values: dict[str, Any] = {
        "client_order_id": cid,
        "account": ACCOUNT,
        "symbol": MES,
        "side": "BUY",
        "quantity": 1,
        "order_type": "MARKET",
    }
    return OrderRequest(**{**values, **changes})


def find(cid: str = "bot9-20251104T1430-1") -> Any:
    return client().find_order(account=ACCOUNT, client_order_id=cid)


def events() -> list[IntegrationUsageEvent]:
    return usage_events("ironbeam")


def place_events() -> list[tuple[str, str]]:
    return [(e.status, e.error_code) for e in events() if e.operation == "order.place"]


# -- accepted ------------------------------------------------------------------------------------


def test_a_market_order_is_placed_with_the_spec_body_and_found_in_this_process(stub: stubs.IronbeamStub) -> None:
    placed = client().place_order(order())

    (booked,) = stub.orders.values()
    assert placed.broker_order_id == booked["orderId"] == f"{ACCOUNT}-{booked['strategyId']}"
    # Exactly the spec's OrderRequest fields: Ironbeam has none for a client order id.
    assert stub.placed == [
        {
            "accountId": ACCOUNT,
            "exchSym": MES,
            "side": "BUY",
            "quantity": 1,
            "orderType": "1",
            "duration": "0",
            "waitForOrderId": True,
        }
    ]
    found = find()
    assert found is not None
    assert (found.broker_order_id, found.client_order_id, found.symbol, found.side, found.quantity) == (
        placed.broker_order_id,
        order().client_order_id,
        MES,
        "BUY",
        1,
    )
    assert (found.status, found.filled_quantity, found.avg_fill_price) == (FILLED, 1, Decimal("5000.25"))


def test_limit_and_stop_orders_use_the_spec_codes_and_stay_working(stub: stubs.IronbeamStub) -> None:
    client().place_order(order("lim-1", order_type="LIMIT", limit_price=Decimal("4990.50"), side="SELL"))
    client().place_order(order("stp-1", order_type="STOP", stop_price=Decimal("5010.75")))

    limit, stop = stub.placed
    assert (limit["orderType"], limit["limitPrice"], limit["side"], "stopPrice" in limit) == (
        "2",
        4990.5,
        "SELL",
        False,
    )
    assert (stop["orderType"], stop["stopPrice"], "limitPrice" in stop) == ("3", 5010.75, False)
    found = find("lim-1")
    assert found is not None and (found.status, found.filled_quantity, found.avg_fill_price) == (WORKING, 0, None)
    assert len(stub.working()) == 2


def test_the_account_orders_are_listed_just_before_each_order(stub: stubs.IronbeamStub) -> None:
    client().place_order(order())
    assert [r.path for r in stub.requests] == ["/auth", LIST, PLACE]


def test_list_orders_names_our_client_ids_where_this_process_knows_them(stub: stubs.IronbeamStub) -> None:
    client().place_order(order("l-1"))
    client().place_order(order("l-2", order_type="LIMIT", limit_price=Decimal("4000")))

    orders = client().list_orders(account=ACCOUNT)

    assert [(o.client_order_id, o.status) for o in orders] == [("l-1", FILLED), ("l-2", WORKING)]
    ironbeam._placements.clear()  # another process: Ironbeam itself knows no client ids
    assert [o.client_order_id for o in client().list_orders(account=ACCOUNT)] == [None, None]


# -- refused before sending: not sent ------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"order_type": "LIMIT"},
        {"order_type": "STOP", "limit_price": Decimal("1")},
        {"quantity": -1},
        {"symbol": "MESZ5"},  # not an exchSym
        {"account": "51395669/../x"},
    ],
)
def test_a_malformed_order_is_refused_before_anything_is_sent(stub: stubs.IronbeamStub, changes: dict) -> None:
    error = failure(lambda: client().place_order(order(**changes)))
    assert error.error_code == "INTEGRATION_REQUEST_REJECTED"
    assert stub.requests == []


def test_a_failed_sign_in_means_the_order_was_not_sent(stub: stubs.IronbeamStub) -> None:
    stub.mode = "bad_key"
    error = failure(lambda: client().place_order(order()))
    assert error.error_code == "INTEGRATION_AUTH_FAILED"
    assert stub.calls(PLACE) == []


def test_a_failed_order_list_before_sending_means_the_order_was_not_sent(stub: stubs.IronbeamStub) -> None:
    stub.mode = "status_error"
    error = failure(lambda: client().place_order(order()))
    assert error.error_code == "INTEGRATION_REQUEST_REJECTED"
    assert stub.calls(PLACE) == []
    assert find() is None  # certain: it never left


def test_a_rate_limit_means_the_order_was_not_sent(stub: stubs.IronbeamStub) -> None:
    client().list_orders(account=ACCOUNT)
    stub.mode = "rate_limit"
    error = failure(lambda: client().place_order(order()))
    assert error.error_code == "INTEGRATION_RATE_LIMITED"
    assert stub.placed == []


# -- rejected ------------------------------------------------------------------------------------


@pytest.mark.parametrize("http_status", [200, 400])
def test_a_status_error_is_a_rejection_and_nothing_is_working(stub: stubs.IronbeamStub, http_status: int) -> None:
    stub.mode = "reject"
    stub.reject_http_status = http_status

    error = failure(lambda: client().place_order(order()))

    assert isinstance(error, OrderRejected)
    assert (error.error_code, error.http_status) == ("ORDER_REJECTED", http_status)
    assert "insufficient margin" in error.extra["broker_reason"]
    assert stub.orders == {} and len(stub.placed) == 1
    assert find() is None
    assert place_events() == [("error", "ORDER_REJECTED")]


# -- unknown: sent, no usable answer -------------------------------------------------------------


def test_a_timeout_after_the_venue_accepted_is_unknown_and_the_one_new_order_is_named_not_guessed(
    stub: stubs.IronbeamStub,
) -> None:
    earlier = client().place_order(order("earlier"))  # an identical order from before: not a candidate
    stub.mode = "timeout_after_accept"

    error = failure(lambda: client().place_order(order()))

    assert isinstance(error, OrderOutcomeUnknown) and error.error_code == "ORDER_STATE_UNKNOWN"
    assert place_events()[-1] == ("error", "INTEGRATION_TIMEOUT")
    stub.mode = "ok"
    unknown = failure(find)
    assert isinstance(unknown, OrderNotIdentified)
    (latest,) = [order_id for order_id in stub.orders if order_id != earlier.broker_order_id]
    assert unknown.candidates == (latest,)
    assert unknown.extra["candidates"] == [latest]
    assert len(stub.placed) == 2 and len(stub.orders) == 2  # exactly one order for this intent at the venue


def test_an_order_lost_before_the_venue_is_unknown_and_then_certainly_not_there(stub: stubs.IronbeamStub) -> None:
    client().place_order(order("earlier"))  # identical, but listed before: the snapshot rules it out
    stub.mode = "lost"

    error = failure(lambda: client().place_order(order()))

    assert isinstance(error, OrderOutcomeUnknown)
    stub.mode = "ok"
    assert find() is None
    assert len(stub.orders) == 1


def test_another_order_that_cannot_be_ours_is_not_a_candidate(stub: stubs.IronbeamStub) -> None:
    stub.mode = "lost"
    failure(lambda: client().place_order(order()))
    stub.mode = "ok"
    client().place_order(order("other", side="SELL"))  # appeared since, but the side proves it is not ours

    assert find() is None


@pytest.mark.parametrize(("mode", "status"), [("server_error", 500), ("malformed_order", 200)])
def test_a_5xx_or_an_unreadable_200_is_unknown(stub: stubs.IronbeamStub, mode: str, status: int) -> None:
    client().list_orders(account=ACCOUNT)
    stub.mode = mode

    error = failure(lambda: client().place_order(order()))

    assert isinstance(error, OrderOutcomeUnknown) and error.http_status == status
    assert place_events() == [("error", "ORDER_STATE_UNKNOWN")]
    stub.mode = "ok"
    assert failure(find).candidates == tuple(stub.orders)


def test_an_ok_without_an_order_id_is_unknown_and_settled_by_its_strategy_id(stub: stubs.IronbeamStub) -> None:
    stub.send_order_id = False  # the exchange did not answer within Ironbeam's 10 s wait

    error = failure(lambda: client().place_order(order()))

    assert isinstance(error, OrderOutcomeUnknown)
    found = find()
    assert found is not None and found.broker_order_id in stub.orders and found.status == FILLED


def test_in_another_process_find_order_cannot_identify_the_order_and_says_so(stub: stubs.IronbeamStub) -> None:
    client().place_order(order())
    ironbeam._placements.clear()  # a restart, or another worker

    error = failure(find)

    assert isinstance(error, OrderOutcomeUnknown) and not isinstance(error, OrderNotIdentified)
    assert "no client order id" in error.message


def test_a_list_that_may_be_cut_short_never_proves_an_order_absent(
    stub: stubs.IronbeamStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    client().place_order(order("earlier"))
    monkeypatch.setattr(ironbeam, "LIST_LIMIT", 1)  # one order listed = the maximum
    stub.mode = "lost"
    failure(lambda: client().place_order(order()))
    stub.mode = "ok"

    assert isinstance(failure(find), OrderNotIdentified)
    assert failure(lambda: client().list_orders(account=ACCOUNT)).error_code == "INTEGRATION_BAD_RESPONSE"


def test_an_order_state_ironbeam_cannot_name_is_not_guessed(stub: stubs.IronbeamStub) -> None:
    placed = client().place_order(order(order_type="LIMIT", limit_price=Decimal("4000")))
    stub.orders[placed.broker_order_id]["status"] = "ORDER_NOT_FOUND"
    assert isinstance(failure(find), OrderOutcomeUnknown)


# -- cancel ---------------------------------------------------------------------------------------


def test_cancel_deletes_the_order_and_it_is_cancelled(stub: stubs.IronbeamStub) -> None:
    placed = client().place_order(order(order_type="LIMIT", limit_price=Decimal("4000")))

    client().cancel_order(account=ACCOUNT, broker_order_id=placed.broker_order_id)

    (cancel,) = stub.calls(f"/order/{ACCOUNT}/cancel/{placed.broker_order_id}")
    assert cancel.method == "DELETE"
    found = find()
    assert found is not None and found.status == CANCELLED
    assert stub.working() == []


# -- positions and flatten ------------------------------------------------------------------------


def test_positions_are_signed_from_their_side_and_follow_fills(stub: stubs.IronbeamStub) -> None:
    assert client().positions(account=ACCOUNT) == [BrokerPosition(MES, -2, Decimal("6001.25"))]

    client().place_order(order("p-1", quantity=3))  # short 2, buy 3: long 1 at the fill price
    client().place_order(order("p-2", symbol="XCME:MNQ.Z25", side="SELL", quantity=2))

    positions = {p.symbol: p for p in client().positions(account=ACCOUNT)}
    assert (positions[MES].quantity, positions[MES].avg_price) == (1, Decimal("5000.25"))
    assert (positions["XCME:MNQ.Z25"].quantity, positions["XCME:MNQ.Z25"].avg_price) == (-2, Decimal("5000.25"))
    assert client().positions(account="51395670") == []


def test_flatten_cancels_working_orders_then_sends_the_opposite_market_order(stub: stubs.IronbeamStub) -> None:
    working = client().place_order(order("w-1", order_type="LIMIT", limit_price=Decimal("4000")))
    client().place_order(order("w-2", symbol="XCME:MNQ.Z25", order_type="LIMIT", limit_price=Decimal("4000")))
    stub.requests.clear()

    client().flatten(account=ACCOUNT, symbol=MES)

    assert [(r.method, r.path) for r in stub.requests] == [
        ("GET", LIST),
        ("DELETE", f"/order/{ACCOUNT}/cancel/{working.broker_order_id}"),
        ("GET", LIST),
        ("GET", f"/account/{ACCOUNT}/positions"),
        ("POST", PLACE),
    ]
    assert stub.placed[-1] == {
        "accountId": ACCOUNT,
        "exchSym": MES,
        "side": "BUY",  # short 2: buy 2
        "quantity": 2,
        "orderType": "1",
        "duration": "0",
        "waitForOrderId": True,
    }
    assert stub.net_position(ACCOUNT, MES) == 0
    assert [o["exchSym"] for o in stub.working()] == ["XCME:MNQ.Z25"]  # other symbols are left alone
    placed_before = len(stub.placed)
    client().flatten(account=ACCOUNT, symbol=MES)  # already flat: nothing is sent
    assert len(stub.placed) == placed_before


def test_flatten_sends_nothing_when_the_positions_are_unavailable(stub: stubs.IronbeamStub) -> None:
    stub.mode = "positions_down"
    error = failure(lambda: client().flatten(account=ACCOUNT, symbol=MES))
    assert error.error_code == "INTEGRATION_PROVIDER_ERROR"
    assert stub.placed == []


def test_a_flatten_order_without_an_answer_is_unknown_and_not_resent(stub: stubs.IronbeamStub) -> None:
    stub.mode = "timeout_after_accept"
    error = failure(lambda: client().flatten(account=ACCOUNT, symbol=MES))
    assert isinstance(error, OrderOutcomeUnknown)
    assert len(stub.placed) == 1


# -- metering and secrets -------------------------------------------------------------------------


def test_every_call_is_metered_under_its_operation(stub: stubs.IronbeamStub) -> None:
    placed = client().place_order(order(order_type="LIMIT", limit_price=Decimal("4000")))
    find()
    client().cancel_order(account=ACCOUNT, broker_order_id=placed.broker_order_id)
    client().positions(account=ACCOUNT)
    client().flatten(account=ACCOUNT, symbol=MES)

    assert [e.operation for e in events()] == [
        "auth.token",
        "order.list",
        "order.place",
        "order.list",
        "order.cancel",
        "position.list",
        "order.list",
        "position.list",
        "order.flatten",
    ]
    assert all(e.status == "ok" and e.latency_ms is not None and e.trace_id for e in events())
