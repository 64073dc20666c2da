"""Where a provider's variables come from: the environment first, then the encrypted store.

Values never leave this module except to the provider client that uses them; everything else
(APIs, pages, logs, audit) sees only names, presence and source.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Literal

from apps.integrations import crypto, registry
from apps.integrations.models import StoredCredential
from apps.integrations.registry import ProviderSpec

logger = logging.getLogger("tradeops.integrations")

Source = Literal["env", "store", "embedded"]


@dataclass(frozen=True)
class Credentials:
    provider: str
    values: dict[str, str] = field(repr=False)  # never in a repr, so never in a log line by accident
    sources: dict[str, Source | None]
    missing: list[str]

    @property
    def configured(self) -> bool:
        return not self.missing

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name) or default


def _from_env(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value and value.strip() else None


def resolve(spec: ProviderSpec, *, stored: dict[str, StoredCredential] | None = None) -> Credentials:
    """Every variable of the provider, resolved. `stored` may be passed in to resolve many
    providers with one query (see stored_by_name)."""
    rows = stored if stored is not None else stored_by_name(spec.all_env_vars)
    values: dict[str, str] = {}
    sources: dict[str, Source | None] = {}
    for name in spec.all_env_vars:
        env_value = _from_env(name)
        if env_value is not None:
            values[name], sources[name] = env_value, "env"
        elif name in rows:
            try:
                values[name], sources[name] = crypto.decrypt(rows[name].ciphertext), "store"
            except (crypto.CredentialDecryptFailed, crypto.CredentialStoreUnavailable):
                logger.error("stored credential %s cannot be decrypted; treated as missing", name)
                sources[name] = None
        elif name in registry.EMBEDDED_DEFAULTS:
            sources[name] = "embedded"
        else:
            sources[name] = None
    missing = [n for n in spec.required_env_vars if sources.get(n) is None]
    return Credentials(provider=spec.provider, values=values, sources=sources, missing=missing)


def sources_only(spec: ProviderSpec, *, stored_names: set[str]) -> dict[str, Source | None]:
    """Presence and source without decrypting anything (for lists and checklists)."""
    out: dict[str, Source | None] = {}
    for name in spec.all_env_vars:
        if _from_env(name) is not None:
            out[name] = "env"
        elif name in stored_names:
            out[name] = "store"
        elif name in registry.EMBEDDED_DEFAULTS:
            out[name] = "embedded"
        else:
            out[name] = None
    return out


def stored_by_name(names: tuple[str, ...] | list[str] | None = None) -> dict[str, StoredCredential]:
    qs = StoredCredential.objects.all()
    if names is not None:
        qs = qs.filter(name__in=list(names))
    return {row.name: row for row in qs}


def for_provider(provider: str) -> Credentials:
    spec = registry.get(provider)
    if spec is None:
        raise KeyError(provider)
    return resolve(spec)
