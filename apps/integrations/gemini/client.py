"""Google Gemini API, v1beta (PROVIDERS.md §5).

The key goes in the `x-goog-api-key` header ([P] in PROVIDERS.md; Google's own generateContent
examples use it). `?key=` is [C] too, but a key in a URL ends up in proxy and access logs.
Verify lists the models (`GET /v1beta/models`, free); `complete` is one
`POST /v1beta/models/{model}:generateContent`. Gemini answers a bad key with HTTP 400 (not 401)
and reason API_KEY_INVALID: that is classified as INTEGRATION_AUTH_FAILED here.
Used for narrative explanations only, never inside a trading decision.
"""

from __future__ import annotations

from typing import Any

from apps.integrations.base import ProviderClient, require
from apps.integrations.errors import IntegrationError
from apps.integrations.http import provider_message

# [U] A sensible default, not a confirmed one (model names change): GEMINI_MODEL overrides it.
DEFAULT_MODEL = "gemini-2.5-flash-lite"


def _key_rejected(response: Any, body: Any) -> IntegrationError | None:
    error = body.get("error") if isinstance(body, dict) else None
    if response.status_code != 400 or not isinstance(error, dict) or not isinstance(error.get("details"), list):
        return None
    if not any(isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in error["details"]):
        return None
    said = provider_message(body)
    return IntegrationError(
        f"gemini rejected the credentials (400 API_KEY_INVALID){f': {said}' if said else ''}",
        error_code="INTEGRATION_AUTH_FAILED",
        provider="gemini",
    )


def _model_list(body: Any) -> None:
    require(isinstance(body, dict) and isinstance(body.get("models"), list), 'expected {"models": [...]}')
    require(all(isinstance(m, dict) and isinstance(m.get("name"), str) for m in body["models"]), "expected names")


def candidate_text(body: Any) -> str:
    """The text parts of candidates[0], joined; thought parts are not the answer. No text (a blocked
    prompt, a cut-off candidate) is malformed: it is reported, never replaced."""
    require(isinstance(body, dict), "expected a JSON object")
    candidates = body.get("candidates")
    if not candidates:
        feedback = body.get("promptFeedback")
        reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
        raise ValueError(f"no candidates in the answer (blockReason={reason!r})")
    require(isinstance(candidates, list) and isinstance(candidates[0], dict), "expected a list of candidates")
    content = candidates[0].get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    texts = [
        part["text"]
        for part in (parts if isinstance(parts, list) else [])
        if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought")
    ]
    text = "".join(texts)
    require(bool(text.strip()), f"no text in candidates[0] (finishReason={candidates[0].get('finishReason')!r})")
    return text


class GeminiClient(ProviderClient):
    provider = "gemini"

    @property
    def model(self) -> str:
        # models.list names models "models/<id>"; accept a value copied from there as well.
        return self.credentials.get("GEMINI_MODEL", DEFAULT_MODEL).removeprefix("models/")

    def _headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.credentials.get("GEMINI_API_KEY")}

    def verify(self) -> dict[str, Any]:
        # pageSize: default 50, max 1000; the maximum makes the count the real one.
        body = self.request(
            "verify",
            "GET",
            "/v1beta/models",
            headers=self._headers(),
            params={"pageSize": 1000},
            classify=_key_rejected,
            validate=_model_list,
        ).body
        return {"models": len(body["models"]), "model": self.model}

    def complete(self, prompt: str, *, max_tokens: int = 256) -> str:
        payload = {
            "contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "generationConfig": {"maxOutputTokens": max_tokens},
        }
        body = self.request(
            "complete",
            "POST",
            f"/v1beta/models/{self.model}:generateContent",
            headers=self._headers(),
            json=payload,
            classify=_key_rejected,
            validate=candidate_text,
        ).body
        return candidate_text(body)
