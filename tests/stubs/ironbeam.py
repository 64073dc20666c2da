"""Ironbeam API v2 stub (PROVIDERS.md §2).

Speaks the documented protocol: `POST /auth` → `{"status": "OK", "message", "token"}` (401 with
the `Error` body `{"status": "ERROR", "message", "error"}` for a wrong username/password/apiKey),
then `GET /info/trader` and `GET /account/{accountId}/positions` with `Authorization: Bearer`.
Every endpoint may answer 429 with the `Error` body (the spec gives no Retry-After, [U]).

Orders: an in-memory venue per stub. `POST /order/{accountId}/place` takes exactly the spec's
OrderRequest fields (additionalProperties: false: an unknown field is a 400) and answers
`{"status": "OK", "message": "", "orderId": "<account>-<n>", "strategyId": <n>}`; a MARKET order
("1") fills at once at `fill_price` and moves the account's position; LIMIT/STOP stay NEW.
`GET /order/{accountId}/{status}` lists them (`ANY` for all); `DELETE /order/{accountId}/cancel/{orderId}`
cancels a working one (answer `{"status", "message", "orders": [...]}`).

Modes, besides the common ones:
    auth_status_error   /auth answers 200 with status ERROR
    status_error        data calls answer 200 with status ERROR
    no_token            /auth answers 200 status OK without a token
    reject              place answers `reject_http_status` (200 or 400) {"status": "ERROR", "message":
                        `reject_message`}; nothing is booked
    timeout_after_accept  order commands (place, cancel) take effect, then the answer stalls for
                        `delay` seconds: past the client's timeout, the ambiguous case
    lost                order commands stall for `delay` seconds and never take effect
    server_error        order commands take effect, then the answer is a 500 (no body, as the spec's
                        500 has none): a gateway failing after the backend acted, the worst case
    malformed_order     order commands take effect, then the answer is a 200 that is not JSON (data
                        calls answer normally; `malformed` garbles every answer)
    positions_down      /account/{id}/positions answers 500
`send_order_id = False` leaves orderId out of an OK place answer (the exchange did not answer within
the server's 10 s wait). `expected_auth` is the exact /auth body this server accepts (the real key
set is [U]).

Spies: `placed` is every place body that reached the venue with a valid token (booked, refused or
stalled); `orders` the booked orders by orderId; `working()` the ones still working. `stop()` also
closes open keep-alive connections, so that a stopped stub refuses connections.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from datetime import UTC, datetime
from typing import Any, ClassVar

from tests.stubs.base import StubRequest, StubResponse, StubServer

USERNAME = "51395669"
PASSWORD = "stub-ib-Passw0rd-5d1e7c"
API_KEY = "stub-ib-apikey-8c2f4a6b0d1e3f5a"
ACCOUNTS = ["51395669", "51395670"]
POSITIONS = [
    {
        "accountId": "51395669",
        "currencyCode": "USD",
        "exchSym": "XCME:MES.Z25",
        "positionId": "51395669-1",
        "quantity": 2,
        "price": 6001.25,
        "dateOpened": 20251104,
        "side": "SHORT",
        "unrealizedPL": -12.5,
    }
]


DEFAULT_FILL_PRICE = 5000.25
# The spec's OrderRequest properties (additionalProperties: false).
ORDER_FIELDS = frozenset(
    {
        "accountId",
        "exchSym",
        "side",
        "quantity",
        "limitPrice",
        "stopPrice",
        "stopLoss",
        "takeProfit",
        "stopLossOffset",
        "takeProfitOffset",
        "trailingStop",
        "orderType",
        "duration",
        "waitForOrderId",
    }
)
WORKING_STATUSES = ("NEW", "PARTIALLY_FILLED")


def _error(message: str, error: str) -> dict[str, str]:
    return {"status": "ERROR", "message": message, "error": error}


class IronbeamStub(StubServer):
    good_env = {
        "IRONBEAM_USERNAME": USERNAME,
        "IRONBEAM_PASSWORD": PASSWORD,
        "IRONBEAM_API_KEY": API_KEY,
        "IRONBEAM_ENV": "demo",
    }

    # Tokens issued by any instance stay valid for every instance: the client caches tokens per
    # process, and a later stub may be given the same loopback port as an earlier one.
    _valid_tokens: ClassVar[set[str]] = set()
    _numbers: ClassVar[itertools.count[int]] = itertools.count(1)
    _class_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        super().__init__()
        self.expected_auth = {"username": USERNAME, "password": PASSWORD, "apiKey": API_KEY}
        self.tokens: list[str] = []
        # The venue.
        self.fill_price: float = DEFAULT_FILL_PRICE
        self.reject_message = "Order rejected: insufficient margin"
        self.reject_http_status = 200
        self.send_order_id = True
        self.placed: list[dict[str, Any]] = []
        self.orders: dict[str, dict[str, Any]] = {}
        self.positions: list[dict[str, Any]] = copy.deepcopy(POSITIONS)
        self._book = threading.Lock()

    # -- helpers for tests --------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        """As if every session expired (the lifetime is undocumented): every token is refused."""
        with self._class_lock:
            self._valid_tokens.clear()

    def calls(self, path: str) -> list[StubRequest]:
        return [r for r in self.requests if r.path.rstrip("/") == path]

    def working(self) -> list[dict[str, Any]]:
        with self._book:
            return [o for o in self.orders.values() if o["status"] in WORKING_STATUSES]

    def net_position(self, account: str, symbol: str) -> int:
        with self._book:
            return sum(
                p["quantity"] * (1 if p["side"] == "LONG" else -1)
                for p in self.positions
                if (p["accountId"], p["exchSym"]) == (account, symbol)
            )

    # -- protocol -----------------------------------------------------------------------------------
    def _bearer_ok(self, request: StubRequest) -> bool:
        auth = request.header("authorization")
        with self._class_lock:
            return auth.startswith("Bearer ") and auth[7:] in self._valid_tokens

    def _auth(self, request: StubRequest) -> StubResponse:
        body: Any = request.json() if request.body else None
        if not isinstance(body, dict) or not body.get("username"):
            return StubResponse(400, _error("Username and password are required", "Bad Request"))
        if self.mode == "bad_key" or body != self.expected_auth:
            return StubResponse(401, _error("Invalid username, password or api key", "Unauthorized"))
        if self.mode == "auth_status_error":
            return StubResponse(200, {"status": "ERROR", "message": "Trader is disabled", "token": ""})
        if self.mode == "no_token":
            return StubResponse(200, {"status": "OK", "message": "Authorized"})
        with self._class_lock:
            token = f"stub-ib-token-{next(self._numbers)}"
            self._valid_tokens.add(token)
        self.tokens.append(token)
        return StubResponse(200, {"status": "OK", "message": "Authorized", "token": token})

    def handle(self, request: StubRequest) -> StubResponse:
        if self.mode == "rate_limit":
            return StubResponse(429, _error("Too many requests", "Too Many Requests"))
        path = request.path.rstrip("/")
        if path == "/auth" and request.method == "POST":
            return self._auth(request)
        parts = path.split("/")
        is_trader = request.method == "GET" and path == "/info/trader"
        is_positions = request.method == "GET" and len(parts) == 4 and parts[1:4:2] == ["account", "positions"]
        is_place = request.method == "POST" and len(parts) == 4 and parts[1:4:2] == ["order", "place"]
        is_list = request.method == "GET" and len(parts) == 4 and parts[1] == "order"
        is_cancel = request.method == "DELETE" and len(parts) == 5 and parts[1:4:2] == ["order", "cancel"]
        if not (is_trader or is_positions or is_place or is_list or is_cancel):
            return StubResponse(404, _error(f"Not found: {path}", "Not Found"))
        if self.mode == "bad_key" or not self._bearer_ok(request):
            return StubResponse(401, _error("Invalid or expired token", "Unauthorized"))
        if not is_trader and parts[2] not in ACCOUNTS:
            return StubResponse(403, _error("Account not permitted", "Forbidden"))
        if is_place or is_cancel:
            return self._command(request, parts)
        if self.mode == "status_error":
            return StubResponse(200, {"status": "ERROR", "message": "Trader information unavailable"})
        if self.mode == "malformed":
            return StubResponse(200, "<html><body>502 Bad Gateway</body></html>")
        if self.mode == "positions_down" and is_positions:
            return StubResponse(500, None)
        if is_trader:
            return StubResponse(
                200, {"status": "OK", "message": "", "accounts": ACCOUNTS, "isLive": False, "traderId": USERNAME}
            )
        account = parts[2]
        with self._book:
            if is_list:
                wanted = parts[3].upper()
                orders = [
                    o for o in self.orders.values() if o["accountId"] == account and wanted in ("ANY", o["status"])
                ]
                return StubResponse(200, {"status": "OK", "message": "", "orders": copy.deepcopy(orders)})
            positions = [p for p in self.positions if p["accountId"] == account]
            return StubResponse(
                200, {"status": "OK", "message": "", "accountId": account, "positions": copy.deepcopy(positions)}
            )

    # -- the venue ----------------------------------------------------------------------------------
    def _command(self, request: StubRequest, parts: list[str]) -> StubResponse:
        account = parts[2]
        body: Any = request.json() if request.body else None
        if parts[3] == "place":
            self.placed.append(body)
        if self.mode == "lost":
            time.sleep(self.delay)
            return StubResponse(200, {"status": "ERROR", "message": "lost"})
        answer = self._place(account, body) if parts[3] == "place" else self._cancel(account, parts[4])
        if self.mode == "timeout_after_accept":
            time.sleep(self.delay)
        if self.mode == "server_error":
            return StubResponse(500, None)
        if self.mode in ("malformed", "malformed_order"):
            return StubResponse(200, "<html><body>502 Bad Gateway</body></html>")
        return answer

    def _place(self, account: str, body: Any) -> StubResponse:
        if self.mode == "reject":
            return StubResponse(self.reject_http_status, {"status": "ERROR", "message": self.reject_message})
        problem = self._problem(account, body)
        if problem:
            return StubResponse(400, _error(problem, "Bad Request"))
        with self._class_lock:
            strategy_id = next(self._numbers)
        order_id = f"{account}-{strategy_id}"
        order = {
            "orderId": order_id,
            "strategyId": strategy_id,
            "accountId": account,
            "exchSym": body["exchSym"],
            "status": "NEW",
            "side": body["side"],
            "quantity": body["quantity"],
            "orderType": body["orderType"],
            "duration": body["duration"],
            "fillQuantity": 0,
        }
        for name in ("limitPrice", "stopPrice"):
            if name in body:
                order[name] = body[name]
        with self._book:
            self.orders[order_id] = order
            if body["orderType"] == "1":
                self._fill(order)
        answer: dict[str, Any] = {"status": "OK", "message": "", "strategyId": strategy_id}
        if self.send_order_id:
            answer["orderId"] = order_id
        return StubResponse(200, answer)

    @staticmethod
    def _problem(account: str, body: Any) -> str:
        if not isinstance(body, dict):
            return "The request body is not an OrderRequest"
        unknown = set(body) - ORDER_FIELDS
        if unknown:
            return f"Unknown fields: {', '.join(sorted(unknown))}"
        missing = [f for f in ("accountId", "exchSym", "side", "quantity", "orderType", "duration") if f not in body]
        if missing:
            return f"Missing fields: {', '.join(missing)}"
        if body["accountId"] != account:
            return "accountId does not match the path"
        if body["side"] not in ("BUY", "SELL") or body["duration"] not in ("0", "1"):
            return "side or duration is invalid"
        if not isinstance(body["quantity"], int | float) or body["quantity"] <= 0:
            return "quantity must be positive"
        needs = {"1": (False, False), "2": (True, False), "3": (False, True)}.get(body["orderType"])
        if needs is None:
            return "orderType must be 1, 2 or 3"
        if needs != ("limitPrice" in body, "stopPrice" in body):
            return "limitPrice/stopPrice do not fit the orderType"
        return ""

    def _fill(self, order: dict[str, Any]) -> None:
        """Under self._book: fill the whole order at fill_price and move the position."""
        qty, price = order["quantity"], self.fill_price
        order.update(
            status="FILLED",
            fillQuantity=qty,
            fillPrice=price,
            fillDate=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        )
        row = next(
            (p for p in self.positions if (p["accountId"], p["exchSym"]) == (order["accountId"], order["exchSym"])),
            None,
        )
        net = 0 if row is None else row["quantity"] * (1 if row["side"] == "LONG" else -1)
        average = None if row is None else row["price"]
        signed = qty if order["side"] == "BUY" else -qty
        new = net + signed
        if net == 0 or (net > 0) == (signed > 0):
            average = (abs(net) * (average or 0) + qty * price) / abs(new)
        elif (new > 0) != (net > 0):
            average = price
        if row is not None:
            self.positions.remove(row)
        if new:
            self.positions.append(
                {
                    "accountId": order["accountId"],
                    "currencyCode": "USD",
                    "exchSym": order["exchSym"],
                    "positionId": f"{order['accountId']}-{order['exchSym']}",
                    "quantity": abs(new),
                    "price": average,
                    "dateOpened": int(datetime.now(UTC).strftime("%Y%m%d")),
                    "side": "LONG" if new > 0 else "SHORT",
                    "unrealizedPL": 0.0,
                }
            )

    def _cancel(self, account: str, order_id: str) -> StubResponse:
        with self._book:
            order = self.orders.get(order_id)
            if order is None or order["accountId"] != account:
                return StubResponse(200, {"status": "ERROR", "message": f"Order {order_id} not found"})
            if order["status"] not in WORKING_STATUSES:
                return StubResponse(200, {"status": "ERROR", "message": f"Order {order_id} is not working"})
            order["status"] = "CANCELLED"
            return StubResponse(200, {"status": "OK", "message": "", "orders": [copy.deepcopy(order)]})
