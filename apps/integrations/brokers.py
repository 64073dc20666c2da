"""What the broker clients (Tradovate, Ironbeam) share: demo/live host selection, an in-process,
per-credential-set token cache, authorized calls, and the classification of order commands into
accepted / rejected / unknown (apps/integrations/orders.py)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from apps.integrations.base import ProviderClient
from apps.integrations.errors import IntegrationError
from apps.integrations.http import Classifier, HttpResult, MaybeDelivered, provider_message
from apps.integrations.orders import OrderOutcomeUnknown, OrderRejected

T = TypeVar("T")

AUTH_CODES = frozenset({"INTEGRATION_AUTH_FAILED"})
# HTTP statuses that refuse an order command before the broker acts on it: bad credentials (401),
# no permission (403), rate limits (423 "about to be locked out", 429 "stops handling requests").
# They keep their IntegrationError codes, which mean "not sent".
NOT_ACTED_ON = frozenset({401, 403, 423, 429})
# Judges a 2xx answer (a JSON object) to an order command: None when the broker accepted it (the
# body then has the shape the caller reads), else OrderRejected / OrderOutcomeUnknown.
Judge = Callable[[dict[str, Any], int], IntegrationError | None]


class TokenCache(Generic[T]):
    """Tokens by cache key (a hash of the credential set, never a secret in clear), with one lock
    per key so that concurrent callers sign in once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self.tokens: dict[str, T] = {}

    def lock_for(self, key: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def clear(self) -> None:
        """Forget every cached token (tests; an operator replacing credentials)."""
        with self._lock:
            self.tokens.clear()


class SentOrders(Generic[T]):
    """What this process knows about the orders it sent, by (credential-set hash, account, client
    order id): bounded (oldest forgotten first), thread-safe. Its one hard use: `place_order`
    refuses a client order id this process already sent (accepted or outcome unknown) — a second
    place call for the same intent would be a second order."""

    def __init__(self, limit: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._limit = limit
        self._items: OrderedDict[tuple[str, str, str], T] = OrderedDict()

    def get(self, key: tuple[str, str, str]) -> T | None:
        with self._lock:
            return self._items.get(key)

    def claim(self, key: tuple[str, str, str], value: T, *, unless: Callable[[T], bool]) -> bool:
        """Store `value` unless an entry for `key` exists for which `unless(entry)` is true, in one
        step (two threads sending the same order: one wins). True when stored."""
        with self._lock:
            current = self._items.get(key)
            if current is not None and unless(current):
                return False
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)
            return True

    def put(self, key: tuple[str, str, str], value: T) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self._limit:
                self._items.popitem(last=False)

    def discard(self, key: tuple[str, str, str]) -> None:
        with self._lock:
            self._items.pop(key, None)

    def items(self) -> list[tuple[tuple[str, str, str], T]]:
        with self._lock:
            return list(self._items.items())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def already_sent(provider: str, client_order_id: str) -> IntegrationError:
    return IntegrationError(
        f"Order {client_order_id[:64]} was already sent to {provider} by this process; it is not sent again.",
        error_code="INTEGRATION_REQUEST_REJECTED",
        provider=provider,
        suggested_fix="Never resend an order: reconcile it (find_order / list_orders) to learn its state.",
    )


class BrokerClient(ProviderClient):
    HOSTS: ClassVar[dict[str, str]]
    DEFAULT_ENV: ClassVar[str] = "demo"

    @property
    def env_var(self) -> str:
        return f"{self.provider.upper()}_ENV"

    @property
    def env(self) -> str:
        env = self.credentials.get(self.env_var, self.DEFAULT_ENV).strip().lower() or self.DEFAULT_ENV
        if env not in self.HOSTS:
            # Never guess: an unknown value must not silently pick a host (the value is not echoed).
            raise IntegrationError(
                f"{self.env_var} is neither demo nor live.",
                error_code="INTEGRATION_REQUEST_REJECTED",
                provider=self.provider,
                suggested_fix=f"Set {self.env_var} to demo or live (empty means demo), then Verify.",
            )
        return env

    @property
    def base_url(self) -> str:
        override = self.credentials.get(self.spec.base_url_var)
        return (override or self.HOSTS[self.env]).rstrip("/")

    # -- authorized calls (each broker provides the three hooks below) --------------------------
    def _token(self) -> tuple[str, bool]:
        """(bearer token, whether it was just issued)."""
        raise NotImplementedError

    def _forget(self, token: str) -> None:
        """Drop `token` from the cache if it is still the cached one."""
        raise NotImplementedError

    def _data_classifier(self, operation: str) -> Classifier:
        """How this broker reports failures of a data call that arrive as 2xx."""
        raise NotImplementedError

    def _call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        classify: Classifier | None = None,
        validate: Callable[[Any], None] | None = None,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        no_answer: Callable[[MaybeDelivered], IntegrationError] | None = None,
    ) -> HttpResult:
        """An authorized call. A 401 with a cached token (expired, revoked, or ended by another
        session) drops it and resends once with a new one; a 401 with a fresh token is final.
        `no_answer` turns a request of this call (not of a sign-in before it) that may have reached
        the broker without an answer into the error to raise.

        Resending after a 401 is safe even for an order: a 401 is the broker refusing the
        credentials before it acts on the request (Tradovate: "you don't have the correct
        permissions"; Ironbeam: invalid token), so the resend is the first time the broker acts on
        it, not the second. No other failure is ever resent here."""
        classify = classify or self._data_classifier(operation)
        for attempt in range(2):
            token, fresh = self._token()
            try:
                return self.request(
                    operation,
                    method,
                    path,
                    headers={"Authorization": f"Bearer {token}"},
                    classify=classify,
                    validate=validate,
                    json=json,
                    params=params,
                    timeout=timeout,
                )
            except MaybeDelivered as exc:
                if no_answer is None:
                    raise
                raise no_answer(exc) from None
            except IntegrationError as exc:
                if exc.error_code not in AUTH_CODES or fresh or attempt:
                    raise
                self._forget(token)
        raise AssertionError("unreachable")  # pragma: no cover

    def _get(
        self, operation: str, path: str, *, validate: Callable[[Any], None], params: dict[str, Any] | None = None
    ) -> HttpResult:
        return self._call(operation, "GET", path, validate=validate, params=params)

    # -- calls that change state at the broker (place, cancel, liquidate) -------------------------
    def _order_call(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        judge: Judge,
        json: Any = None,
        timeout: float | None = None,
    ) -> HttpResult:
        """Send one order command and classify its outcome (apps/integrations/orders.py):
        - no answer after the request may have left (read/write timeout, dropped connection), a 5xx,
          or a 2xx that cannot be read → OrderOutcomeUnknown;
        - the broker's explicit refusal (`judge`, or a 4xx other than 401/403/423/429) → OrderRejected;
        - a failure before the request left (no connection, sign-in failed, 401/403, rate limit)
          → the IntegrationError as it is: not sent.
        The command is never resent, except once after a 401 (see `_call`). A sign-in that fails
        on the way (even by a timeout) is a failure before the command left: not sent."""

        def unknown(exc: MaybeDelivered) -> IntegrationError:
            return OrderOutcomeUnknown(
                f"{exc.message} The {operation} request may have reached {self.spec.label}: its outcome is unknown.",
                provider=self.provider,
            )

        return self._call(
            operation,
            method,
            path,
            json=json,
            timeout=timeout,
            classify=self._order_classifier(operation, judge),
            no_answer=unknown,
        )

    def _order_classifier(self, operation: str, judge: Judge) -> Classifier:
        generic = self._data_classifier(operation)

        def classify(response: Any, body: Any) -> IntegrationError | None:
            status = response.status_code
            label = self.spec.label
            if status >= 500:
                return OrderOutcomeUnknown(
                    f"{label} failed on its side ({status}) while handling {operation}: it may have acted on it.",
                    provider=self.provider,
                    http_status=status,
                )
            if 200 <= status < 300:
                if not isinstance(body, dict):
                    return OrderOutcomeUnknown(
                        f"{label} answered {operation} with something TradeOps cannot read.",
                        provider=self.provider,
                        http_status=status,
                    )
                return judge(body, status)
            if status in NOT_ACTED_ON:
                return generic(response, body)  # falls through to the generic rules when None
            said = self._scrub(provider_message(body if isinstance(body, dict) else None)) or "no reason given"
            return OrderRejected(
                f"{label} refused {operation} ({status}): {said}",
                provider=self.provider,
                broker_reason=said,
                http_status=status,
            )

        return classify

    def _scrub(self, text: str) -> str:
        raise NotImplementedError
