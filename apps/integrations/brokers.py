"""What the broker clients (Tradovate, Ironbeam) share: demo/live host selection and an
in-process, per-credential-set token cache."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from apps.integrations.base import ProviderClient
from apps.integrations.errors import IntegrationError
from apps.integrations.http import Classifier, HttpResult

T = TypeVar("T")

AUTH_CODES = frozenset({"INTEGRATION_AUTH_FAILED"})


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

    def _get(self, operation: str, path: str, *, validate: Callable[[Any], None]) -> HttpResult:
        """An authorized GET. A 401 with a cached token (expired, revoked, or ended by another
        session) drops it and retries once with a new one; a 401 with a fresh token is final."""
        classify = self._data_classifier(operation)
        for attempt in range(2):
            token, fresh = self._token()
            try:
                return self.request(
                    operation,
                    "GET",
                    path,
                    headers={"Authorization": f"Bearer {token}"},
                    classify=classify,
                    validate=validate,
                )
            except IntegrationError as exc:
                if exc.error_code not in AUTH_CODES or fresh or attempt:
                    raise
                self._forget(token)
        raise AssertionError("unreachable")  # pragma: no cover
