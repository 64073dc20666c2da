"""Tradovate REST API stub (PROVIDERS.md §1).

Speaks the documented protocol: `POST /auth/accesstokenrequest` (a failed login is HTTP 200 with
`errorText`), `GET /auth/renewaccesstoken`, `GET /account/list` and `GET /position/list` with a
bearer token, penalty tickets as HTTP 200 `{"p-ticket", "p-time", "p-captcha"}`, 429 with an empty
body, 423 before a lock-out. Paths are matched case-insensitively, with or without `/v1`.

Modes, besides the common ones:
    expiring_token     sign-ins issue tokens that expire in `short_lifetime`; renewals the full lifetime
    p_ticket           a sign-in without a ticket gets one (p-time = `p_time`); the resend with it succeeds
    p_ticket_forever   every sign-in gets a new ticket
    p_captcha          every sign-in gets a ticket with p-captcha: true
    p_ticket_data      data calls (GET, no body to carry a ticket) get a ticket
    locked_423         every call is answered 423
    error_text         data calls answer 200 {"errorText": `data_error_text`, "ok": false}
    malformed_token    the sign-in answers 200 without an accessToken
`renew_answer` picks the renewal's answer: ok | unauthorized (401) | error_text (200) | rate_limit (429).
"""

from __future__ import annotations

import itertools
import threading
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

    # -- helpers for tests --------------------------------------------------------------------------
    def revoke_tokens(self) -> None:
        """As if the sessions ended (e.g. another sign-in replaced them): every token is refused."""
        with self._class_lock:
            self._valid_tokens.clear()

    def calls(self, path: str) -> list[StubRequest]:
        return [r for r in self.requests if self._route(r.path) == path.lower()]

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
        if path in ("/account/list", "/position/list") and request.method == "GET":
            if self.mode == "bad_key" or not self._bearer_ok(request):
                return StubResponse(401, None)
            if self.mode == "p_ticket_data":
                return self._ticket(captcha=False)
            if self.mode == "error_text":
                return StubResponse(200, {"errorText": self.data_error_text, "ok": False})
            if self.mode == "malformed":
                return StubResponse(200, {"items": "maintenance"})  # an object where an array is promised
            return StubResponse(200, ACCOUNTS if path == "/account/list" else POSITIONS)
        return StubResponse(404, None)
