"""Ironbeam API v2 over its documented HTTP interface (PROVIDERS.md §2, the Ironbeam 2.1 OpenAPI spec).

Auth: `POST /auth` returns `{"status": "OK", "message": ..., "token": ...}`, used as
`Authorization: Bearer <token>`. The token lifetime is not documented [U] and there is no refresh
endpoint, so the token is cached in this process per credential set and, on a 401, dropped and
requested again (once). Every answer carries a top-level `status`; a 200 whose status is not OK
is treated as a rejection [P], as a third-party client does.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from typing import Any

from django.conf import settings

from apps.integrations.base import require
from apps.integrations.brokers import BrokerClient, TokenCache
from apps.integrations.errors import IntegrationError
from apps.integrations.http import Classifier, provider_message

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

# -- the in-process token cache ------------------------------------------------------------------

_cache: TokenCache[str] = TokenCache()
_tokens = _cache.tokens  # cache key (a hash, see _cache_key) -> token
_lock_for = _cache.lock_for
clear_token_cache = _cache.clear


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


# -- the client -----------------------------------------------------------------------------------


class IronbeamClient(BrokerClient):
    provider = "ironbeam"
    HOSTS = HOSTS

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

    def list_positions(self, account_id: str) -> list[dict[str, Any]]:
        """Open positions of one account. `quantity` is unsigned; the direction is in `side`."""
        if not ACCOUNT_ID.fullmatch(str(account_id)):
            raise IntegrationError(
                "An Ironbeam account id is 5 to 10 digits.",
                error_code="INTEGRATION_REQUEST_REJECTED",
                provider=self.provider,
                suggested_fix="Use an account id from Verify (GET /info/trader lists them).",
            )
        return self._get("position.list", f"/account/{account_id}/positions", validate=_positions).body["positions"]

    def verify(self) -> dict[str, Any]:
        info = self.trader_info(operation="verify")
        return {"accounts": len(info["accounts"]), "env": self.env, "is_live": bool(info.get("isLive"))}
