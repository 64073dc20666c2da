"""OpenRouter over its OpenAI-compatible API (PROVIDERS.md §5): Bearer key, complete with
`POST /chat/completions`. Verify is `GET /key`, the key's own record: `GET /models` is public and
answers any key, so it proves nothing."""

from __future__ import annotations

from typing import Any

from apps.integrations.base import require
from apps.integrations.openai.client import OpenAICompatibleClient

# [U] A sensible default, not a confirmed one (OpenRouter names are "vendor/model"): OPENROUTER_MODEL
# overrides it.
DEFAULT_MODEL = "openai/gpt-4.1-mini"

# Facts of the key record that are safe to show. Never `label`: it is a masked copy of the key.
_KEY_FACTS = ("is_free_tier", "limit", "limit_remaining", "usage")


def _key_record(body: Any) -> None:
    require(isinstance(body, dict) and isinstance(body.get("data"), dict), 'expected {"data": {...}} for the key')


class OpenRouterClient(OpenAICompatibleClient):
    provider = "openrouter"
    api_key_var = "OPENROUTER_API_KEY"
    default_model = DEFAULT_MODEL
    # OpenRouter documents `max_tokens` for its normalized chat API.
    max_tokens_field = "max_tokens"

    def verify(self) -> dict[str, Any]:
        data = self.request(
            "verify", "GET", "/key", headers=self._headers(), classify=self._classify, validate=_key_record
        ).body["data"]
        facts = {name: data[name] for name in _KEY_FACTS if isinstance(data.get(name), bool | int | float)}
        return {**facts, "model": self.model}
