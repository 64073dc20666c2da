"""Tradovate REST API stub (PROVIDERS.md §1).

Speaks the documented protocol: `POST /auth/accesstokenrequest` (a failed login is HTTP 200 with
`errorText`), `GET /auth/renewaccesstoken`, `GET /account/list` and `GET /position/list` with a
bearer token, penalty tickets as HTTP 200 `{"p-ticket", "p-time", "p-captcha"}`, 429 with an empty
body, 423 before a lock-out. Paths are matched case-insensitively, with or without `/v1`.

Orders: an in-memory venue per stub. `POST /order/placeorder` books an order (Order, its New
Command carrying `clOrdId`, its OrderVersion carrying `orderQty`); a Market order fills at once at
`fill_price` (a Fill, and the account's Position moves); Limit/Stop orders stay Working.
`GET /order/list`, `/command/list`, `/orderVersion/list`, `/fill/list`, `/position/list`,
`/contract/item?id=`, `/contract/find?name=`; `POST /order/cancelorder`, `/order/liquidateposition`
(cancels the contract's working orders and closes the position with a filled Market order; on a
flat account it answers `{"failureReason": "Success"}` [U: the real answer is undocumented]).

Brackets: `POST /order/placeoso` takes the PlaceOrder body plus `bracket1` (PlaceOSO: action,
orderType, price/stopPrice, timeInForce, clOrdId) and answers PlaceOSOResult `{orderId, oso1Id}`
(refused: `{failureReason, failureText}`, nothing booked). The bracket order is held: it is in no list
until its entry fills, then it is booked as a Working order (its New command carries bracket1's
clOrdId unless `bracket_commands_carry_clordid` is False [U: the real command's clOrdId is
undocumented]). An entry cancelled (or liquidated) before it fills takes its held bracket with it
(listed Canceled); a held bracket can be cancelled by its oso1Id. `fill_market = False` leaves
Market orders Working until a test calls `fill(order_id)`; `fill()` also fills a Working Stop (a
stop hit), moving the position.

Modes, besides the common ones:
    expiring_token     sign-ins issue tokens that expire in `short_lifetime`; renewals the full lifetime
    p_ticket           a sign-in without a ticket gets one (p-time = `p_time`); the resend with it succeeds
    p_ticket_forever   every sign-in gets a new ticket
    p_captcha          every sign-in gets a ticket with p-captcha: true
    p_ticket_data      data calls (GET, no body to carry a ticket) get a ticket
    p_ticket_order     order commands (place, cancel, liquidate) get a ticket; nothing is booked
    locked_423         every call is answered 423
    error_text         data calls answer 200 {"errorText": `data_error_text`, "ok": false}
    malformed_token    the sign-in answers 200 without an accessToken
    reject             placeorder answers 200 {"failureReason": `reject_reason`, "failureText": `reject_text`}
                       (the documented PlaceOrderResult refusal, no orderId); nothing is booked
    timeout_after_accept  order commands take effect (booked, filled, cancelled), then the answer stalls
                       for `delay` seconds: past the client's timeout, the ambiguous case
    lost               order commands stall for `delay` seconds and never take effect
    server_error       order commands take effect, then the answer is a 500 (an API gateway failing
                       after the backend acted: Tradovate documents no 5xx, so this is the worst case)
    late_accept        placeorder answers 500 at once, and the venue books the order `accept_after` seconds
                       later (a gateway that failed while the backend was still accepting: the order is
                       not at the broker for a while, then it is; RELIABILITY J3)
    positions_down     /position/list answers 500
    malformed          (common) also garbles order commands' answers, after they took effect
`renew_answer` picks the renewal's answer: ok | unauthorized (401) | error_text (200) | rate_limit (429).

Spies: `placed` is every placeorder body that reached the venue with a valid token (booked,
refused or stalled), `placed_oso` every placeoso body; `orders` the booked orders by id; `working()`
the ones still working; `held` the brackets waiting for their entries (by entry id).
`stop()` also closes open keep-alive connections, so that a stopped stub refuses connections.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from tests.stubs.base import StubRequest, StubResponse, StubServer

USERNAME = "stub-trader"
PASSWORD = "Stub-Pa55word-7f3c9e41"
APP_ID = "TradeOps"
CID = "1234"
SECRET = "stub-sec-0a1b2c3d-4e5f-6789-abcd-ef0123456789"
LOGIN_ERROR = "Incorrect username or password. Please try again, noting that passwords are case-sensitive."

ACCOUNTS = [
    {
        "id": 123456,
        "name": "DEMO123456",
        "userId": 1,
        "accountType": "Customer",
        "active": True,
        "clearingHouseId": 2,
        "riskCategoryId": 2,
        "autoLiqProfileId": 2,
        "marginAccountType": "Speculator",
        "legalStatus": "Individual",
        "timestamp": "2024-01-15T09:30:00Z",
    },
    {
        "id": 123457,
        "name": "DEMO123457",
        "userId": 1,
        "accountType": "Customer",
        "active": True,
        "clearingHouseId": 2,
        "riskCategoryId": 2,
        "autoLiqProfileId": 2,
        "marginAccountType": "Speculator",
        "legalStatus": "Individual",
        "timestamp": "2024-01-15T09:30:00Z",
    },
]
POSITIONS = [
    {
        "id": 9001,
        "accountId": 123456,
        "contractId": 2424242,
        "timestamp": "2024-01-15T09:31:00Z",
        "tradeDate": {"year": 2024, "month": 1, "day": 15},
        "netPos": -2,
        "netPrice": 4801.25,
        "bought": 0,
        "boughtValue": 0,
        "sold": 2,
        "soldValue": 9602.5,
        "prevPos": 0,
        "prevPrice": None,
    }
]


# contractId -> contract name (the symbol orders use).
CONTRACTS = {2424242: "MESZ5", 2424243: "MNQZ5"}
DEFAULT_FILL_PRICE = 5000.25
GET_ENTITIES = ("/account/list", "/position/list", "/order/list", "/command/list", "/orderversion/list", "/fill/list")
ORDER_COMMANDS = ("/order/placeorder", "/order/placeoso", "/order/cancelorder", "/order/liquidateposition")
PLACES = ("/order/placeorder", "/order/placeoso")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TradovateStub(StubServer):
    good_env = {
        "TRADOVATE_USERNAME": USERNAME,
        "TRADOVATE_PASSWORD": PASSWORD,
        "TRADOVATE_APP_ID": APP_ID,
        "TRADOVATE_CID": CID,
        "TRADOVATE_SECRET": SECRET,
        "TRADOVATE_ENV": "demo",
    }

    # Tokens issued by any instance stay valid for every instance: the client caches tokens per
    # process, and a later stub may be given the same loopback port as an earlier one.
    _valid_tokens: ClassVar[set[str]] = set()
    _numbers: ClassVar[itertools.count[int]] = itertools.count(1)
    _class_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        super().__init__()
        self.lifetime = timedelta(minutes=80)
        self.short_lifetime = timedelta(minutes=5)
        self.p_time: float = 3
        self.renew_answer = "ok"
        self.login_error_text = LOGIN_ERROR
        self.data_error_text = "Access is denied"
        self.tickets: list[str] = []  # every ticket issued, in order
        self.tokens: list[str] = []  # every token issued (sign-in or renewal), in order
        # The venue.
        self.fill_price: float = DEFAULT_FILL_PRICE
        self.accept_after: float = 1.0
        self.reject_reason = "MaxPosLimitReached"
        self.reject_text = "Max position limit reached for MESZ5"
        self.placed: list[dict[str, Any]] = []
        self.placed_oso: list[dict[str, Any]] = []
        self.fill_market = True
        self.bracket_commands_carry_clordid = True
        self.held: dict[int, dict[str, Any]] = {}  # entry order id -> its bracket, until the entry fills
        self.orders: dict[int, dict[str, Any]] = {}
        self.commands: list[dict[str, Any]] = []
        self.versions: list[dict[str, Any]] = []
        self.fills: list[dict[str, Any]] = []
        self.positions: list[dict[str, Any]] = copy.deepcopy(POSITIONS)
        self._book = threading.Lock()

    # -- helpers for tests --------------------------------------------------------------------------
    def revoke_tokens(self) -> None:
        """As if the sessions ended (e.g. another sign-in replaced them): every token is refused."""
        with self._class_lock:
            self._valid_tokens.clear()

    def calls(self, path: str) -> list[StubRequest]:
        return [r for r in self.requests if self._route(r.path) == path.lower()]

    def working(self) -> list[dict[str, Any]]:
        with self._book:
            return [o for o in self.orders.values() if o["ordStatus"] == "Working"]

    def fill(self, order_id: int, price: float | None = None) -> None:
        """Fill a working order (a Market order left working, a Stop the market reached) at `price`
        (default `fill_price`); an entry's held bracket is released."""
        with self._book:
            order = self.orders[order_id]
            assert order["ordStatus"] == "Working", order
            qty = next(v["orderQty"] for v in reversed(self.versions) if v["orderId"] == order_id)
            self._fill(order, qty, self.fill_price if price is None else price)

    def net_position(self, account_id: int, contract_id: int) -> int:
        with self._book:
            return sum(
                p["netPos"] for p in self.positions if (p["accountId"], p["contractId"]) == (account_id, contract_id)
            )

    # -- protocol -----------------------------------------------------------------------------------
    @staticmethod
    def _route(path: str) -> str:
        path = path.lower().rstrip("/")
        return path[3:] if path.startswith("/v1/") else path

    def _issue(self, lifetime: timedelta) -> dict[str, Any]:
        with self._class_lock:
            number = next(self._numbers)
            token = f"stub-access-{number}"
            self._valid_tokens.add(token)
        self.tokens.append(token)
        return {
            "accessToken": token,
            "mdAccessToken": f"stub-md-{number}",
            "expirationTime": _iso(datetime.now(UTC) + lifetime),
            "passwordExpirationTime": _iso(datetime.now(UTC) + timedelta(days=90)),
            "userStatus": "Active",
            "userId": 1,
            "name": USERNAME,
            "hasLive": False,
        }

    def _ticket(self, captcha: bool) -> StubResponse:
        with self._class_lock:
            ticket = f"stub-pticket-{next(self._numbers)}"
        self.tickets.append(ticket)
        return StubResponse(200, {"p-ticket": ticket, "p-time": self.p_time, "p-captcha": captcha})

    def _bearer_ok(self, request: StubRequest) -> bool:
        auth = request.header("authorization")
        with self._class_lock:
            return auth.startswith("Bearer ") and auth[7:] in self._valid_tokens

    @staticmethod
    def _login_ok(body: Any) -> bool:
        if not isinstance(body, dict):
            return False
        return (
            body.get("name") == USERNAME
            and body.get("password") == PASSWORD
            and body.get("appId") == APP_ID
            and str(body.get("cid")) == CID  # the server takes a number or a string [P]
            and body.get("sec") == SECRET
        )

    def _sign_in(self, request: StubRequest) -> StubResponse:
        body = request.json()
        if self.mode == "p_captcha":
            return self._ticket(captcha=True)
        if self.mode == "p_ticket_forever":
            return self._ticket(captcha=False)
        if self.mode == "p_ticket" and (not isinstance(body, dict) or body.get("p-ticket") not in self.tickets):
            return self._ticket(captcha=False)
        if self.mode == "bad_key" or not self._login_ok(body):
            return StubResponse(200, {"errorText": self.login_error_text})
        if self.mode == "malformed_token":
            return StubResponse(200, {"userStatus": "Active", "userId": 1})
        return StubResponse(200, self._issue(self.short_lifetime if self.mode == "expiring_token" else self.lifetime))

    def _renew(self, request: StubRequest) -> StubResponse:
        if self.renew_answer == "rate_limit":
            return StubResponse(429, None)
        if self.renew_answer == "error_text":
            return StubResponse(200, {"errorText": "Session not found"})
        if self.renew_answer == "unauthorized" or not self._bearer_ok(request):
            return StubResponse(401, None)
        return StubResponse(200, self._issue(self.lifetime))

    def handle(self, request: StubRequest) -> StubResponse:
        if self.mode == "rate_limit":
            return StubResponse(429, None)  # documented: Content-Length 0, no Retry-After, no ticket
        if self.mode == "locked_423":
            return StubResponse(423, None)
        path = self._route(request.path)
        if path == "/auth/accesstokenrequest" and request.method == "POST":
            return self._sign_in(request)
        if path == "/auth/renewaccesstoken" and request.method == "GET":
            return self._renew(request)
        known_get = path in GET_ENTITIES or path in ("/contract/item", "/contract/find")
        if not ((request.method == "GET" and known_get) or (request.method == "POST" and path in ORDER_COMMANDS)):
            return StubResponse(404, None)
        if self.mode == "bad_key" or not self._bearer_ok(request):
            return StubResponse(401, None)
        if request.method == "POST":
            return self._command(path, request)
        if self.mode == "p_ticket_data":
            return self._ticket(captcha=False)
        if self.mode == "error_text":
            return StubResponse(200, {"errorText": self.data_error_text, "ok": False})
        if self.mode == "malformed":
            return StubResponse(200, {"items": "maintenance"})  # an object where an array is promised
        if self.mode == "positions_down" and path == "/position/list":
            return StubResponse(500, None)
        if path.startswith("/contract/"):
            return self._contract(path, request)
        with self._book:
            entities = {
                "/account/list": ACCOUNTS,
                "/position/list": self.positions,
                "/order/list": list(self.orders.values()),
                "/command/list": self.commands,
                "/orderversion/list": self.versions,
                "/fill/list": self.fills,
            }[path]
            return StubResponse(200, copy.deepcopy(entities))

    # -- the venue ----------------------------------------------------------------------------------
    @staticmethod
    def _contract(path: str, request: StubRequest) -> StubResponse:
        if path == "/contract/item":
            wanted = (request.query.get("id") or [""])[0]
            matches = [(cid, name) for cid, name in CONTRACTS.items() if str(cid) == wanted]
        else:
            wanted = (request.query.get("name") or [""])[0].upper()
            matches = [(cid, name) for cid, name in CONTRACTS.items() if name == wanted]
        if not matches:
            return StubResponse(404, None)
        cid, name = matches[0]
        return StubResponse(
            200, {"id": cid, "name": name, "contractMaturityId": cid // 10, "timestamp": "2025-01-02T00:00:00Z"}
        )

    def _command(self, path: str, request: StubRequest) -> StubResponse:
        body = request.json()
        if path == "/order/placeorder":
            self.placed.append(body)
        if path == "/order/placeoso":
            self.placed_oso.append(body)
        if self.mode == "p_ticket_order":
            return self._ticket(captcha=False)
        if self.mode == "lost":
            time.sleep(self.delay)
            return StubResponse(200, {"failureReason": "UnknownReason", "failureText": "lost"})
        if not isinstance(body, dict):
            return StubResponse(400, None)
        if self.mode == "late_accept" and path in PLACES:
            later = threading.Timer(self.accept_after, self._place, args=(body, path == "/order/placeoso"))
            later.daemon = True
            later.start()
            return StubResponse(500, None)
        if path in PLACES:
            answer = self._place(body, path == "/order/placeoso")
        elif path == "/order/cancelorder":
            answer = self._cancel(body)
        else:
            answer = self._liquidate(body)
        if self.mode == "timeout_after_accept":
            time.sleep(self.delay)
        if self.mode == "server_error":
            return StubResponse(500, None)
        if self.mode == "malformed":
            return StubResponse(200, {"items": "maintenance"})
        return answer

    def _account_ok(self, body: dict[str, Any], *, spec: bool) -> bool:
        for account in ACCOUNTS:
            if body.get("accountId") == account["id"] and (not spec or body.get("accountSpec") == account["name"]):
                return True
        return False

    def _place(self, body: dict[str, Any], oso: bool = False) -> StubResponse:
        if self.mode == "reject":
            return StubResponse(200, {"failureReason": self.reject_reason, "failureText": self.reject_text})
        refusal = self._refusal(body) or (self._bracket_refusal(body) if oso else None)
        if refusal:
            return StubResponse(200, {"failureReason": refusal[0], "failureText": refusal[1]})
        contract_id = next(cid for cid, name in CONTRACTS.items() if name == body["symbol"])
        bracket = None
        if oso:
            with self._class_lock:
                bracket_id = next(self._numbers)
            bracket = {**body["bracket1"], "id": bracket_id}
        order_id = self._book_order(
            account_id=body["accountId"],
            contract_id=contract_id,
            action=body["action"],
            qty=body["orderQty"],
            order_type=body["orderType"],
            price=body.get("price"),
            stop_price=body.get("stopPrice"),
            cl_ord_id=body.get("clOrdId"),
            bracket=bracket,
        )
        if bracket is not None:
            return StubResponse(200, {"orderId": order_id, "oso1Id": bracket["id"]})
        return StubResponse(200, {"orderId": order_id})

    @staticmethod
    def _bracket_refusal(body: dict[str, Any]) -> tuple[str, str] | None:
        bracket = body.get("bracket1")
        if not isinstance(bracket, dict):
            return "UnknownReason", "bracket1 is required"
        if bracket.get("action") not in ("Buy", "Sell") or bracket["action"] == body.get("action"):
            return "UnknownReason", "bracket1 action must be Buy or Sell, against the entry"
        needs = {"Limit": (True, False), "Stop": (False, True)}.get(bracket.get("orderType"))
        if needs is None:
            return "Unsupported", "bracket1 orderType"
        if needs != ("price" in bracket, "stopPrice" in bracket):
            return "InvalidPrice", "bracket1 price/stopPrice do not fit its orderType"
        if "orderQty" in bracket or "symbol" in bracket:
            return "UnknownReason", "bracket1 takes the entry's symbol and quantity"
        return None

    def _refusal(self, body: dict[str, Any]) -> tuple[str, str] | None:
        if not self._account_ok(body, spec=True):
            return "Unauthorized", "Unknown account"
        if body.get("symbol") not in CONTRACTS.values():
            return "InvalidContract", f"Unknown contract {body.get('symbol')}"
        if body.get("action") not in ("Buy", "Sell"):
            return "UnknownReason", "action must be Buy or Sell"
        qty = body.get("orderQty")
        if not isinstance(qty, int) or isinstance(qty, bool) or qty <= 0:
            return "UnknownReason", "orderQty must be a positive integer"
        needs = {"Market": (False, False), "Limit": (True, False), "Stop": (False, True)}.get(body.get("orderType"))
        if needs is None:
            return "Unsupported", "orderType"
        if needs != ("price" in body, "stopPrice" in body):
            return "InvalidPrice", "price/stopPrice do not fit the orderType"
        if body.get("isAutomated") is not True:
            return "UnknownReason", "automated orders must say isAutomated: true"
        return None

    def _book_order(
        self,
        *,
        account_id: int,
        contract_id: int,
        action: str,
        qty: int,
        order_type: str,
        price: float | None = None,
        stop_price: float | None = None,
        cl_ord_id: str | None = None,
        bracket: dict[str, Any] | None = None,
    ) -> int:
        with self._class_lock:
            order_id = next(self._numbers)
        with self._book:
            self._add_order(
                order_id, account_id=account_id, contract_id=contract_id, action=action, qty=qty,
                order_type=order_type, price=price, stop_price=stop_price, cl_ord_id=cl_ord_id,
            )  # fmt: skip
            if bracket is not None:
                self.held[order_id] = bracket
            if order_type == "Market" and self.fill_market:
                self._fill(self.orders[order_id], qty, self.fill_price)
        return order_id

    def _add_order(
        self,
        order_id: int,
        *,
        account_id: int,
        contract_id: int,
        action: str,
        qty: int,
        order_type: str,
        price: float | None = None,
        stop_price: float | None = None,
        cl_ord_id: str | None = None,
        status: str = "Working",
    ) -> None:
        """Under self._book: an Order, its New Command and its OrderVersion."""
        now = _iso(datetime.now(UTC))
        with self._class_lock:
            command_id, version_id = next(self._numbers), next(self._numbers)
        self.orders[order_id] = {
            "id": order_id,
            "accountId": account_id,
            "contractId": contract_id,
            "timestamp": now,
            "action": action,
            "ordStatus": status,
            "admin": False,
        }
        self.commands.append(
            {
                "id": command_id,
                "orderId": order_id,
                "timestamp": now,
                "clOrdId": cl_ord_id,
                "commandType": "New",
                "commandStatus": "RiskPassed",
                "isAutomated": True,
            }
        )
        version: dict[str, Any] = {
            "id": version_id,
            "orderId": order_id,
            "orderQty": qty,
            "orderType": order_type,
            "timeInForce": "Day",
        }
        if price is not None:
            version["price"] = price
        if stop_price is not None:
            version["stopPrice"] = stop_price
        self.versions.append(version)

    def _end_bracket(self, entry: dict[str, Any], status: str) -> None:
        """Under self._book: the entry's held bracket is booked, Working once the entry filled,
        Canceled when the entry ended without a fill."""
        bracket = self.held.pop(entry["id"], None)
        if bracket is None:
            return
        qty = next(v["orderQty"] for v in reversed(self.versions) if v["orderId"] == entry["id"])
        self._add_order(
            bracket["id"], account_id=entry["accountId"], contract_id=entry["contractId"],
            action=bracket["action"], qty=qty, order_type=bracket["orderType"], price=bracket.get("price"),
            stop_price=bracket.get("stopPrice"),
            cl_ord_id=bracket.get("clOrdId") if self.bracket_commands_carry_clordid else None, status=status,
        )  # fmt: skip

    def _fill(self, order: dict[str, Any], qty: int, price: float) -> None:
        """Under self._book."""
        with self._class_lock:
            fill_id = next(self._numbers)
        now = datetime.now(UTC)
        self.fills.append(
            {
                "id": fill_id,
                "orderId": order["id"],
                "contractId": order["contractId"],
                "timestamp": _iso(now),
                "tradeDate": {"year": now.year, "month": now.month, "day": now.day},
                "action": order["action"],
                "qty": qty,
                "price": price,
                "active": True,
                "finallyPaired": 0,
            }
        )
        order["ordStatus"] = "Filled"
        row = next(
            (
                p
                for p in self.positions
                if (p["accountId"], p["contractId"]) == (order["accountId"], order["contractId"])
            ),
            None,
        )
        if row is None:
            with self._class_lock:
                position_id = next(self._numbers)
            row = {
                "id": position_id,
                "accountId": order["accountId"],
                "contractId": order["contractId"],
                "timestamp": _iso(now),
                "tradeDate": {"year": now.year, "month": now.month, "day": now.day},
                "netPos": 0,
                "netPrice": None,
                "bought": 0,
                "boughtValue": 0,
                "sold": 0,
                "soldValue": 0,
                "prevPos": 0,
                "prevPrice": None,
            }
            self.positions.append(row)
        signed = qty if order["action"] == "Buy" else -qty
        net = row["netPos"]
        new = net + signed
        if net == 0 or (net > 0) == (signed > 0):
            row["netPrice"] = (abs(net) * (row["netPrice"] or 0) + qty * price) / abs(new)
        elif new == 0:
            row["netPrice"] = None
        elif (new > 0) != (net > 0):
            row["netPrice"] = price
        row["netPos"] = new
        side = "bought" if signed > 0 else "sold"
        row[side] += qty
        row[f"{side}Value"] += qty * price
        self._end_bracket(order, "Working")  # an OSO sends its bracket once the entry fills

    def _cancel(self, body: dict[str, Any]) -> StubResponse:
        with self._book:
            held_by = next((e for e, b in self.held.items() if b["id"] == body.get("orderId")), None)
            if held_by is not None:  # a held bracket: it will never be sent
                self._end_bracket(self.orders[held_by], "Canceled")
            order = self.orders.get(body.get("orderId"))  # type: ignore[arg-type]
            if order is None:
                return StubResponse(200, {"failureReason": "UnknownReason", "failureText": "Order not found"})
            if order["ordStatus"] != "Working" and held_by is None:
                return StubResponse(200, {"failureReason": "TooLate", "failureText": "Order is not working"})
            order["ordStatus"] = "Canceled"
            self._end_bracket(order, "Canceled")  # an entry cancelled before it filled takes its bracket
            with self._class_lock:
                command_id = next(self._numbers)
            self.commands.append(
                {
                    "id": command_id,
                    "orderId": order["id"],
                    "timestamp": _iso(datetime.now(UTC)),
                    "commandType": "Cancel",
                    "commandStatus": "RiskPassed",
                    "isAutomated": body.get("isAutomated"),
                }
            )
        return StubResponse(200, {"commandId": command_id})

    def _liquidate(self, body: dict[str, Any]) -> StubResponse:
        if not isinstance(body.get("admin"), bool):
            return StubResponse(
                200, {"violations": [{"constraint": "admin", "value": "", "description": "admin is required"}]}
            )
        if not self._account_ok(body, spec=False) or body.get("contractId") not in CONTRACTS:
            return StubResponse(200, {"failureReason": "InvalidContract", "failureText": "Unknown account or contract"})
        account_id, contract_id = body["accountId"], body["contractId"]
        with self._book:
            for order in self.orders.values():
                if (order["accountId"], order["contractId"], order["ordStatus"]) == (
                    account_id,
                    contract_id,
                    "Working",
                ):
                    order["ordStatus"] = "Canceled"
            for entry_id in list(self.held):
                entry = self.orders[entry_id]
                if (entry["accountId"], entry["contractId"]) == (account_id, contract_id):
                    self._end_bracket(entry, "Canceled")
        net = self.net_position(account_id, contract_id)
        if net == 0:
            return StubResponse(200, {"failureReason": "Success"})
        order_id = self._book_order(
            account_id=account_id,
            contract_id=contract_id,
            action="Sell" if net > 0 else "Buy",
            qty=abs(net),
            order_type="Market",
        )
        return StubResponse(200, {"orderId": order_id})
