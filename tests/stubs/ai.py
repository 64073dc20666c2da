"""AI provider stubs (PROVIDERS.md §5): the key check and one text completion per provider.

OpenAI, Groq and OpenRouter share the OpenAI chat API, so they share one stub class configured
three ways; Anthropic and Gemini have their own. Each checks the key where the real API reads it
(Bearer header, `x-api-key`, `x-goog-api-key` or `?key=`). Modes beyond the common ones:

    quota        (OpenAI) 429 insufficient_quota: the balance is spent
    overloaded   (Anthropic) 529 overloaded_error
    bad_request  (Gemini) 400 INVALID_ARGUMENT that is not about the key

`stub.reply`, when set, is the body of a 200 to the completion call (odd answers).
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from tests.stubs.base import StubRequest, StubResponse, StubServer

REPLY_TEXT = "The bot stayed flat: the ES spread filter was above its limit for the whole window."
HTML = "<html><body><h1>502 Bad Gateway</h1></body></html>"


class _AIStub(StubServer):
    def __init__(self) -> None:
        super().__init__()
        self.reply: Any = None

    @property
    def good_key(self) -> str:
        return next(iter(self.good_env.values()))

    def completions(self) -> list[StubRequest]:
        raise NotImplementedError


# -- OpenAI-compatible: OpenAI, Groq, OpenRouter -----------------------------------------------------


class _OpenAICompatibleStub(_AIStub):
    model_ids: ClassVar[tuple[str, ...]] = ()
    retry_after: ClassVar[str | None] = None

    def _bearer(self, request: StubRequest) -> str:
        auth = request.header("authorization")
        return auth[7:] if auth.startswith("Bearer ") else ""

    def error(self, status: int, message: str, type_: str, code: str | None, **headers: str) -> StubResponse:
        return StubResponse(
            status, {"error": {"message": message, "type": type_, "param": None, "code": code}}, headers
        )

    def unauthorized(self, sent: str) -> StubResponse:
        if not sent:
            return self.error(401, "You didn't provide an API key.", "invalid_request_error", None)
        # OpenAI echoes a masked key; the full key never comes back.
        masked = f"{sent[:3]}{'*' * 20}{sent[-4:]}"
        return self.error(401, f"Incorrect API key provided: {masked}.", "invalid_request_error", "invalid_api_key")

    def rate_limited(self) -> StubResponse:
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        return self.error(429, "Rate limit reached for requests.", "requests", "rate_limit_exceeded", **headers)

    def model_entry(self, model_id: str) -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": 1686935002, "owned_by": "stub"}

    def models(self) -> StubResponse:
        if self.mode == "malformed":
            return StubResponse(200, {"object": "list", "data": "gpt-4.1-mini"})
        return StubResponse(200, {"object": "list", "data": [self.model_entry(m) for m in self.model_ids]})

    def chat(self, request: StubRequest) -> StubResponse:
        body = request.json()
        if not isinstance(body, dict) or not body.get("model") or not body.get("messages"):
            return self.error(400, "you must provide a model and messages", "invalid_request_error", None)
        if self.mode == "malformed":
            return StubResponse(200, HTML)
        if self.reply is not None:
            return StubResponse(200, self.reply)
        return StubResponse(
            200,
            {
                "id": "chatcmpl-stub",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": body["model"],
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": REPLY_TEXT}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 12, "completion_tokens": 18, "total_tokens": 30},
            },
        )

    def public(self, request: StubRequest) -> StubResponse | None:
        """An answer given without looking at the key, or None."""
        return None

    def route(self, request: StubRequest) -> StubResponse | None:
        if request.method == "GET" and request.path == "/models":
            return self.models()
        if request.method == "POST" and request.path == "/chat/completions":
            return self.chat(request)
        return None

    def handle(self, request: StubRequest) -> StubResponse:
        answer = self.public(request)
        if answer is not None:
            return answer
        sent = self._bearer(request)
        if self.mode == "bad_key" or sent != self.good_key:
            return self.unauthorized(sent)
        if self.mode == "rate_limit":
            return self.rate_limited()
        return self.route(request) or self.error(404, f"Unknown path {request.path}", "invalid_request_error", None)

    def completions(self) -> list[StubRequest]:
        return [r for r in self.requests if r.path == "/chat/completions"]


class OpenAIStub(_OpenAICompatibleStub):
    good_env = {"OPENAI_API_KEY": "sk-proj-StubOpenAIKey0123456789abcdefWXYZ"}
    model_ids = ("gpt-4.1-mini", "gpt-4o", "text-embedding-3-small")

    def handle(self, request: StubRequest) -> StubResponse:
        if self.mode == "quota" and self._bearer(request) == self.good_key:
            return self.error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            )
        return super().handle(request)


class GroqStub(_OpenAICompatibleStub):
    good_env = {"GROQ_API_KEY": "gsk_StubGroqKey0123456789abcdefghijWXYZ"}
    model_ids = ("llama-3.1-8b-instant", "llama-3.3-70b-versatile")
    retry_after = "2"

    def model_entry(self, model_id: str) -> dict[str, Any]:
        return {**super().model_entry(model_id), "active": True, "context_window": 131072}

    def unauthorized(self, sent: str) -> StubResponse:
        return self.error(401, "Invalid API Key", "invalid_request_error", "invalid_api_key")


class OpenRouterStub(_OpenAICompatibleStub):
    good_env = {"OPENROUTER_API_KEY": "sk-or-v1-StubOpenRouterKey0123456789abcdef890"}
    model_ids = ("openai/gpt-4.1-mini", "anthropic/claude-haiku-4.5", "meta-llama/llama-3.1-8b-instruct")

    # OpenRouter's error body is [U] in PROVIDERS.md; this is its usual {"error": {code, message}}.
    def error(self, status: int, message: str, type_: str, code: str | None, **headers: str) -> StubResponse:
        return StubResponse(status, {"error": {"code": status, "message": message}}, headers)

    def unauthorized(self, sent: str) -> StubResponse:
        return self.error(401, "Unauthorized - Authentication required or invalid credentials", "", None)

    def public(self, request: StubRequest) -> StubResponse | None:
        # The model list is public: it answers a wrong key too, which is why verify must not use it.
        if request.method == "GET" and request.path == "/models":
            return StubResponse(200, {"data": [{"id": m, "name": m} for m in self.model_ids]})
        return None

    def route(self, request: StubRequest) -> StubResponse | None:
        if request.method == "GET" and request.path == "/key":
            if self.mode == "malformed":
                return StubResponse(200, {"data": None})
            data = {
                "label": f"{self.good_key[:10]}...{self.good_key[-3:]}",
                "limit": 100,
                "usage": 25.5,
                "limit_remaining": 74.5,
                "is_free_tier": False,
                "is_provisioning_key": False,
                "limit_reset": "monthly",
            }
            return StubResponse(200, {"data": data})
        return super().route(request)


# -- Anthropic -----------------------------------------------------------------------------------------


class AnthropicStub(_AIStub):
    good_env = {"ANTHROPIC_API_KEY": "sk-ant-api03-StubAnthropicKey0123456789abcdef-WXYZ"}
    model_ids = ("claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929", "claude-opus-4-1-20250805")

    def error(self, status: int, type_: str, message: str, **headers: str) -> StubResponse:
        body = {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_stub"}
        return StubResponse(status, body, headers)

    def handle(self, request: StubRequest) -> StubResponse:
        if not request.header("anthropic-version"):
            return self.error(400, "invalid_request_error", "anthropic-version: header is required")
        if self.mode == "bad_key" or request.header("x-api-key") != self.good_key:
            return self.error(401, "authentication_error", "invalid x-api-key")
        if self.mode == "rate_limit":
            return self.error(
                429, "rate_limit_error", "Number of requests has exceeded your rate limit.", **{"retry-after": "1"}
            )
        if self.mode == "overloaded":
            return self.error(529, "overloaded_error", "Overloaded")
        if request.method == "GET" and request.path == "/v1/models":
            return self.models(request)
        if request.method == "POST" and request.path == "/v1/messages":
            return self.messages(request)
        return self.error(404, "not_found_error", f"Not found: {request.path}")

    def models(self, request: StubRequest) -> StubResponse:
        limit = int(request.query.get("limit", ["20"])[0])
        if not 1 <= limit <= 1000:
            return self.error(400, "invalid_request_error", "limit: must be between 1 and 1000")
        if self.mode == "malformed":
            return StubResponse(200, {"type": "list", "items": list(self.model_ids)})
        data = [
            {"type": "model", "id": m, "display_name": m, "created_at": "2025-10-01T00:00:00Z"}
            for m in self.model_ids[:limit]
        ]
        return StubResponse(
            200, {"data": data, "has_more": False, "first_id": data[0]["id"], "last_id": data[-1]["id"]}
        )

    def messages(self, request: StubRequest) -> StubResponse:
        body = request.json()
        for field in ("model", "max_tokens", "messages"):
            if not isinstance(body, dict) or not body.get(field):
                return self.error(400, "invalid_request_error", f"{field}: Field required")
        if self.mode == "malformed":
            return StubResponse(200, HTML)
        if self.reply is not None:
            return StubResponse(200, self.reply)
        return StubResponse(
            200,
            {
                "id": "msg_stub",
                "type": "message",
                "role": "assistant",
                "model": body["model"],
                "content": [{"type": "text", "text": REPLY_TEXT}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 12, "output_tokens": 18},
            },
        )

    def completions(self) -> list[StubRequest]:
        return [r for r in self.requests if r.path == "/v1/messages"]


# -- Gemini ----------------------------------------------------------------------------------------------

GENERATE_PATH = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):generateContent$")


class GeminiStub(_AIStub):
    good_env = {"GEMINI_API_KEY": "AIzaSyStubGeminiKey0123456789abcdefWXYZ"}
    model_ids = ("gemini-2.5-flash-lite", "gemini-2.5-flash", "gemini-2.5-pro", "text-embedding-004")

    def error(self, status: int, code_name: str, message: str, reason: str | None = None) -> StubResponse:
        error: dict[str, Any] = {"code": status, "message": message, "status": code_name}
        if reason:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": reason,
                    "domain": "googleapis.com",
                    "metadata": {"service": "generativelanguage.googleapis.com"},
                }
            ]
        return StubResponse(status, {"error": error})

    def handle(self, request: StubRequest) -> StubResponse:
        sent = request.header("x-goog-api-key") or request.query.get("key", [""])[0]
        if not sent and self.mode != "bad_key":
            return self.error(
                403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers. Please use API Key."
            )
        if self.mode == "bad_key" or sent != self.good_key:
            # Gemini's answer to a wrong key is a 400, not a 401.
            return self.error(
                400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", "API_KEY_INVALID"
            )
        if self.mode == "rate_limit":
            return self.error(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota).")
        if self.mode == "bad_request":
            return self.error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if request.method == "GET" and request.path == "/v1beta/models":
            return self.models()
        match = GENERATE_PATH.match(request.path)
        if request.method == "POST" and match:
            return self.generate(request, match["model"])
        return self.error(404, "NOT_FOUND", f"{request.path} is not found for API version v1beta")

    def models(self) -> StubResponse:
        if self.mode == "malformed":
            return StubResponse(200, {"models": {"name": "models/gemini-2.5-flash"}})
        models = [
            {
                "name": f"models/{m}",
                "displayName": m,
                "inputTokenLimit": 1048576,
                "outputTokenLimit": 65536,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
            for m in self.model_ids
        ]
        return StubResponse(200, {"models": models})

    def generate(self, request: StubRequest, model: str) -> StubResponse:
        body = request.json()
        if not isinstance(body, dict) or not body.get("contents"):
            return self.error(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified")
        if self.mode == "malformed":
            return StubResponse(200, HTML)
        if self.reply is not None:
            return StubResponse(200, self.reply)
        return StubResponse(
            200,
            {
                "candidates": [
                    {"content": {"parts": [{"text": REPLY_TEXT}], "role": "model"}, "finishReason": "STOP", "index": 0}
                ],
                "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 18, "totalTokenCount": 30},
                "modelVersion": model,
            },
        )

    def completions(self) -> list[StubRequest]:
        return [r for r in self.requests if GENERATE_PATH.match(r.path)]
