"""The order-venue contract (apps/integrations/orders.py), the same for every broker client against
its stub: a refused connection means not sent; no failure makes the client send an order twice, nor
send again an order this process already sent; a cancel without an answer is unknown and not resent;
a filled order's cancel is refused; positions that cannot be read raise (never "flat"); no credential
reaches an error or a usage row. Each broker's own protocol is tested in its folder."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from apps.integrations.errors import IntegrationError
from apps.integrations.orders import OrderOutcomeUnknown, OrderRejected, OrderRequest
from apps.telemetry.models import IntegrationUsageEvent
from tests.integrations.helpers import failure
from tests.stubs import ironbeam as ironbeam_stub
from tests.stubs import tradovate as tradovate_stub

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Venue:
    provider: str
    client_path: str  # module.Class
    account: str
    symbol: str
    place_path: str
    cancel_path: Callable[[str], str]  # broker order id -> the path its cancel is sent to
    secrets: tuple[str, ...]
    echo: str  # the stub attribute whose text the venue echoes in a refusal
    failing_modes: tuple[str, ...]  # stub modes under which a place call fails
    error_modes: tuple[str, ...]  # stub modes whose errors are checked for echoed credentials
    settings: tuple[tuple[str, Any], ...] = ()

    def client(self) -> Any:
        module, _, name = self.client_path.rpartition(".")
        return getattr(importlib.import_module(module), name).for_bot()

    def order(self, cid: str = "bot7-20251104T1430-1", **changes: Any) -> OrderRequest:
        values: dict[str, Any] = {"client_order_id": cid, "account": self.account, "symbol": self.symbol}
        values |= {"side": "BUY", "quantity": 1, "order_type": "MARKET"}
        return OrderRequest(**{**values, **changes})


VENUES = {
    "tradovate": Venue(
        provider="tradovate",
        client_path="apps.integrations.tradovate.client.TradovateClient",
        account="DEMO123456",
        symbol="MESZ5",
        place_path="/order/placeorder",
        cancel_path=lambda broker_id: "/order/cancelorder",
        secrets=(tradovate_stub.PASSWORD, tradovate_stub.SECRET),
        echo="reject_text",
        failing_modes=(
            "reject",
            "timeout_after_accept",
            "lost",
            "server_error",
            "malformed",
            "p_ticket_order",
            "rate_limit",
            "locked_423",
        ),
        error_modes=("reject", "timeout_after_accept", "server_error", "p_ticket_order", "rate_limit"),
    ),
    "ironbeam": Venue(
        provider="ironbeam",
        client_path="apps.integrations.ironbeam.client.IronbeamClient",
        account=ironbeam_stub.USERNAME,
        symbol="XCME:MES.Z25",
        place_path=f"/order/{ironbeam_stub.USERNAME}/place",
        cancel_path=lambda broker_id: f"/order/{ironbeam_stub.USERNAME}/cancel/{broker_id}",
        secrets=(ironbeam_stub.PASSWORD, ironbeam_stub.API_KEY),
        echo="reject_message",
        failing_modes=("reject", "timeout_after_accept", "lost", "server_error", "malformed_order"),
        error_modes=("reject", "timeout_after_accept", "server_error", "rate_limit"),
        settings=(("IRONBEAM_PLACE_TIMEOUT_SECONDS", 0.5),),  # the stub stalls for 2 s
    ),
}


@pytest.fixture(params=sorted(VENUES))
def venue(request: pytest.FixtureRequest, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    spec = VENUES[request.param]
    module = importlib.import_module(f"apps.integrations.{spec.provider}.client")
    module.clear_token_cache()  # a fresh process: no token, no memory of sent orders
    if hasattr(module, "_sleep"):
        monkeypatch.setattr(module, "_sleep", lambda seconds: None)  # Tradovate's p-ticket waits
    for name, value in spec.settings:
        setattr(settings, name, value)
    yield spec
    module.clear_token_cache()


@pytest.fixture
def stub(venue: Venue, provider_stub: Any) -> Any:
    return provider_stub(venue.provider)


def test_a_refused_connection_means_the_order_was_not_sent(venue: Venue, stub: Any) -> None:
    venue.client().list_orders(account=venue.account)  # signed in, a keep-alive connection open
    stub.stop()
    error = failure(lambda: venue.client().place_order(venue.order()))
    assert error.error_code == "INTEGRATION_NETWORK_ERROR" and not isinstance(error, OrderOutcomeUnknown)
    assert stub.placed == []


@pytest.mark.parametrize(
    ("venue", "mode"),
    [(name, mode) for name, v in sorted(VENUES.items()) for mode in v.failing_modes],
    indirect=["venue"],
)
def test_no_failure_makes_the_client_send_the_order_twice(venue: Venue, stub: Any, mode: str) -> None:
    venue.client().list_orders(account=venue.account)
    stub.mode = mode
    failure(lambda: venue.client().place_order(venue.order()))
    assert len(stub.calls(venue.place_path)) == 1
    assert len(stub.placed) <= 1 and len(stub.orders) <= 1


def test_an_order_already_sent_by_this_process_is_never_sent_again(venue: Venue, stub: Any) -> None:
    venue.client().list_orders(account=venue.account)
    stub.mode = "timeout_after_accept"
    failure(lambda: venue.client().place_order(venue.order()))
    stub.mode = "ok"
    error = failure(lambda: venue.client().place_order(venue.order()))
    assert error.error_code == "INTEGRATION_REQUEST_REJECTED" and "not sent again" in error.message
    assert len(stub.calls(venue.place_path)) == 1 and len(stub.orders) == 1
    venue.client().place_order(venue.order("another-intent"))  # other ids are not affected
    assert len(stub.orders) == 2


def test_cancelling_a_filled_order_is_refused(venue: Venue, stub: Any) -> None:
    placed = venue.client().place_order(venue.order())
    error = failure(lambda: venue.client().cancel_order(account=venue.account, broker_order_id=placed.broker_order_id))
    assert isinstance(error, OrderRejected)


def test_a_cancel_without_an_answer_is_unknown_and_not_resent(venue: Venue, stub: Any) -> None:
    placed = venue.client().place_order(venue.order(order_type="LIMIT", limit_price=Decimal("4000")))
    stub.mode = "timeout_after_accept"
    error = failure(lambda: venue.client().cancel_order(account=venue.account, broker_order_id=placed.broker_order_id))
    assert isinstance(error, OrderOutcomeUnknown)
    assert len(stub.calls(venue.cancel_path(placed.broker_order_id))) == 1


def test_positions_down_raises_and_is_never_an_empty_list(venue: Venue, stub: Any) -> None:
    stub.mode = "positions_down"
    error = failure(lambda: venue.client().positions(account=venue.account))
    assert (error.error_code, error.http_status) == ("INTEGRATION_PROVIDER_ERROR", 500)


def test_no_credential_reaches_an_order_error_or_a_usage_row(venue: Venue, stub: Any) -> None:
    setattr(stub, venue.echo, f"Rejected for {' / '.join(venue.secrets)}")  # a venue echoing what it should not
    modes = venue.error_modes
    errors: list[IntegrationError] = []
    for number, mode in enumerate(modes):
        stub.mode = mode
        try:
            venue.client().place_order(venue.order(f"s-{number}"))
        except IntegrationError as exc:
            errors.append(exc)
    stub.mode = "positions_down"
    errors.append(failure(lambda: venue.client().positions(account=venue.account)))

    assert len(errors) == len(modes) + 1
    assert any("[redacted]" in e.message for e in errors)
    for error in errors:
        shown = f"{error} {error.message} {error.suggested_fix} {error.extra!r} {error!r}"
        assert not any(s in shown for s in venue.secrets), error.error_code
    rows = list(IntegrationUsageEvent.objects.filter(provider=venue.provider).values())
    assert not any(s in repr(rows) for s in venue.secrets)
