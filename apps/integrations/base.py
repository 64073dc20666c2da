"""The provider client contract. One subclass per provider, in apps/integrations/<provider>/client.py.

A client:
- is built from resolved Credentials (`for_bot` resolves them and fails closed when a required
  variable is missing, raising IntegrationKeyMissing);
- performs every request through `self.request(...)`, i.e. apps.integrations.http.call, so each
  call has a timeout, a classified error and a usage event;
- implements `verify()`: a real, non-destructive call (PROVIDERS.md names one per provider) that
  returns a small dict of non-secret facts (e.g. {"accounts": 2}) or raises IntegrationError.
Clients never log or return credential values.
"""

from __future__ import annotations

from typing import Any, ClassVar

from apps.integrations import credentials as creds
from apps.integrations import http, registry
from apps.integrations.credentials import Credentials
from apps.integrations.errors import IntegrationKeyMissing
from apps.integrations.registry import ProviderSpec


class ProviderClient:
    provider: ClassVar[str]

    def __init__(self, credentials: Credentials, *, bot_id: int | None = None) -> None:
        if credentials.missing:
            raise IntegrationKeyMissing(self.provider, credentials.missing)
        self.credentials = credentials
        self.bot_id = bot_id

    @classmethod
    def for_bot(cls, bot_id: int | None = None) -> ProviderClient:
        return cls(creds.for_provider(cls.provider), bot_id=bot_id)

    @property
    def spec(self) -> ProviderSpec:
        spec = registry.get(self.provider)
        assert spec is not None
        return spec

    @property
    def base_url(self) -> str:
        return (self.credentials.get(self.spec.base_url_var) or self.spec.default_base_url).rstrip("/")

    def request(self, operation: str, method: str, path: str, **kwargs: Any) -> http.HttpResult:
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path.lstrip('/')}"
        # Whatever the provider echoes back, our credentials never reach an error message.
        kwargs.setdefault("redact", [v for k, v in self.credentials.values.items() if k != self.spec.base_url_var])
        return http.call(
            provider=self.provider, operation=operation, method=method, url=url, bot_id=self.bot_id, **kwargs
        )

    def verify(self) -> dict[str, Any]:
        raise NotImplementedError


def require(condition: bool, why: str) -> None:
    """For validators: a malformed answer is a ValueError, which http.call reports as
    INTEGRATION_BAD_RESPONSE."""
    if not condition:
        raise ValueError(why)
