"""Tradovate REST API over its documented HTTP interface (PROVIDERS.md §1).

Auth: `POST /auth/accesstokenrequest` returns a bearer token with an `expirationTime`. The token is
cached in this process per credential set and renewed with `GET /auth/renewaccesstoken` when less
than 15 minutes remain; the vendor warns against requesting new tokens repeatedly (the auth
endpoints allow 10 requests a minute, and a new session can end dependent sessions).

Failures Tradovate reports in an HTTP 200 are classified here, before the generic status rules:
- `errorText` (a failed login, a SimpleResponse `{"ok": false, "errorText": ...}`);
- a penalty ticket `{"p-ticket", "p-time", "p-captcha"}`: wait `p-time` seconds and resend the
  identical body plus `"p-ticket"`; with `p-captcha: true` a server cannot go on (wait ~1 hour).
429 (user locked out for about an hour, empty body) and 423 (a lock-out is imminent) are rate limits.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from apps.integrations.base import require
from apps.integrations.brokers import AUTH_CODES, BrokerClient, TokenCache
from apps.integrations.errors import IntegrationError
from apps.integrations.http import Classifier, provider_message

logger = logging.getLogger("tradeops.integrations.tradovate")

HOSTS = {
    "demo": "https://demo.tradovateapi.com/v1",
    "live": "https://live.tradovateapi.com/v1",
}
DEFAULT_APP_VERSION = "1.0"

# Renew when less than this remains before `expirationTime` (the vendor's own sample). The token
# lifetime itself is [P] (80 or 90 minutes, the docs disagree), so it is never assumed.
RENEW_BEFORE = timedelta(minutes=15)
# When renewal fails for a reason other than auth, a token with at least this much left is still used.
MIN_USABLE = timedelta(seconds=30)

# Penalty tickets: wait at most this long in-process (setting TRADOVATE_P_TICKET_MAX_WAIT_SECONDS
# overrides it); a longer p-time fails as INTEGRATION_RATE_LIMITED with retry_after = p-time,
# since resending before p-time has passed would only earn another ticket.
P_TICKET_MAX_WAIT_SECONDS = 60.0
# Resends after successive tickets before giving up.
P_TICKET_MAX_RESENDS = 2
# 429 and p-captcha: "cannot be resolved programmatically ... wait 1 hour".
LOCKOUT_SECONDS = 3600.0
# 423 "precedes a 429 ... back off hard". No duration is documented [U]: this is our choice.
LOCKED_BACKOFF_SECONDS = 300.0

# Injectable for tests (patch these module attributes): the wait for a p-ticket, and the clock.
_sleep: Callable[[float], None] = time.sleep


def _now() -> datetime:
    return datetime.now(UTC)


# -- the in-process token cache ------------------------------------------------------------------


@dataclass(frozen=True)
class _Token:
    value: str = field(repr=False)
    expires_at: datetime


_cache: TokenCache[_Token] = TokenCache()
_tokens = _cache.tokens  # cache key (a hash, see _cache_key) -> token
_lock_for = _cache.lock_for
clear_token_cache = _cache.clear


# -- shapes ---------------------------------------------------------------------------------------


def _parse_time(raw: Any) -> datetime:
    require(isinstance(raw, str) and bool(raw), "expirationTime missing")
    parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))  # ValueError when malformed
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _is_ticket(body: Any) -> bool:
    return isinstance(body, dict) and ("p-ticket" in body or "p-captcha" in body)


def _captcha(body: dict[str, Any]) -> bool:
    flag = body.get("p-captcha")
    return flag is True or (isinstance(flag, str) and flag.lower() == "true")


def _p_time(body: dict[str, Any]) -> float:
    value = float(body.get("p-time") or 0)  # a number, or a numeric string
    require(value >= 0, "p-time is negative")
    return value


def _token_or_ticket(body: Any) -> None:
    require(isinstance(body, dict), "expected a JSON object")
    if _is_ticket(body):
        require(isinstance(body.get("p-ticket"), str) and bool(body["p-ticket"]), "p-ticket is not a string")
        _p_time(body)
        return
    require(isinstance(body.get("accessToken"), str) and bool(body["accessToken"]), "no accessToken in the answer")
    _parse_time(body.get("expirationTime"))


def _renewed(body: Any) -> None:
    require(isinstance(body, dict), "expected a JSON object")
    _parse_time(body.get("expirationTime"))
    token = body.get("accessToken")
    require(token is None or (isinstance(token, str) and bool(token)), "accessToken is not a string")


def _is_long(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _accounts(body: Any) -> None:
    require(isinstance(body, list), "expected a JSON array of accounts")
    for item in body:
        require(isinstance(item, dict), "expected account objects")
        require(_is_long(item.get("id")), "account id is not a number")
        require(isinstance(item.get("name"), str), "account name is not a string")


def _positions(body: Any) -> None:
    require(isinstance(body, list), "expected a JSON array of positions")
    for item in body:
        require(isinstance(item, dict), "expected position objects")
        for name in ("accountId", "contractId", "netPos"):
            require(_is_long(item.get(name)), f"position {name} is not a number")


def _header_seconds(response: Any) -> float | None:
    try:
        return max(float(response.headers.get("Retry-After", "")), 0.0)
    except ValueError:
        return None


# -- the client -----------------------------------------------------------------------------------

SECRET_VARS = ("TRADOVATE_PASSWORD", "TRADOVATE_SECRET", "TRADOVATE_USERNAME", "TRADOVATE_CID")


class TradovateClient(BrokerClient):
    provider = "tradovate"
    HOSTS = HOSTS

    # -- configuration ----------------------------------------------------------------------------

    @property
    def device_id(self) -> str:
        # [P] Tradovate wants a stable per-device id; without TRADOVATE_DEVICE_ID one is derived from
        # this host and the login name, so it is the same on every run on this machine.
        configured = self.credentials.get("TRADOVATE_DEVICE_ID").strip()
        if configured:
            return configured
        seed = f"tradeops:{socket.gethostname()}:{self.credentials.get('TRADOVATE_USERNAME')}"
        return str(uuid.uuid5(uuid.NAMESPACE_URL, seed))

    def _cache_key(self) -> str:
        # A hash, so neither the login name nor anything secret is held in clear as a key. The
        # base URL is part of it: demo and live tokens never mix.
        raw = "\0".join(
            (self.credentials.get("TRADOVATE_USERNAME"), self.credentials.get("TRADOVATE_CID"), self.base_url)
        )
        return hashlib.sha256(raw.encode()).hexdigest()

    def _auth_body(self) -> dict[str, Any]:
        cid = self.credentials.get("TRADOVATE_CID").strip()
        return {
            "name": self.credentials.get("TRADOVATE_USERNAME"),
            "password": self.credentials.get("TRADOVATE_PASSWORD"),
            "appId": self.credentials.get("TRADOVATE_APP_ID"),
            "appVersion": self.credentials.get("TRADOVATE_APP_VERSION", DEFAULT_APP_VERSION),
            # [P] cid is a number in the partner docs and a string in the SDK model: an int when numeric.
            "cid": int(cid) if cid.isdigit() else cid,
            "sec": self.credentials.get("TRADOVATE_SECRET"),
            "deviceId": self.device_id,
        }

    def _scrub(self, text: str) -> str:
        """Provider text shown to operators, with any credential value it might echo removed."""
        for name in SECRET_VARS:
            value = self.credentials.get(name)
            if len(value) >= 4:
                text = text.replace(value, "[redacted]")
        return text[:200]

    # -- classification ---------------------------------------------------------------------------
    def _rate_limited(self, message: str, *, retry_after: float | None, fix: str) -> IntegrationError:
        return IntegrationError(
            message,
            error_code="INTEGRATION_RATE_LIMITED",
            provider=self.provider,
            suggested_fix=fix,
            retry_after=retry_after,
        )

    def _classifier(
        self, operation: str, *, auth: bool, resend_tickets: bool
    ) -> Callable[[Any, Any], IntegrationError | None]:
        def classify(response: Any, body: Any) -> IntegrationError | None:
            status = response.status_code
            if status == 429:
                return self._rate_limited(
                    f"Tradovate answered 429 to {operation}: this user is locked out of the API.",
                    retry_after=_header_seconds(response) or LOCKOUT_SECONDS,
                    fix="Tradovate locks a user out for about an hour after a 429, and it cannot be lifted "
                    "programmatically: wait about an hour, then lower the call rate.",
                )
            if status == 423:
                return self._rate_limited(
                    f"Tradovate answered 423 to {operation}: a lock-out of this user is imminent.",
                    retry_after=_header_seconds(response) or LOCKED_BACKOFF_SECONDS,
                    fix="Tradovate is about to lock this user out (a 429 follows a 423): stop calling for a few "
                    "minutes, then lower the call rate.",
                )
            if not 200 <= status < 300 or not isinstance(body, dict):
                return None
            if _is_ticket(body):
                if _captcha(body):
                    return self._rate_limited(
                        f"Tradovate answered {operation} with a penalty ticket that needs a captcha.",
                        retry_after=LOCKOUT_SECONDS,
                        fix="A captcha cannot be solved by a server: wait about an hour before signing in again, "
                        "and make sure nothing else signs in with these credentials in a loop.",
                    )
                if resend_tickets:
                    return None  # the caller waits p-time and resends
                try:
                    wait: float | None = _p_time(body)
                except (TypeError, ValueError):
                    wait = None
                return self._rate_limited(
                    f"Tradovate answered {operation} with a penalty ticket.",
                    retry_after=wait,
                    fix="Tradovate issued a penalty ticket for too many calls: wait p-time seconds "
                    "(see retry_after_seconds), then retry at a lower rate.",
                )
            error_text = body.get("errorText")
            if isinstance(error_text, str) and error_text.strip():
                return IntegrationError(
                    f"Tradovate refused {operation}: {self._scrub(error_text)}",
                    error_code="INTEGRATION_AUTH_FAILED" if auth else "INTEGRATION_REQUEST_REJECTED",
                    provider=self.provider,
                )
            violations = body.get("violations")
            if isinstance(violations, list) and violations:
                first = violations[0] if isinstance(violations[0], dict) else {}
                said = provider_message({"message": first.get("description")})
                return IntegrationError(
                    f"Tradovate refused {operation} as invalid: {self._scrub(said or 'violations')}",
                    error_code="INTEGRATION_REQUEST_REJECTED",
                    provider=self.provider,
                )
            if body.get("ok") is False:
                return IntegrationError(
                    f"Tradovate refused {operation}.", error_code="INTEGRATION_REQUEST_REJECTED", provider=self.provider
                )
            return None

        return classify

    # -- tokens -----------------------------------------------------------------------------------
    def _request_token(self) -> _Token:
        body = self._auth_body()
        sent = body
        for attempt in range(P_TICKET_MAX_RESENDS + 1):
            result = self.request(
                "auth.token",
                "POST",
                "/auth/accesstokenrequest",
                json=sent,
                classify=self._classifier("auth.token", auth=True, resend_tickets=True),
                validate=_token_or_ticket,
            )
            if not _is_ticket(result.body):
                return _Token(result.body["accessToken"], _parse_time(result.body["expirationTime"]))
            wait = _p_time(result.body)
            cap = float(getattr(settings, "TRADOVATE_P_TICKET_MAX_WAIT_SECONDS", P_TICKET_MAX_WAIT_SECONDS))
            if wait > cap or attempt == P_TICKET_MAX_RESENDS:
                raise self._rate_limited(
                    "Tradovate keeps answering the sign-in with penalty tickets."
                    if wait <= cap
                    else f"Tradovate asked TradeOps to wait {wait:g}s before signing in again.",
                    retry_after=wait,
                    fix="Tradovate rate-limits sign-ins (10 a minute): wait retry_after_seconds, and make sure "
                    "nothing else signs in with these credentials in a loop.",
                )
            logger.info("tradovate penalty ticket: waiting %.1fs before resending the sign-in", wait)
            _sleep(wait)
            # The identical original body, plus the latest ticket.
            sent = {**body, "p-ticket": result.body["p-ticket"]}
        raise AssertionError("unreachable")  # pragma: no cover

    def _renew(self, token: _Token) -> _Token:
        result = self.request(
            "auth.renew",
            "GET",
            "/auth/renewaccesstoken",
            headers={"Authorization": f"Bearer {token.value}"},
            classify=self._classifier("auth.renew", auth=True, resend_tickets=False),
            validate=_renewed,
        )
        # [P] The vendor sample reads {accessToken, expirationTime}; if no new token is sent, the
        # current one goes on with the extended expiry.
        return _Token(result.body.get("accessToken") or token.value, _parse_time(result.body["expirationTime"]))

    def _token(self) -> tuple[str, bool]:
        """The bearer token, and whether it was obtained (requested or renewed) by this call."""
        key = self._cache_key()
        with _lock_for(key):
            cached = _tokens.get(key)
            if cached is not None and cached.expires_at - _now() > RENEW_BEFORE:
                return cached.value, False
            fresh: _Token | None = None
            if cached is not None and cached.expires_at > _now():
                try:
                    fresh = self._renew(cached)
                except IntegrationError as exc:
                    if exc.error_code in AUTH_CODES:
                        logger.info("tradovate renewal refused; requesting a new token")
                    elif cached.expires_at - _now() > MIN_USABLE:
                        logger.warning("tradovate renewal failed (%s); using the current token", exc.error_code)
                        return cached.value, False
                    else:
                        raise
            if fresh is None:
                _tokens.pop(key, None)
                fresh = self._request_token()
            _tokens[key] = fresh
            return fresh.value, True

    def _forget(self, value: str) -> None:
        key = self._cache_key()
        with _lock_for(key):
            cached = _tokens.get(key)
            if cached is not None and cached.value == value:
                del _tokens[key]

    def _data_classifier(self, operation: str) -> Classifier:
        return self._classifier(operation, auth=False, resend_tickets=False)

    # -- calls ------------------------------------------------------------------------------------
    def list_accounts(self, *, operation: str = "account.list") -> list[dict[str, Any]]:
        return self._get(operation, "/account/list", validate=_accounts).body

    def list_positions(self) -> list[dict[str, Any]]:
        """Every position of the user's accounts. `contractId` is not a symbol: resolve it with
        /contract/item (not implemented yet)."""
        return self._get("position.list", "/position/list", validate=_positions).body

    def verify(self) -> dict[str, Any]:
        accounts = self.list_accounts(operation="verify")
        return {"accounts": len(accounts), "env": self.env}
