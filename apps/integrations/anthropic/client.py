"""Anthropic Messages API (PROVIDERS.md §5).

Every call carries `x-api-key` and `anthropic-version: 2023-06-01`. Verify lists the models
(`GET /v1/models`, free); `complete` is one `POST /v1/messages`. 529 overloaded_error is a
provider-side failure (INTEGRATION_PROVIDER_ERROR, transient) through the generic 5xx rule.
Used for narrative explanations only, never inside a trading decision.
"""

from __future__ import annotations

from typing import Any

from apps.integrations.base import ProviderClient, require

API_VERSION = "2023-06-01"
# [U] A sensible default, not a confirmed one (model names change): ANTHROPIC_MODEL overrides it.
DEFAULT_MODEL = "claude-haiku-4-5"


def _model_list(body: Any) -> None:
    require(isinstance(body, dict) and isinstance(body.get("data"), list), 'expected {"data": [...]} of models')
    require(all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in body["data"]), "expected model ids")


def message_text(body: Any) -> str:
    """The text blocks of the message, joined. Other blocks (thinking, tool_use) are not the answer;
    a message without text is malformed: it is reported, never replaced."""
    require(isinstance(body, dict) and isinstance(body.get("content"), list), "expected a message with content")
    text = "".join(
        block["text"]
        for block in body["content"]
        if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str)
    )
    require(bool(text.strip()), f"no text in the message (stop_reason={body.get('stop_reason')!r})")
    return text


class AnthropicClient(ProviderClient):
    provider = "anthropic"

    @property
    def model(self) -> str:
        return self.credentials.get("ANTHROPIC_MODEL", DEFAULT_MODEL)

    def _headers(self) -> dict[str, str]:
        return {"x-api-key": self.credentials.get("ANTHROPIC_API_KEY"), "anthropic-version": API_VERSION}

    def verify(self) -> dict[str, Any]:
        # limit: 1..1000 (default 20); the maximum makes the count the real one.
        body = self.request(
            "verify", "GET", "/v1/models", headers=self._headers(), params={"limit": 1000}, validate=_model_list
        ).body
        return {"models": len(body["data"]), "model": self.model}

    def complete(self, prompt: str, *, max_tokens: int = 256) -> str:
        payload = {"model": self.model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}]}
        body = self.request(
            "complete", "POST", "/v1/messages", headers=self._headers(), json=payload, validate=message_text
        ).body
        return message_text(body)
