"""The contract between broker clients (Tradovate, Ironbeam) and the trading app's execution.

A broker client offers the methods of `OrderVenue`. The execution service persists an order row
with its deterministic `client_order_id` BEFORE calling `place_order`, and reads the outcome:

- `place_order` returns a `PlacedOrder` when the broker ACCEPTED the order (it has a broker order
  id), raises `OrderRejected` when the broker answered that it did NOT accept it (nothing is
  working at the venue: safe to mark the order REJECTED), and raises `OrderOutcomeUnknown` when
  the order MAY be working — a timeout after the request was sent, a dropped connection, a 5xx,
  an answer that cannot be read. The caller then marks the order UNKNOWN and never resends it
  under a new id; reconcile settles it with `find_order` / `list_orders`.
  Any other IntegrationError (no key, bad key, rate limited before sending, a request refused
  before it left) means the order was NOT sent.
- `find_order(client_order_id=...)` looks an order up at the broker by our id where the broker
  keeps it (Tradovate's `clOrdId`/`customTag50`-style field, Ironbeam's order list), returning a
  `BrokerOrder` or None when the broker does not know it. None is only returned when the broker
  answered with a complete list: an error raises.
- `positions()` returns every position of the account; a failed call raises — a missing position
  report is never taken as flat.
- `flatten(symbol)` closes a position the broker's way (Tradovate `liquidateposition`; Ironbeam
  has none: cancel working orders, then an opposite MARKET order for the position's quantity).

Brackets: a venue whose `brackets` is True sends an entry and its protective stop as ONE command
(Tradovate's OSO, "order sends order"): `place_bracket(entry, stop)`. The stop is held by the venue
and works once the entry fills, so the position is never without its stop. Both rows are persisted
before the call, and the outcomes are those of `place_order`, for the pair: `PlacedBracket` (both
accepted, each with its broker id), `OrderRejected` (neither is working), `OrderOutcomeUnknown`
(either may be working: both are UNKNOWN until reconcile settles them; never resent). Such a venue's
`find_order` also takes the `broker_order_id` its answer gave, for a bracket's stop that its own
record of our client order id does not name. A venue without brackets (no `brackets` attribute, or
False) gets the entry alone, and the stop once its fill is known (apps/trading/services.py).

Symbols are the broker's own (Tradovate `MESZ6`, Ironbeam `XCME:MES.Z26`); the trading app maps
an instrument to them. Prices are Decimals; quantities positive ints; sides "BUY"/"SELL".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from apps.integrations.errors import IntegrationError

# Order statuses as TradeOps names them; each client maps its broker's statuses onto these.
WORKING, FILLED, PARTIALLY_FILLED, CANCELLED, REJECTED = (
    "WORKING",
    "FILLED",
    "PARTIALLY_FILLED",
    "CANCELLED",
    "REJECTED",
)


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str
    account: str
    symbol: str
    side: str  # BUY | SELL
    quantity: int
    order_type: str  # MARKET | LIMIT | STOP
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    broker_order_id: str
    status: str = WORKING


@dataclass(frozen=True, slots=True)
class PlacedBracket:
    entry_broker_order_id: str
    stop_broker_order_id: str


@dataclass(frozen=True, slots=True)
class BrokerFill:
    fill_id: str
    quantity: int
    price: Decimal
    at: datetime


@dataclass(frozen=True, slots=True)
class BrokerOrder:
    broker_order_id: str
    client_order_id: str | None
    symbol: str
    side: str
    quantity: int
    status: str  # one of the statuses above
    filled_quantity: int
    avg_fill_price: Decimal | None
    fills: tuple[BrokerFill, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    symbol: str
    quantity: int  # signed: long > 0
    avg_price: Decimal | None


def request_problems(request: OrderRequest) -> list[str]:
    """What is wrong with an order request whatever the broker (each client adds its own symbol and
    id rules); an empty list when nothing is. A request with a problem is never sent."""
    problems = []
    if request.side not in ("BUY", "SELL"):
        problems.append("side must be BUY or SELL")
    if request.order_type not in ("MARKET", "LIMIT", "STOP"):
        problems.append("order_type must be MARKET, LIMIT or STOP")
    if isinstance(request.quantity, bool) or not isinstance(request.quantity, int) or request.quantity <= 0:
        problems.append("quantity must be a positive integer")
    prices = {"MARKET": (False, False), "LIMIT": (True, False), "STOP": (False, True)}.get(request.order_type)
    if prices is not None and prices != (request.limit_price is not None, request.stop_price is not None):
        takes = {"MARKET": "no price", "LIMIT": "a limit_price only", "STOP": "a stop_price only"}[request.order_type]
        problems.append(f"a {request.order_type} order takes {takes}")
    for price in (request.limit_price, request.stop_price):
        if price is not None and (not isinstance(price, Decimal) or not price.is_finite() or price <= 0):
            problems.append("prices must be positive Decimals")
            break
    return problems


def bracket_problems(entry: OrderRequest, stop: OrderRequest) -> list[str]:
    """What is wrong with a bracket (an entry and the protective stop it sends once filled), besides
    each request's own problems; an empty list when nothing is. The stop closes exactly what the
    entry opens: the same account, symbol and quantity, on the other side, as a STOP order."""
    problems = []
    if stop.order_type != "STOP":
        problems.append("a bracket's stop must be a STOP order")
    if entry.order_type == "STOP":
        problems.append("a bracket's entry must be a MARKET or LIMIT order")
    if stop.side == entry.side:
        problems.append("a bracket's stop must be on the other side of its entry")
    if (stop.account, stop.symbol, stop.quantity) != (entry.account, entry.symbol, entry.quantity):
        problems.append("a bracket's stop must have its entry's account, symbol and quantity")
    if stop.client_order_id == entry.client_order_id:
        problems.append("a bracket's stop needs its own client_order_id")
    return problems


class OrderRejected(IntegrationError):
    """The broker answered that it did not accept the order: nothing is working at the venue."""

    def __init__(self, message: str, *, provider: str, broker_reason: str = "", http_status: int | None = None) -> None:
        super().__init__(
            message,
            error_code="ORDER_REJECTED",
            provider=provider,
            suggested_fix="Read the broker's reason; the order was not placed.",
            http_status=http_status,
            status_code=409,
            extra={"broker_reason": broker_reason[:300]},
        )


class OrderOutcomeUnknown(IntegrationError):
    """The order may or may not be working at the broker. Mark it UNKNOWN; reconcile settles it."""

    def __init__(self, message: str, *, provider: str, http_status: int | None = None) -> None:
        super().__init__(
            message,
            error_code="ORDER_STATE_UNKNOWN",
            provider=provider,
            suggested_fix="Do not resend. Reconcile the bot (POST /api/bots/{id}/reconcile) to settle the order.",
            http_status=http_status,
        )


class OrderVenue(Protocol):
    provider: str
    brackets: bool  # True: place_bracket sends an entry with its protective stop as one command

    def place_order(self, request: OrderRequest) -> PlacedOrder: ...

    def place_bracket(self, entry: OrderRequest, stop: OrderRequest) -> PlacedBracket: ...

    def cancel_order(self, *, account: str, broker_order_id: str) -> None: ...

    def find_order(self, *, account: str, client_order_id: str) -> BrokerOrder | None: ...

    def list_orders(self, *, account: str) -> list[BrokerOrder]: ...

    def positions(self, *, account: str) -> list[BrokerPosition]: ...

    def flatten(self, *, account: str, symbol: str) -> None: ...
