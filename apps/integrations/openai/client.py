"""OpenAI, and the OpenAI-compatible chat API that Groq and OpenRouter speak too (PROVIDERS.md §5).

Auth is `Authorization: Bearer <key>`. Verify lists the models (`GET /models`, free, changes
nothing); `complete` is one `POST /chat/completions` and returns `choices[0].message.content`.
Used for narrative explanations only, never inside a trading decision.

`OpenAICompatibleClient` is the one implementation; Groq and OpenRouter subclass it and name only
their variables, default model and differences.
"""

from __future__ import annotations

from typing import Any, ClassVar

from apps.integrations.base import ProviderClient, require
from apps.integrations.errors import IntegrationError

# [U] A sensible default, not a confirmed one (model names change): OPENAI_MODEL overrides it.
DEFAULT_MODEL = "gpt-4.1-mini"


def model_list(body: Any) -> None:
    """The OpenAI list shape: {"object": "list", "data": [{"id": ...}, ...]}."""
    require(isinstance(body, dict) and isinstance(body.get("data"), list), 'expected {"data": [...]} of models')
    require(all(isinstance(m, dict) and isinstance(m.get("id"), str) for m in body["data"]), "expected model ids")


def chat_text(body: Any) -> str:
    """choices[0].message.content. An empty answer is malformed: it is reported, never replaced."""
    require(isinstance(body, dict), "expected a JSON object")
    choices = body.get("choices")
    require(isinstance(choices, list) and bool(choices), "no choices in the completion")
    choice = choices[0]
    require(isinstance(choice, dict) and isinstance(choice.get("message"), dict), "no message in choices[0]")
    content = choice["message"].get("content")
    require(
        isinstance(content, str) and bool(content.strip()),
        f"no text in choices[0].message (finish_reason={choice.get('finish_reason')!r})",
    )
    return content


class OpenAICompatibleClient(ProviderClient):
    api_key_var: ClassVar[str]
    default_model: ClassVar[str]
    # OpenAI deprecated `max_tokens` for `max_completion_tokens`, which its reasoning models require.
    max_tokens_field: ClassVar[str] = "max_completion_tokens"

    @property
    def model(self) -> str:
        return self.credentials.get(f"{self.provider.upper()}_MODEL", self.default_model)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.credentials.get(self.api_key_var)}"}

    def _classify(self, response: Any, body: Any) -> IntegrationError | None:
        # OpenAI answers an exhausted balance with 429 insufficient_quota: waiting will not help,
        # so it must not look like a (transient) rate limit.
        error = body.get("error") if isinstance(body, dict) else None
        if response.status_code != 429 or not isinstance(error, dict):
            return None
        if "insufficient_quota" not in (error.get("code"), error.get("type")):
            return None
        return IntegrationError(
            f"{self.provider} refused the call: the account has no quota left (429 insufficient_quota).",
            error_code="INTEGRATION_PERMISSION_DENIED",
            provider=self.provider,
            suggested_fix=f"Add credits or raise the usage limit of the {self.spec.label} account that owns "
            f"{self.api_key_var}, then Verify.",
        )

    def verify(self) -> dict[str, Any]:
        body = self.request(
            "verify", "GET", "/models", headers=self._headers(), classify=self._classify, validate=model_list
        ).body
        return {"models": len(body["data"]), "model": self.model}

    def complete(self, prompt: str, *, max_tokens: int = 256) -> str:
        payload = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            self.max_tokens_field: max_tokens,
        }
        body = self.request(
            "complete",
            "POST",
            "/chat/completions",
            headers=self._headers(),
            json=payload,
            classify=self._classify,
            validate=chat_text,
        ).body
        return chat_text(body)


class OpenAIClient(OpenAICompatibleClient):
    provider = "openai"
    api_key_var = "OPENAI_API_KEY"
    default_model = DEFAULT_MODEL
