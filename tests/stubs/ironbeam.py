"""Ironbeam API v2 stub (PROVIDERS.md §2).

Speaks the documented protocol: `POST /auth` → `{"status": "OK", "message", "token"}` (401 with
the `Error` body `{"status": "ERROR", "message", "error"}` for a wrong username/password/apiKey),
then `GET /info/trader` and `GET /account/{accountId}/positions` with `Authorization: Bearer`.
Every endpoint may answer 429 with the `Error` body (the spec gives no Retry-After, [U]).

Modes, besides the common ones:
    auth_status_error   /auth answers 200 with status ERROR
    status_error        data calls answer 200 with status ERROR
    no_token            /auth answers 200 status OK without a token
`expected_auth` is the exact /auth body this server accepts (the real key set is [U]).
"""

from __future__ import annotations

import itertools
import threading
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

    # -- helpers for tests --------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        """As if every session expired (the lifetime is undocumented): every token is refused."""
        with self._class_lock:
            self._valid_tokens.clear()

    def calls(self, path: str) -> list[StubRequest]:
        return [r for r in self.requests if r.path.rstrip("/") == path]

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
        is_trader = path == "/info/trader"
        is_positions = len(parts) == 4 and parts[1] == "account" and parts[3] == "positions"
        if request.method != "GET" or not (is_trader or is_positions):
            return StubResponse(404, _error(f"Not found: {path}", "Not Found"))
        if self.mode == "bad_key" or not self._bearer_ok(request):
            return StubResponse(401, _error("Invalid or expired token", "Unauthorized"))
        if self.mode == "status_error":
            return StubResponse(200, {"status": "ERROR", "message": "Trader information unavailable"})
        if self.mode == "malformed":
            return StubResponse(200, "<html><body>502 Bad Gateway</body></html>")
        if is_trader:
            return StubResponse(
                200, {"status": "OK", "message": "", "accounts": ACCOUNTS, "isLive": False, "traderId": USERNAME}
            )
        account = parts[2]
        if account not in ACCOUNTS:
            return StubResponse(403, _error("Account not permitted", "Forbidden"))
        return StubResponse(
            200,
            {
                "status": "OK",
                "message": "",
                "accountId": account,
                "positions": [p for p in POSITIONS if p["accountId"] == account],
            },
        )
