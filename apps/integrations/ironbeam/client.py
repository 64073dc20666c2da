"""Ironbeam API v2 over its documented HTTP interface (PROVIDERS.md §2, the Ironbeam 2.1 OpenAPI spec).

Auth: `POST /auth` returns `{"status": "OK", "message": ..., "token": ...}`, used as
`Authorization: Bearer <token>`. The token lifetime is not documented [U] and there is no refresh
endpoint, so the token is cached in this process per credential set and, on a 401, dropped and
requested again (once). Every answer carries a top-level `status`; a 200 whose status is not OK
is treated as a rejection [P], as a third-party client does.

Orders (the OrderVenue contract, apps/integrations/orders.py):
- place: `POST /order/{accountId}/place` {accountId, exchSym, side BUY|SELL, quantity, orderType
  "1" MARKET | "2" LIMIT | "3" STOP, limitPrice | stopPrice, duration "0" (DAY), waitForOrderId true}
  → `{"status": "OK", "orderId", "strategyId"}`; the server waits up to 10 s for the exchange's
  order id, so the place call's timeout is longer than other calls' (IRONBEAM_PLACE_TIMEOUT_SECONDS).
- list: `GET /order/{accountId}/ANY`; cancel: `DELETE /order/{accountId}/cancel/{orderId}`;
  positions: `GET /account/{accountId}/positions` (unsigned quantity, direction in side LONG|SHORT).
- flatten: there is no flatten endpoint. Cancel the symbol's working orders, confirm they are no
  longer working, read the position, then send an opposite MARKET order for its quantity.

How find_order identifies our order: it mostly cannot. Ironbeam's OrderRequest has no client order
id (its schema allows no extra field, and the Order it lists echoes nothing of ours), so an order at
Ironbeam carries only Ironbeam's ids. What this process knows is kept in memory:
- an order accepted here is found by the orderId/strategyId its answer gave;
- for an order whose place call had no usable answer, place_order listed the account's orders just
  before sending: find_order lists them again, and if no new order with the request's symbol, side,
  quantity, type and price appeared (and both lists were complete), the order is certainly not at
  Ironbeam → None. If one or more appeared, TradeOps cannot prove which is ours (another bot or a
  person may trade the account): OrderNotIdentified (ORDER_STATE_UNKNOWN) names the candidates;
- anything else (a restart, another worker process): OrderOutcomeUnknown; never a guess.

No brackets (`brackets = False`): OrderRequest does have `stopLoss`/`stopLossOffset` fields, and the
Order it lists has `parentOrderId`/`childOrders`, but the spec says nothing of what they do (a price
or an offset, when the child order exists, whether a MARKET entry takes one) [U], and the child
order could not be told apart from any other order (no client order id, see above). So an entry
goes alone, and the execution service places its stop as a separate STOP order as soon as the fill
is known (the reconcile that applies it protects the position: apps/trading/reconcile.py).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings

from apps.integrations.base import require
from apps.integrations.brokers import BrokerClient, SentOrders, TokenCache, already_sent
from apps.integrations.errors import IntegrationError
from apps.integrations.http import Classifier, provider_message
from apps.integrations.orders import (
    CANCELLED,
    FILLED,
    PARTIALLY_FILLED,
    REJECTED,
    WORKING,
    BrokerOrder,
    BrokerPosition,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderRequest,
    PlacedOrder,
    request_problems,
)

logger = logging.getLogger("tradeops.integrations.ironbeam")

HOSTS = {
    "demo": "https://demo.ironbeamapi.com/v2",
    "live": "https://live.ironbeamapi.com/v2",
}

# The /auth body: JSON key -> the variable that fills it. The spec contradicts itself on the keys
# ([U]: `password` may be the API key for retail users; `apiKey` vs `apikey`), so the default is its
# Python example's {"username", "password", "apiKey"}, and the Django setting IRONBEAM_AUTH_FIELDS
# (the same mapping) replaces it. A retail user without a password may put the API key in
# IRONBEAM_PASSWORD, which gives PROVIDERS.md's "safest retail body".
DEFAULT_AUTH_FIELDS: dict[str, str] = {
    "username": "IRONBEAM_USERNAME",
    "password": "IRONBEAM_PASSWORD",
    "apiKey": "IRONBEAM_API_KEY",
}
# [P] Which top-level statuses a 200 may carry and still succeed. The enum also has WARNING and
# INFO, whose meaning on a 200 is undocumented: fail closed until seen.
OK_STATUSES = frozenset({"OK"})
ACCOUNT_ID = re.compile(r"[0-9]{5,10}")  # the spec's accountId path pattern
SECRET_VARS = ("IRONBEAM_PASSWORD", "IRONBEAM_API_KEY", "IRONBEAM_USERNAME")
ORDER_ID = re.compile(r"[0-9A-Za-z-]{1,50}")  # the spec's OrderId is a string of at most 50 ("5123345-1234567890")

ORDER_TYPES = {"MARKET": "1", "LIMIT": "2", "STOP": "3"}  # the spec's OrderType codes
# Orders are read back with codes or names [P: third-party code accepts both].
TYPE_NAMES = {"1": "MARKET", "2": "LIMIT", "3": "STOP", "4": "STOP_LIMIT"} | {
    name: name for name in ("MARKET", "LIMIT", "STOP", "STOP_LIMIT")
}
DAY = "0"  # the spec's DurationType: "0" DAY, "1" GOOD_TILL_CANCEL
# "waitForOrderId: if true (default), the response will wait max. 10 sec. for orderId from exchange".
PLACE_WAIT_SECONDS = 10.0
# OrdersResponse.orders has maxItems 1000: a list that long may have been cut short.
LIST_LIMIT = 1000

# Ironbeam order status -> TradeOps status. Everything not yet final is WORKING (PARTIALLY_FILLED
# once it has fills): a pending cancel or a refused cancel leaves the order working. COMPLETE
# counts as FILLED only when the fills cover the quantity; INVALID, ORDER_NOT_FOUND and anything
# new are never guessed at.
_LIVE = frozenset(
    {
        "SUBMITTED",
        "NEW",
        "PENDING_NEW",
        "QUEUED_NEW",
        "ACCEPTED_FOR_BIDDING",
        "PARTIALLY_FILLED",
        "PENDING_CANCEL",
        "QUEUED_CANCEL",
        "PENDING_REPLACE",
        "REPLACED",
        "CANCEL_REJECTED",
        "SUSPENDED",
        "CALCULATED",
        "STOPPED",
    }
)
_DONE = {
    "FILLED": FILLED,
    "CANCELLED": CANCELLED,
    "EXPIRED": CANCELLED,
    "DONE_FOR_DAY": CANCELLED,
    "REJECTED": REJECTED,
}


class OrderNotIdentified(OrderOutcomeUnknown):
    """Orders that may be ours appeared at Ironbeam, which keeps no client order id to tell them
    apart: `candidates` are their broker ids. Settle with knowledge TradeOps has elsewhere (which
    orders other intents own), or by hand."""

    def __init__(self, message: str, *, provider: str, candidates: list[str]) -> None:
        super().__init__(message, provider=provider)
        self.candidates = tuple(candidates)
        self.extra["candidates"] = list(candidates)


@dataclass
class _Placement:
    """What this process knows of one place_order call (kept in memory only)."""

    request: OrderRequest
    known_before: frozenset[str]  # the account's order ids listed just before sending
    complete_before: bool  # that list was shorter than LIST_LIMIT
    state: str = "sending"  # sending | accepted | unknown | refused
    order_id: str | None = None
    strategy_id: int | None = None


# -- the in-process token cache ------------------------------------------------------------------

_cache: TokenCache[str] = TokenCache()
_tokens = _cache.tokens  # cache key (a hash, see _cache_key) -> token
_lock_for = _cache.lock_for
# (cache key, account id, client order id) -> what this process knows of that order.
_placements: SentOrders[_Placement] = SentOrders()


def clear_token_cache() -> None:
    """Forget everything this process holds for Ironbeam: tokens and the record of orders sent
    (tests; an operator replacing credentials)."""
    _cache.clear()
    _placements.clear()


# -- shapes ---------------------------------------------------------------------------------------


def _status_ok(body: dict[str, Any]) -> bool:
    status = body.get("status")
    # Tolerant: an answer without a status is judged by its payload (the validators).
    return status is None or (isinstance(status, str) and status.upper() in OK_STATUSES)


def _authorization(body: Any) -> None:
    require(isinstance(body, dict), "expected a JSON object")
    require(isinstance(body.get("token"), str) and bool(body["token"]), "no token in the answer")


def _trader(body: Any) -> None:
    require(isinstance(body, dict), "expected a JSON object")
    accounts = body.get("accounts")
    require(isinstance(accounts, list), "accounts is not a list")
    require(all(isinstance(a, str) for a in accounts), "account ids are not strings")
    require(body.get("isLive") is None or isinstance(body["isLive"], bool), "isLive is not a boolean")


def _positions(body: Any) -> None:
    require(isinstance(body, dict), "expected a JSON object")
    positions = body.get("positions")
    require(isinstance(positions, list), "positions is not a list")
    for item in positions:
        require(isinstance(item, dict), "expected position objects")
        require(isinstance(item.get("exchSym"), str), "position exchSym is not a string")
        require(isinstance(item.get("quantity"), int | float), "position quantity is not a number")
        require(item.get("side") in ("LONG", "SHORT"), "position side is neither LONG nor SHORT")


def _is_long(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _order_id(value: Any) -> str | None:
    if _is_long(value):
        value = str(value)
    return value if isinstance(value, str) and ORDER_ID.fullmatch(value) else None


def _orders(body: Any) -> None:
    require(isinstance(body, dict), "expected a JSON object")
    orders = body.get("orders")
    require(isinstance(orders, list), "orders is not a list")  # [U] whether an empty list is sent or left out
    for item in orders:
        require(isinstance(item, dict), "expected order objects")
        require(_order_id(item.get("orderId")) is not None, "order orderId is missing or malformed")
        require(isinstance(item.get("exchSym"), str), "order exchSym is not a string")
        require(isinstance(item.get("status"), str), "order status is not a string")
        require(item.get("side") in ("BUY", "SELL"), "order side is neither BUY nor SELL")
        require(isinstance(item.get("quantity"), int | float), "order quantity is not a number")


def _decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


# -- the client -----------------------------------------------------------------------------------


class IronbeamClient(BrokerClient):
    provider = "ironbeam"
    HOSTS = HOSTS
    brackets = False  # see the module docstring: the stop follows the fill

    # -- configuration ----------------------------------------------------------------------------

    def _cache_key(self) -> str:
        # A hash, so nothing secret is held in clear as a key; demo and live tokens never mix.
        raw = "\0".join((self.credentials.get("IRONBEAM_USERNAME"), self.base_url))
        return hashlib.sha256(raw.encode()).hexdigest()

    def _auth_body(self) -> dict[str, str]:
        fields: dict[str, str] = getattr(settings, "IRONBEAM_AUTH_FIELDS", None) or DEFAULT_AUTH_FIELDS
        return {key: self.credentials.get(var) for key, var in fields.items()}

    def _scrub(self, text: str) -> str:
        """Provider text shown to operators, with any credential value it might echo removed."""
        for name in SECRET_VARS:
            value = self.credentials.get(name)
            if len(value) >= 4:
                text = text.replace(value, "[redacted]")
        return text[:200]

    # -- classification ---------------------------------------------------------------------------
    def _classifier(self, operation: str, *, auth: bool) -> Callable[[Any, Any], IntegrationError | None]:
        def classify(response: Any, body: Any) -> IntegrationError | None:
            if not 200 <= response.status_code < 300 or not isinstance(body, dict) or _status_ok(body):
                return None  # non-2xx: the generic rules (401, 403, 429, 5xx, ...)
            said = self._scrub(provider_message(body)) or "no message"
            return IntegrationError(
                f"Ironbeam refused {operation} (status {str(body.get('status'))[:20]}): {said}",
                error_code="INTEGRATION_AUTH_FAILED" if auth else "INTEGRATION_REQUEST_REJECTED",
                provider=self.provider,
            )

        return classify

    # -- tokens -----------------------------------------------------------------------------------
    def _token(self) -> tuple[str, bool]:
        """The bearer token, and whether this call obtained it."""
        key = self._cache_key()
        with _lock_for(key):
            cached = _tokens.get(key)
            if cached is not None:
                return cached, False
            result = self.request(
                "auth.token",
                "POST",
                "/auth",
                json=self._auth_body(),
                classify=self._classifier("auth.token", auth=True),
                validate=_authorization,
            )
            _tokens[key] = result.body["token"]
            return result.body["token"], True

    def _forget(self, token: str) -> None:
        key = self._cache_key()
        with _lock_for(key):
            if _tokens.get(key) == token:
                del _tokens[key]

    def _data_classifier(self, operation: str) -> Classifier:
        return self._classifier(operation, auth=False)

    # -- calls ------------------------------------------------------------------------------------
    def trader_info(self, *, operation: str = "account.list") -> dict[str, Any]:
        return self._get(operation, "/info/trader", validate=_trader).body

    def list_accounts(self) -> list[str]:
        """The trader's account ids (strings, e.g. "5123345")."""
        return list(self.trader_info()["accounts"])

    def _account_id(self, account_id: str) -> str:
        if not isinstance(account_id, str) or not ACCOUNT_ID.fullmatch(account_id):
            raise self._refused(
                "An Ironbeam account id is 5 to 10 digits.",
                "Use an account id from Verify (GET /info/trader lists them).",
            )
        return account_id

    def _refused(self, message: str, fix: str) -> IntegrationError:
        """A request TradeOps refuses to send (nothing reached Ironbeam)."""
        return IntegrationError(
            message, error_code="INTEGRATION_REQUEST_REJECTED", provider=self.provider, suggested_fix=fix
        )

    def list_positions(self, account_id: str) -> list[dict[str, Any]]:
        """Open positions of one account. `quantity` is unsigned; the direction is in `side`."""
        account_id = self._account_id(str(account_id))
        return self._get("position.list", f"/account/{account_id}/positions", validate=_positions).body["positions"]

    def verify(self) -> dict[str, Any]:
        info = self.trader_info(operation="verify")
        return {"accounts": len(info["accounts"]), "env": self.env, "is_live": bool(info.get("isLive"))}

    # -- the order venue (apps/integrations/orders.py) --------------------------------------------
    def _place_timeout(self) -> float:
        configured = getattr(settings, "IRONBEAM_PLACE_TIMEOUT_SECONDS", None)
        if configured:
            return float(configured)
        # Ironbeam may hold the answer up to 10 s waiting for the exchange's order id: a shorter
        # timeout would turn every slow acknowledgement into an unknown outcome.
        return max(float(settings.INTEGRATIONS_HTTP_TIMEOUT_SECONDS), PLACE_WAIT_SECONDS + 5)

    def _check(self, request: OrderRequest) -> None:
        problems = []
        if not isinstance(request.client_order_id, str) or not request.client_order_id:
            problems.append("client_order_id is missing")
        if not isinstance(request.symbol, str) or ":" not in request.symbol:
            problems.append("symbol must be Ironbeam's exchSym, e.g. XCME:MES.Z25")
        problems += request_problems(request)
        if problems:
            raise self._refused(
                "The order was not sent: " + "; ".join(problems) + ".", "Fix the order request; nothing was sent."
            )

    def _judge_place(self, operation: str, seen: dict[str, Any]) -> Any:
        """Judges an OrderBaseResponse: `{"status": "OK", orderId, strategyId}` accepted; a status
        other than OK without any id refused [P]; anything else unknown."""

        def judge(body: dict[str, Any], status: int) -> IntegrationError | None:
            order_id = _order_id(body.get("orderId"))
            strategy_id = body.get("strategyId") if _is_long(body.get("strategyId")) else None
            seen["orderId"], seen["strategyId"] = order_id, strategy_id
            if not _status_ok(body):
                if order_id or strategy_id is not None:
                    return OrderOutcomeUnknown(
                        f"Ironbeam answered {operation} with status {str(body.get('status'))[:20]} and an order id.",
                        provider=self.provider,
                        http_status=status,
                    )
                said = self._scrub(provider_message(body)) or "no message"
                return OrderRejected(
                    f"Ironbeam refused {operation} (status {str(body.get('status'))[:20]}): {said}",
                    provider=self.provider,
                    broker_reason=said,
                    http_status=status,
                )
            if order_id:
                body["orderId"] = order_id
                return None
            if strategy_id is not None:
                return OrderOutcomeUnknown(
                    f"Ironbeam took {operation} (strategy {strategy_id}) but sent no order id within its wait.",
                    provider=self.provider,
                    http_status=status,
                )
            return OrderOutcomeUnknown(
                f"Ironbeam answered {operation} without an order id.", provider=self.provider, http_status=status
            )

        return judge

    def _body(self, account: str, symbol: str, side: str, quantity: int, order_type: str) -> dict[str, Any]:
        return {
            "accountId": account,
            "exchSym": symbol,
            "side": side,
            "quantity": quantity,
            "orderType": ORDER_TYPES[order_type],
            "duration": DAY,
            "waitForOrderId": True,
        }

    def _raw_orders(self, account: str) -> tuple[list[dict[str, Any]], bool]:
        """Every order of the account Ironbeam lists (`ANY` status), and whether the list is
        complete (shorter than the schema's maximum of LIST_LIMIT)."""
        orders = self._get("order.list", f"/order/{account}/ANY", validate=_orders).body["orders"]
        for item in orders:
            item["orderId"] = _order_id(item["orderId"])
        return orders, len(orders) < LIST_LIMIT

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        account = self._account_id(request.account)
        self._check(request)
        key = (self._cache_key(), account, request.client_order_id)
        placement = _Placement(request, frozenset(), False)
        if not _placements.claim(key, placement, unless=lambda prior: prior.state != "refused"):
            raise already_sent(self.provider, request.client_order_id)
        # The account's orders just before sending: the only way to tell later, if this call gets no
        # usable answer, that no new order like it appeared (Ironbeam keeps no client order id).
        # A failure here means the order was not sent.
        try:
            before, complete = self._raw_orders(account)
        except BaseException:
            placement.state = "refused"
            raise
        placement.known_before, placement.complete_before = frozenset(o["orderId"] for o in before), complete
        body = self._body(account, request.symbol, request.side, request.quantity, request.order_type)
        if request.limit_price is not None:
            body["limitPrice"] = float(request.limit_price)
        if request.stop_price is not None:
            body["stopPrice"] = float(request.stop_price)
        seen: dict[str, Any] = {}
        try:
            result = self._order_call(
                "order.place",
                "POST",
                f"/order/{account}/place",
                json=body,
                judge=self._judge_place("order.place", seen),
                timeout=self._place_timeout(),
            )
        except OrderOutcomeUnknown:
            placement.state = "unknown"
            placement.order_id, placement.strategy_id = seen.get("orderId"), seen.get("strategyId")
            raise
        except IntegrationError:
            placement.state = "refused"  # rejected, or never sent
            raise
        except BaseException:
            placement.state = "unknown"
            raise
        placement.state = "accepted"
        placement.order_id, placement.strategy_id = result.body["orderId"], seen.get("strategyId")
        return PlacedOrder(broker_order_id=result.body["orderId"])

    def find_order(self, *, account: str, client_order_id: str) -> BrokerOrder | None:
        account = self._account_id(account)
        placement = _placements.get((self._cache_key(), account, client_order_id))
        if placement is None or placement.state == "sending":
            raise OrderOutcomeUnknown(
                f"Ironbeam orders carry no client order id, and this process has no record of sending "
                f"{client_order_id[:64]}: TradeOps cannot tell which of the account's orders is ours.",
                provider=self.provider,
            )
        if placement.state == "refused":
            return None  # rejected, or never sent: certainly not at Ironbeam
        orders, complete = self._raw_orders(account)
        if placement.order_id is not None or placement.strategy_id is not None:
            mine = [
                o
                for o in orders
                if (placement.order_id is not None and o["orderId"] == placement.order_id)
                or (placement.strategy_id is not None and o.get("strategyId") == placement.strategy_id)
            ]
            if len(mine) != 1:
                raise OrderOutcomeUnknown(
                    f"Ironbeam lists {len(mine)} orders for the ids it gave {client_order_id[:64]}.",
                    provider=self.provider,
                )
            return self._order(mine[0], client_order_id)
        candidates = [
            o["orderId"]
            for o in orders
            if o["orderId"] not in placement.known_before and self._may_be(o, placement.request)
        ]
        if not candidates and complete and placement.complete_before:
            return None  # no new order like ours appeared since just before sending: it is not there
        raise OrderNotIdentified(
            f"Ironbeam keeps no client order id: {len(candidates)} new order(s) may be {client_order_id[:64]}"
            + ("" if complete and placement.complete_before else ", and its order list may be cut short")
            + ": TradeOps will not pick one.",
            provider=self.provider,
            candidates=candidates,
        )

    @staticmethod
    def _may_be(order: dict[str, Any], request: OrderRequest) -> bool:
        """False only when a field Ironbeam echoes proves `order` is not `request`."""
        if order["exchSym"] != request.symbol or order["side"] != request.side:
            return False
        if float(order["quantity"]) != request.quantity:
            return False
        kind = TYPE_NAMES.get(str(order.get("orderType")))
        if kind is not None and kind != request.order_type:
            return False
        for field, wanted in (("limitPrice", request.limit_price), ("stopPrice", request.stop_price)):
            echoed = _decimal(order.get(field))
            if wanted is not None and echoed is not None and echoed != wanted:
                return False
        return True

    def list_orders(self, *, account: str) -> list[BrokerOrder]:
        account = self._account_id(account)
        orders, complete = self._raw_orders(account)
        if not complete:
            raise IntegrationError(
                f"Ironbeam listed {len(orders)} orders, its maximum: the list may be cut short, and TradeOps "
                "does not reconcile from a partial list.",
                error_code="INTEGRATION_BAD_RESPONSE",
                provider=self.provider,
            )
        # Our client ids where this process learnt Ironbeam's ids for them; None everywhere else.
        by_order: dict[str, str] = {}
        by_strategy: dict[int, str] = {}
        for (cache_key, placed_account, client_order_id), placement in _placements.items():
            if (cache_key, placed_account) != (self._cache_key(), account):
                continue
            if placement.order_id is not None:
                by_order[placement.order_id] = client_order_id
            if placement.strategy_id is not None:
                by_strategy[placement.strategy_id] = client_order_id
        return [self._order(o, by_order.get(o["orderId"]) or by_strategy.get(o.get("strategyId"))) for o in orders]

    def _status(self, order: dict[str, Any], quantity: int, filled: int) -> str:
        raw = order["status"].upper()
        if raw in _LIVE:
            return PARTIALLY_FILLED if 0 < filled < quantity else WORKING
        if raw in _DONE:
            return _DONE[raw]
        if raw == "COMPLETE" and filled >= quantity:
            return FILLED
        raise OrderOutcomeUnknown(
            f"Ironbeam reports order {order['orderId']} as {raw[:20]!r}: TradeOps does not guess what that means.",
            provider=self.provider,
        )

    def _order(self, order: dict[str, Any], client_order_id: str | None) -> BrokerOrder:
        quantity, filled = order["quantity"], order.get("fillQuantity") or 0
        if (
            not isinstance(filled, int | float)
            or quantity != int(quantity)
            or filled != int(filled)
            or quantity <= 0
            or filled < 0
        ):
            raise IntegrationError(
                f"Ironbeam order {order['orderId']} has quantities TradeOps cannot read.",
                error_code="INTEGRATION_BAD_RESPONSE",
                provider=self.provider,
            )
        quantity, filled = int(quantity), int(filled)
        return BrokerOrder(
            broker_order_id=order["orderId"],
            client_order_id=client_order_id,
            symbol=order["exchSym"],
            side=order["side"],
            quantity=quantity,
            status=self._status(order, quantity, filled),
            filled_quantity=filled,
            avg_fill_price=_decimal(order.get("fillPrice")) if filled else None,
            fills=(),  # the Order carries the average only; single fills are at /account/{id}/fills
        )

    def _judge_cancel(self, operation: str, broker_order_id: str) -> Any:
        def judge(body: dict[str, Any], status: int) -> IntegrationError | None:
            said = self._scrub(provider_message(body)) or "no message"
            refused = not _status_ok(body)
            for item in body.get("orders") or []:
                if isinstance(item, dict) and str(item.get("orderId")) == broker_order_id:
                    refused = refused or str(item.get("status")).upper() in ("CANCEL_REJECTED", "REJECTED")
            if refused:
                return OrderRejected(
                    f"Ironbeam refused {operation}: {said}",
                    provider=self.provider,
                    broker_reason=said,
                    http_status=status,
                )
            return None

        return judge

    def cancel_order(self, *, account: str, broker_order_id: str) -> None:
        account = self._account_id(account)
        if not isinstance(broker_order_id, str) or not ORDER_ID.fullmatch(broker_order_id):
            raise self._refused("An Ironbeam order id is letters, digits and dashes.", "Pass the broker order id.")
        self._order_call(
            "order.cancel",
            "DELETE",
            f"/order/{account}/cancel/{broker_order_id}",
            judge=self._judge_cancel("order.cancel", broker_order_id),
        )

    def positions(self, *, account: str) -> list[BrokerPosition]:
        """Every open position of the account, signed (SHORT < 0). A failed call raises: a missing
        position report is never taken as flat."""
        rows: dict[str, list[tuple[int, Decimal | None]]] = {}
        for row in self.list_positions(self._account_id(account)):
            quantity = row["quantity"]
            if quantity != int(quantity) or (row["side"] == "LONG" and quantity < 0):
                raise IntegrationError(
                    f"Ironbeam reports a position in {row['exchSym'][:20]} TradeOps cannot read.",
                    error_code="INTEGRATION_BAD_RESPONSE",
                    provider=self.provider,
                )
            # [P] quantity is unsigned with the direction in side; a negative SHORT quantity is normalised.
            signed = abs(int(quantity)) * (1 if row["side"] == "LONG" else -1)
            if signed:
                rows.setdefault(row["exchSym"], []).append((signed, _decimal(row.get("price"))))
        out = []
        for symbol, parts in rows.items():
            net = sum(q for q, _ in parts)
            if not net:
                continue
            same_side = all((q > 0) == (net > 0) for q, _ in parts)
            priced = all(p is not None for _, p in parts)
            average = (
                sum((abs(q) * p for q, p in parts if p is not None), Decimal(0)) / abs(net)
                if same_side and priced
                else None
            )
            out.append(BrokerPosition(symbol=symbol, quantity=net, avg_price=average))
        return out

    def flatten(self, *, account: str, symbol: str) -> None:
        """Ironbeam has no flatten endpoint: cancel the symbol's working orders, make sure none is
        working any more, read the position, then send an opposite MARKET order for its quantity.
        Nothing is sent when a step fails; an unknown outcome of the closing order is not retried:
        read the positions again before another flatten."""
        account = self._account_id(account)
        working = self._working(account, symbol)
        for order_id in working:
            self.cancel_order(account=account, broker_order_id=order_id)
        if working and self._working(account, symbol):
            raise IntegrationError(
                f"Ironbeam has not confirmed the cancel of the working orders on {symbol[:20]}; the closing "
                "order was not sent.",
                error_code="INTEGRATION_PROVIDER_ERROR",
                provider=self.provider,
                suggested_fix="Flatten again in a moment; check the account's orders if it persists.",
            )
        net = sum(p.quantity for p in self.positions(account=account) if p.symbol == symbol)
        if not net:
            return
        self._order_call(
            "order.flatten",
            "POST",
            f"/order/{account}/place",
            json=self._body(account, symbol, "SELL" if net > 0 else "BUY", abs(net), "MARKET"),
            judge=self._judge_place("order.flatten", {}),
            timeout=self._place_timeout(),
        )

    def _working(self, account: str, symbol: str) -> list[str]:
        orders, complete = self._raw_orders(account)
        if not complete:
            raise IntegrationError(
                "Ironbeam's order list may be cut short: TradeOps cannot be sure which orders are working.",
                error_code="INTEGRATION_BAD_RESPONSE",
                provider=self.provider,
            )
        return [
            o["orderId"]
            for o in orders
            if o["exchSym"] == symbol and self._order(o, None).status in (WORKING, PARTIALLY_FILLED)
        ]
