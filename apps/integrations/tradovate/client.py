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

Orders (the OrderVenue contract, apps/integrations/orders.py):
- place: `POST /order/placeorder` {accountSpec, accountId, clOrdId, action Buy|Sell, symbol, orderQty,
  orderType Market|Limit|Stop, price (Limit) | stopPrice (Stop), timeInForce Day, isAutomated true}.
  Our client_order_id travels in `clOrdId`: PlaceOrder documents it, and the Command that a place
  creates keeps it (`clOrdId`, string, at most 64 characters), so `GET /command/list` finds our
  order by it. Not `customTag50`: that is FIX tag 50 (SenderSubID), which the exchange reads as the
  operator's identity; and not `text`, which lives on the OrderVersion and is meant for people.
  The answer (PlaceOrderResult) is `{orderId}` or, refused, `{failureReason, failureText}` in a 200.
- bracket (`brackets = True`): `POST /order/placeoso`, the PlaceOrder body of the entry plus
  `bracket1` {action, clOrdId, orderType Stop, stopPrice, timeInForce} (PlaceOSO; its OtherOrder has
  no symbol or quantity: the bracket order has the entry's). Tradovate holds bracket1 and sends it
  once the entry fills. The answer (PlaceOSOResult) is `{orderId, oso1Id}` (oso1Id: bracket1's
  order) or, refused, `{failureReason, failureText}` in a 200, like PlaceOrderResult. An entry id
  without the bracket's id is an unknown outcome: the entry may be working without its stop.
  [U] Whether the New command of the bracket order carries bracket1's clOrdId is not documented, so
  find_order also takes the oso1Id the answer gave, and looks the order up by it when no command
  names our id.
- find: `GET /command/list` → the New command whose clOrdId is ours → its orderId; then the order's
  state from `/order/list`, `/orderVersion/list` (quantity), `/fill/list` and `/contract/item`.
- cancel: `POST /order/cancelorder` {orderId, isAutomated}; positions: `GET /position/list`
  (netPos is signed; contractId → symbol with `/contract/item`); flatten: `/contract/find?name=`
  then `POST /order/liquidateposition` {accountId, contractId, admin false, isAutomated true}.
- The account is given by its name (accountSpec, e.g. DEMO123456) or its numeric id, resolved with
  `/account/list` once per process.
- Outcomes: see BrokerClient._order_call. A penalty ticket in answer to an order command is an
  unknown outcome: the vendor has the identical body resent with the ticket, but TradeOps never
  resends an order and cannot be certain the first one was not taken.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings

from apps.integrations.base import require
from apps.integrations.brokers import AUTH_CODES, BrokerClient, SentOrders, TokenCache, already_sent
from apps.integrations.errors import IntegrationError
from apps.integrations.http import Classifier, provider_message
from apps.integrations.orders import (
    CANCELLED,
    FILLED,
    PARTIALLY_FILLED,
    REJECTED,
    WORKING,
    BrokerFill,
    BrokerOrder,
    BrokerPosition,
    OrderOutcomeUnknown,
    OrderRejected,
    OrderRequest,
    PlacedBracket,
    PlacedOrder,
    bracket_problems,
    request_problems,
)

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
# (cache key, account name or id as given) -> (account id, account name), from /account/list.
_known_accounts: dict[tuple[str, str], tuple[int, str]] = {}
# (cache key, contractId) -> contract name (a contract's name never changes).
_known_contracts: dict[tuple[str, int], str] = {}
# (cache key, account id, client order id) -> "sending" | "accepted" | "unknown": orders this process sent.
_sent: SentOrders[str] = SentOrders()


def clear_token_cache() -> None:
    """Forget everything this process holds for Tradovate: tokens, resolved accounts and contracts,
    and the record of orders sent (tests; an operator replacing credentials)."""
    _cache.clear()
    _known_accounts.clear()
    _known_contracts.clear()
    _sent.clear()


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


def _list_of(body: Any, what: str, fields: dict[str, Callable[[Any], bool]]) -> None:
    require(isinstance(body, list), f"expected a JSON array of {what}")
    for item in body:
        require(isinstance(item, dict), f"expected {what} objects")
        for name, ok in fields.items():
            require(ok(item.get(name)), f"{what} {name} is missing or malformed")


def _optional_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _orders(body: Any) -> None:
    _list_of(
        body,
        "orders",
        {"id": _is_long, "accountId": _is_long, "action": lambda v: v in ("Buy", "Sell"), "ordStatus": _str},
    )


def _commands(body: Any) -> None:
    _list_of(body, "commands", {"orderId": _is_long, "commandType": _str, "clOrdId": _optional_str})


def _versions(body: Any) -> None:
    _list_of(body, "order versions", {"orderId": _is_long, "orderQty": _is_long})


def _fills(body: Any) -> None:
    _list_of(
        body,
        "fills",
        {"id": _is_long, "orderId": _is_long, "qty": _is_long, "price": _number, "timestamp": _str},
    )


def _contract(body: Any) -> None:
    require(isinstance(body, dict), "expected a contract object")
    require(_is_long(body.get("id")), "contract id is not a number")
    require(isinstance(body.get("name"), str) and bool(body["name"]), "contract name is missing")


def _str(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise ValueError("not a number") from None


def _failure(body: dict[str, Any]) -> str:
    """The refusal a CommandResult/PlaceOrderResult/SimpleResponse carries, or ""."""
    reason = body.get("failureReason")
    text = body.get("failureText")
    parts = [p for p in (reason if reason != "Success" else None, text) if isinstance(p, str) and p.strip()]
    error_text = body.get("errorText")
    if isinstance(error_text, str) and error_text.strip():
        parts.append(error_text)
    violations = body.get("violations")
    if isinstance(violations, list) and violations:
        first = violations[0] if isinstance(violations[0], dict) else {}
        parts.append(provider_message({"message": first.get("description")}) or "violations")
    if body.get("ok") is False and not parts:
        parts.append("ok: false")
    return ": ".join(parts)


# Tradovate ordStatus -> TradeOps status. PendingCancel/PendingReplace/Suspended are still working
# until Tradovate says otherwise; Expired is no longer working (like a cancel). "Completed" is
# undocumented [U]: it counts as FILLED only when the fills cover the quantity; "Unknown" (and
# anything new) is never guessed at.
_LIVE = frozenset({"Working", "PendingNew", "PendingCancel", "PendingReplace", "Suspended"})
_DONE = {"Filled": FILLED, "Canceled": CANCELLED, "Expired": CANCELLED, "Rejected": REJECTED}
ACTIONS = {"BUY": "Buy", "SELL": "Sell"}
ORDER_TYPES = {"MARKET": "Market", "LIMIT": "Limit", "STOP": "Stop"}
# Every order TradeOps sends lives for the trading day (a protective stop is placed again by the tick
# if the day ends with the position still open).
TIME_IN_FORCE = "Day"
CL_ORD_ID_MAX = 64  # Command.clOrdId: "string or null, <=64 characters"


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
    brackets = True  # placeoso: an entry with its protective stop in one command

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
        """Every position of the user's accounts, as Tradovate sends them. `contractId` is not a
        symbol: `positions()` resolves it with /contract/item."""
        return self._get("position.list", "/position/list", validate=_positions).body

    def verify(self) -> dict[str, Any]:
        accounts = self.list_accounts(operation="verify")
        return {"accounts": len(accounts), "env": self.env}

    # -- the order venue (apps/integrations/orders.py) --------------------------------------------
    def _refused(self, message: str, fix: str) -> IntegrationError:
        """A request TradeOps refuses to send (nothing reached Tradovate)."""
        return IntegrationError(
            message, error_code="INTEGRATION_REQUEST_REJECTED", provider=self.provider, suggested_fix=fix
        )

    def _account(self, account: str) -> tuple[int, str]:
        """(account id, account name) for an account given by name (accountSpec) or numeric id."""
        key = (self._cache_key(), str(account))
        known = _known_accounts.get(key)
        if known is not None:
            return known
        matches = {(a["id"], a["name"]) for a in self.list_accounts() if account in (a["name"], str(a["id"]))}
        if len(matches) != 1:
            raise self._refused(
                f"Tradovate account {self._scrub(str(account))[:40]!r} is "
                + ("ambiguous" if matches else "not one of this login's accounts")
                + "; nothing was sent.",
                "Use an account name or id from Verify (GET /account/list lists them).",
            )
        (_known_accounts[key],) = matches
        return _known_accounts[key]

    def _contract_name(self, contract_id: int) -> str:
        key = (self._cache_key(), contract_id)
        if key not in _known_contracts:
            body = self._get("contract.item", "/contract/item", params={"id": contract_id}, validate=_contract).body
            if body["id"] != contract_id:
                raise IntegrationError(
                    f"Tradovate answered contract {contract_id} with contract {body['id']}.",
                    error_code="INTEGRATION_BAD_RESPONSE",
                    provider=self.provider,
                )
            _known_contracts[key] = body["name"]
        return _known_contracts[key]

    def _contract_id(self, symbol: str) -> int:
        body = self._get("contract.find", "/contract/find", params={"name": symbol}, validate=_contract).body
        if body["name"].upper() != symbol.upper():
            raise IntegrationError(
                f"Tradovate answered the contract {symbol[:20]!r} with {body['name'][:20]!r}.",
                error_code="INTEGRATION_BAD_RESPONSE",
                provider=self.provider,
            )
        _known_contracts[(self._cache_key(), body["id"])] = body["name"]
        return int(body["id"])

    def _check(self, request: OrderRequest) -> None:
        cid = request.client_order_id
        problems = []
        if not isinstance(cid, str) or not cid or len(cid) > CL_ORD_ID_MAX:
            problems.append(f"client_order_id must be 1 to {CL_ORD_ID_MAX} characters (Tradovate clOrdId)")
        if not request.symbol:
            problems.append("symbol is missing")
        problems += request_problems(request)
        if problems:
            raise self._refused(
                "The order was not sent: " + "; ".join(problems) + ".", "Fix the order request; nothing was sent."
            )

    def _judge_result(self, operation: str, *, nothing_to_do_ok: bool = False) -> Any:
        """Judges a PlaceOrderResult (place, liquidate): `{orderId}` accepted, `{failureReason,
        failureText}` without an orderId refused [P], anything else unknown."""

        def judge(body: dict[str, Any], status: int) -> IntegrationError | None:
            if _is_ticket(body):
                return OrderOutcomeUnknown(
                    f"Tradovate answered {operation} with a penalty ticket. TradeOps never resends an order "
                    "command and cannot be certain this one was not taken.",
                    provider=self.provider,
                    http_status=status,
                )
            failure = self._scrub(_failure(body))
            order_id = body.get("orderId")
            if _is_long(order_id) and order_id > 0:
                if failure:
                    return OrderOutcomeUnknown(
                        f"Tradovate answered {operation} with an order id and a failure ({failure}).",
                        provider=self.provider,
                        http_status=status,
                    )
                return None
            if failure:
                return OrderRejected(
                    f"Tradovate refused {operation}: {failure}",
                    provider=self.provider,
                    broker_reason=failure,
                    http_status=status,
                )
            if nothing_to_do_ok and body.get("failureReason") == "Success" and order_id is None:
                return None  # [U] liquidating a flat position with no working orders: nothing to send
            return OrderOutcomeUnknown(
                f"Tradovate answered {operation} with neither an order id nor a reason.",
                provider=self.provider,
                http_status=status,
            )

        return judge

    def _judge_command(self, operation: str) -> Any:
        """Judges a CommandResult (cancel): `{commandId}` accepted, a failure refused."""

        def judge(body: dict[str, Any], status: int) -> IntegrationError | None:
            if _is_ticket(body):
                return OrderOutcomeUnknown(
                    f"Tradovate answered {operation} with a penalty ticket; it is not resent.",
                    provider=self.provider,
                    http_status=status,
                )
            failure = self._scrub(_failure(body))
            if failure:
                return OrderRejected(
                    f"Tradovate refused {operation}: {failure}",
                    provider=self.provider,
                    broker_reason=failure,
                    http_status=status,
                )
            if _is_long(body.get("commandId")):
                return None
            return OrderOutcomeUnknown(
                f"Tradovate answered {operation} without a command id.", provider=self.provider, http_status=status
            )

        return judge

    def _order_body(self, request: OrderRequest, account_id: int, account_name: str) -> dict[str, Any]:
        """The PlaceOrder body of `request` (placeorder, and the entry of a placeoso)."""
        body: dict[str, Any] = {
            "accountSpec": account_name,
            "accountId": account_id,
            "clOrdId": request.client_order_id,
            "action": ACTIONS[request.side],
            "symbol": request.symbol,
            "orderQty": request.quantity,
            "orderType": ORDER_TYPES[request.order_type],
            "timeInForce": TIME_IN_FORCE,
            "isAutomated": True,  # "must be true if this isn't an order made directly by a human"
        }
        if request.limit_price is not None:
            body["price"] = float(request.limit_price)
        if request.stop_price is not None:
            body["stopPrice"] = float(request.stop_price)
        return body

    def place_order(self, request: OrderRequest) -> PlacedOrder:
        self._check(request)
        account_id, account_name = self._account(request.account)
        key = (self._cache_key(), str(account_id), request.client_order_id)
        if not _sent.claim(key, "sending", unless=lambda state: True):
            raise already_sent(self.provider, request.client_order_id)
        body = self._order_body(request, account_id, account_name)
        try:
            result = self._order_call(
                "order.place", "POST", "/order/placeorder", json=body, judge=self._judge_result("order.place")
            )
        except OrderOutcomeUnknown:
            _sent.put(key, "unknown")
            raise
        except IntegrationError:
            _sent.discard(key)  # rejected, or never sent: the same intent may be sent again
            raise
        except BaseException:
            _sent.put(key, "unknown")
            raise
        _sent.put(key, "accepted")
        return PlacedOrder(broker_order_id=str(result.body["orderId"]))

    def _judge_oso(self, operation: str) -> Any:
        """Judges a PlaceOSOResult: `{orderId, oso1Id}` accepted; a refusal (no orderId) rejected, as
        for PlaceOrderResult; an orderId without the bracket's oso1Id unknown (the entry may be
        working, and whether its stop is held cannot be told from the answer)."""
        judge_entry = self._judge_result(operation)

        def judge(body: dict[str, Any], status: int) -> IntegrationError | None:
            outcome = judge_entry(body, status)
            if outcome is not None:
                return outcome
            oso1 = body.get("oso1Id")
            if _is_long(oso1) and oso1 > 0:
                return None
            return OrderOutcomeUnknown(
                f"Tradovate answered {operation} with the entry's order id but no id for its stop (oso1Id).",
                provider=self.provider,
                http_status=status,
            )

        return judge

    def place_bracket(self, entry: OrderRequest, stop: OrderRequest) -> PlacedBracket:
        """`POST /order/placeoso`: the entry, with `stop` as bracket1 (held by Tradovate, sent once the
        entry fills). One command for both: accepted, refused or unknown together."""
        self._check(entry)
        self._check(stop)
        problems = bracket_problems(entry, stop)
        if problems:
            raise self._refused(
                "The bracket was not sent: " + "; ".join(problems) + ".", "Fix the bracket; nothing was sent."
            )
        account_id, account_name = self._account(entry.account)
        keys = [(self._cache_key(), str(account_id), r.client_order_id) for r in (entry, stop)]
        if not _sent.claim(keys[0], "sending", unless=lambda state: True):
            raise already_sent(self.provider, entry.client_order_id)
        if not _sent.claim(keys[1], "sending", unless=lambda state: True):
            _sent.discard(keys[0])
            raise already_sent(self.provider, stop.client_order_id)
        assert stop.stop_price is not None  # bracket_problems/request_problems: a STOP has its price
        body = self._order_body(entry, account_id, account_name)
        body["bracket1"] = {
            "action": ACTIONS[stop.side],
            "clOrdId": stop.client_order_id,
            "orderType": ORDER_TYPES[stop.order_type],
            "stopPrice": float(stop.stop_price),
            "timeInForce": TIME_IN_FORCE,
        }
        try:
            result = self._order_call(
                "order.place_bracket",
                "POST",
                "/order/placeoso",
                json=body,
                judge=self._judge_oso("order.place_bracket"),
            )
        except OrderOutcomeUnknown:
            for key in keys:
                _sent.put(key, "unknown")
            raise
        except IntegrationError:
            for key in keys:
                _sent.discard(key)  # rejected, or never sent
            raise
        except BaseException:
            for key in keys:
                _sent.put(key, "unknown")
            raise
        for key in keys:
            _sent.put(key, "accepted")
        return PlacedBracket(
            entry_broker_order_id=str(result.body["orderId"]), stop_broker_order_id=str(result.body["oso1Id"])
        )

    def cancel_order(self, *, account: str, broker_order_id: str) -> None:
        if not str(broker_order_id).isdigit():
            raise self._refused("A Tradovate order id is a number; nothing was sent.", "Pass the broker order id.")
        self._account(account)
        self._order_call(
            "order.cancel",
            "POST",
            "/order/cancelorder",
            json={"orderId": int(broker_order_id), "isAutomated": True},
            judge=self._judge_command("order.cancel"),
        )

    def find_order(self, *, account: str, client_order_id: str, broker_order_id: str = "") -> BrokerOrder | None:
        """Our order by its clOrdId (the New command that created it). `broker_order_id`: the id
        Tradovate gave it, for a bracket's stop whose command may not carry our clOrdId [U]: when no
        command names our id, the order with that id is looked up (None when Tradovate does not list
        it, e.g. a bracket still held until its entry fills)."""
        account_id, _ = self._account(account)
        commands = self._get("order.commands", "/command/list", validate=_commands).body
        order_ids = {
            c["orderId"] for c in commands if c.get("commandType") == "New" and c.get("clOrdId") == client_order_id
        }
        if not order_ids and str(broker_order_id).isdigit():
            rows = self._get("order.list", "/order/list", validate=_orders).body
            if not any(o["id"] == int(broker_order_id) and o["accountId"] == account_id for o in rows):
                return None
            order_ids = {int(broker_order_id)}
        if not order_ids:
            return None  # the command list is complete: no order was ever created with our clOrdId
        found = self._build_orders(account_id, commands, order_ids)
        if len(found) != 1 or len(order_ids) != 1:
            raise OrderOutcomeUnknown(
                f"Tradovate holds {len(order_ids)} order(s) with client order id {client_order_id[:64]}, "
                f"{len(found)} of them on this account: TradeOps will not pick one.",
                provider=self.provider,
            )
        if found[0].client_order_id != client_order_id:  # found by its broker id: it is ours by that id
            found[0] = replace(found[0], client_order_id=client_order_id)
        return found[0]

    def list_orders(self, *, account: str) -> list[BrokerOrder]:
        account_id, _ = self._account(account)
        commands = self._get("order.commands", "/command/list", validate=_commands).body
        return self._build_orders(account_id, commands, None)

    def _build_orders(
        self, account_id: int, commands: list[dict[str, Any]], only: set[int] | None
    ) -> list[BrokerOrder]:
        rows = [
            o
            for o in self._get("order.list", "/order/list", validate=_orders).body
            if o["accountId"] == account_id and (only is None or o["id"] in only)
        ]
        if only is not None and {o["id"] for o in rows} != only:
            raise OrderOutcomeUnknown(
                "Tradovate lists a command for this client order id, but not its order on this account.",
                provider=self.provider,
            )
        if not rows:
            return []
        client_ids: dict[int, str] = {}
        for command in commands:
            if command.get("commandType") == "New" and isinstance(command.get("clOrdId"), str):
                client_ids[command["orderId"]] = command["clOrdId"]
        quantities: dict[int, tuple[int, int]] = {}  # orderId -> (version id, orderQty): the latest version
        for version in self._get("order.versions", "/orderVersion/list", validate=_versions).body:
            vid = version.get("id") if _is_long(version.get("id")) else 0
            if version["orderId"] not in quantities or vid >= quantities[version["orderId"]][0]:
                quantities[version["orderId"]] = (vid, version["orderQty"])
        fills: dict[int, list[BrokerFill]] = {}
        for fill in self._get("order.fills", "/fill/list", validate=_fills).body:
            if fill.get("active") is False:
                continue  # a busted fill [P]
            try:
                at = _parse_time(fill["timestamp"])
                price = _decimal(fill["price"])
            except ValueError:
                raise IntegrationError(
                    "Tradovate answered a fill TradeOps cannot read.",
                    error_code="INTEGRATION_BAD_RESPONSE",
                    provider=self.provider,
                ) from None
            assert price is not None
            fills.setdefault(fill["orderId"], []).append(BrokerFill(str(fill["id"]), fill["qty"], price, at))
        return [self._order(row, client_ids, quantities, fills) for row in sorted(rows, key=lambda o: o["id"])]

    def _order(
        self,
        row: dict[str, Any],
        client_ids: dict[int, str],
        quantities: dict[int, tuple[int, int]],
        fills: dict[int, list[BrokerFill]],
    ) -> BrokerOrder:
        order_id = row["id"]
        if order_id not in quantities or not _is_long(row.get("contractId")):
            raise IntegrationError(
                f"Tradovate order {order_id} has no quantity or no contract TradeOps can read.",
                error_code="INTEGRATION_BAD_RESPONSE",
                provider=self.provider,
            )
        quantity = quantities[order_id][1]
        own = tuple(sorted(fills.get(order_id, []), key=lambda f: f.at))
        filled = sum(f.quantity for f in own)
        average = sum((f.price * f.quantity for f in own), Decimal(0)) / filled if filled else None
        raw = row["ordStatus"]
        if raw in _LIVE:
            status = PARTIALLY_FILLED if 0 < filled < quantity else WORKING
        elif raw in _DONE:
            status = _DONE[raw]
        elif raw == "Completed" and filled >= quantity:
            status = FILLED
        else:
            raise OrderOutcomeUnknown(
                f"Tradovate reports order {order_id} as {str(raw)[:20]!r}: TradeOps does not guess what that means.",
                provider=self.provider,
            )
        return BrokerOrder(
            broker_order_id=str(order_id),
            client_order_id=client_ids.get(order_id),
            symbol=self._contract_name(row["contractId"]),
            side="BUY" if row["action"] == "Buy" else "SELL",
            quantity=quantity,
            status=status,
            filled_quantity=filled,
            avg_fill_price=average,
            fills=own,
        )

    def positions(self, *, account: str) -> list[BrokerPosition]:
        """Every open position of the account (netPos 0 rows are flat and left out). A failed call
        raises: a missing position report is never taken as flat."""
        account_id, _ = self._account(account)
        out: dict[str, BrokerPosition] = {}
        for row in self.list_positions():
            if row["accountId"] != account_id or row["netPos"] == 0:
                continue
            symbol = self._contract_name(row["contractId"])
            if symbol in out:
                raise IntegrationError(
                    f"Tradovate reports two positions in {symbol[:20]} for one account: TradeOps will not add them up.",
                    error_code="INTEGRATION_BAD_RESPONSE",
                    provider=self.provider,
                )
            try:
                price = _decimal(row.get("netPrice"))
            except ValueError:
                price = None
            out[symbol] = BrokerPosition(symbol=symbol, quantity=row["netPos"], avg_price=price)
        return list(out.values())

    def flatten(self, *, account: str, symbol: str) -> None:
        """`POST /order/liquidateposition`: Tradovate cancels the contract's working orders and closes
        the position ("a request, not a guarantee"). An unknown outcome is never retried here:
        read the positions again before another flatten."""
        account_id, _ = self._account(account)
        contract_id = self._contract_id(symbol)
        self._order_call(
            "order.liquidate",
            "POST",
            "/order/liquidateposition",
            json={"accountId": account_id, "contractId": contract_id, "admin": False, "isAutomated": True},
            judge=self._judge_result("order.liquidate", nothing_to_do_ok=True),
        )
