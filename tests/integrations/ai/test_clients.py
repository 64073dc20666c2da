"""The five AI clients against their stubs: how the key is sent, what `complete` sends and returns,
how each provider's own failures are classified, and that the key never leaks."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from apps.integrations import registry
from apps.integrations.anthropic.client import DEFAULT_MODEL as ANTHROPIC_DEFAULT
from apps.integrations.errors import IntegrationError, IntegrationKeyMissing
from apps.integrations.gemini.client import DEFAULT_MODEL as GEMINI_DEFAULT
from apps.integrations.groq.client import DEFAULT_MODEL as GROQ_DEFAULT
from apps.integrations.openai.client import DEFAULT_MODEL as OPENAI_DEFAULT
from apps.integrations.openrouter.client import DEFAULT_MODEL as OPENROUTER_DEFAULT
from apps.integrations.services import integration_verify
from apps.telemetry.models import IntegrationUsageEvent
from tests.stubs.ai import GENERATE_PATH, REPLY_TEXT

pytestmark = pytest.mark.django_db

PROVIDERS = ["openai", "anthropic", "gemini", "groq", "openrouter"]
OPENAI_COMPATIBLE = ["openai", "groq", "openrouter"]
PROMPT = "Explain in two sentences why bot 7 skipped the 14:30 entry."

DEFAULT_MODELS = {
    "openai": OPENAI_DEFAULT,
    "anthropic": ANTHROPIC_DEFAULT,
    "gemini": GEMINI_DEFAULT,
    "groq": GROQ_DEFAULT,
    "openrouter": OPENROUTER_DEFAULT,
}
# Where each API reads the key (PROVIDERS.md §5), as (header, value template).
KEY_HEADER = {
    "openai": ("authorization", "Bearer {key}"),
    "anthropic": ("x-api-key", "{key}"),
    "gemini": ("x-goog-api-key", "{key}"),
    "groq": ("authorization", "Bearer {key}"),
    "openrouter": ("authorization", "Bearer {key}"),
}
VERIFY_CALL = {
    "openai": ("GET", "/models"),
    "anthropic": ("GET", "/v1/models"),
    "gemini": ("GET", "/v1beta/models"),
    "groq": ("GET", "/models"),
    "openrouter": ("GET", "/key"),
}


def client(provider: str) -> Any:
    return registry.PROVIDERS[provider].client_class().for_bot()


def failure(call: Any, *args: Any, **kwargs: Any) -> IntegrationError:
    with pytest.raises(IntegrationError) as caught:
        call(*args, **kwargs)
    return caught.value


def sent_model(provider: str, request: Any) -> str:
    if provider == "gemini":
        return GENERATE_PATH.match(request.path)["model"]  # type: ignore[index]
    return request.json()["model"]


def sent_prompt_and_limit(provider: str, body: dict[str, Any]) -> tuple[Any, Any]:
    if provider == "gemini":
        return body["contents"], body["generationConfig"]["maxOutputTokens"]
    field = {"openai": "max_completion_tokens", "groq": "max_completion_tokens"}.get(provider, "max_tokens")
    return body["messages"], body[field]


def expected_prompt(provider: str) -> Any:
    if provider == "gemini":
        return [{"role": "user", "parts": [{"text": PROMPT}]}]
    return [{"role": "user", "content": PROMPT}]


# -- the key ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_every_call_sends_the_key_the_documented_way_and_nowhere_else(provider: str, provider_stub: Any) -> None:
    stub = provider_stub(provider)
    ai = client(provider)
    ai.verify()
    ai.complete(PROMPT)

    header, template = KEY_HEADER[provider]
    assert len(stub.requests) == 2
    for request in stub.requests:
        assert request.header(header) == template.format(key=stub.good_key)
        others = {name: value for name, value in request.headers.items() if name != header}
        assert stub.good_key not in str(others)
        assert stub.good_key not in str(request.query)  # never ?key=, which ends up in access logs
        assert stub.good_key.encode() not in request.body
    if provider == "anthropic":
        assert all(r.header("anthropic-version") == "2023-06-01" for r in stub.requests)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_wrong_key_is_an_auth_failure_on_every_call(provider: str, provider_stub: Any, monkeypatch: Any) -> None:
    stub = provider_stub(provider)
    monkeypatch.setenv(registry.PROVIDERS[provider].required_env_vars[0], "wrong-key-0000000000000000")
    ai = client(provider)
    assert failure(ai.verify).error_code == "INTEGRATION_AUTH_FAILED"
    assert failure(ai.complete, PROMPT).error_code == "INTEGRATION_AUTH_FAILED"
    assert len(stub.requests) == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_key_never_appears_in_usage_events_errors_or_logs(
    provider: str, provider_stub: Any, caplog: pytest.LogCaptureFixture
) -> None:
    for logger in (None, "httpx", "httpcore", "tradeops"):  # httpx logs whole URLs at INFO
        caplog.set_level(logging.DEBUG, logger=logger)
    stub = provider_stub(provider)
    key = stub.good_key
    seen: list[str] = []
    for mode in ("ok", "bad_key", "rate_limit", "malformed", "timeout"):
        stub.mode = mode
        ai = client(provider)
        for call, args in ((ai.verify, ()), (ai.complete, (PROMPT,))):
            try:
                seen.append(repr(call(*args)))
            except IntegrationError as exc:
                seen += [str(exc), exc.message, exc.suggested_fix, repr(exc.extra)]
        seen.append(repr(integration_verify(provider=provider).as_dict()))

    events = list(IntegrationUsageEvent.objects.filter(provider=provider).values())
    assert len(events) == 15  # 5 modes x (verify, complete, service verify): every call was metered
    assert {e["status"] for e in events} == {"ok", "error"}
    assert key not in repr(events)
    assert key not in "\n".join(seen)
    assert caplog.records and key not in caplog.text


# -- verify -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_verify_makes_one_documented_call_and_returns_small_non_secret_facts(provider: str, provider_stub: Any) -> None:
    stub = provider_stub(provider)
    facts = client(provider).verify()

    assert [(r.method, r.path) for r in stub.requests] == [VERIFY_CALL[provider]]
    if provider == "openrouter":
        # The key record, minus its `label` (a masked copy of the key).
        expected = {"is_free_tier": False, "limit": 100, "limit_remaining": 74.5, "usage": 25.5}
    else:
        expected = {"models": len(stub.model_ids)}
    assert facts == {**expected, "model": DEFAULT_MODELS[provider]}


def test_openrouter_verify_reads_the_key_record_because_the_model_list_is_public(provider_stub: Any) -> None:
    stub = provider_stub("openrouter")
    stub.mode = "bad_key"  # /models still answers 200 in this mode, as the real one does for any key
    error = failure(client("openrouter").verify)
    assert error.error_code == "INTEGRATION_AUTH_FAILED"
    assert [r.path for r in stub.requests] == ["/key"]


# -- complete -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_complete_returns_the_provider_text_and_sends_the_configured_model(
    provider: str, provider_stub: Any, monkeypatch: Any
) -> None:
    stub = provider_stub(provider)
    monkeypatch.setenv(f"{provider.upper()}_MODEL", "operator-chosen-model")

    text = client(provider).complete(PROMPT, max_tokens=64)

    assert text == REPLY_TEXT
    [request] = stub.completions()
    assert request.method == "POST"
    assert sent_model(provider, request) == "operator-chosen-model"
    assert sent_prompt_and_limit(provider, request.json()) == (expected_prompt(provider), 64)
    event = IntegrationUsageEvent.objects.get(provider=provider)
    assert (event.operation, event.status) == ("complete", "ok")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_complete_uses_the_default_model_when_none_is_configured(provider: str, provider_stub: Any) -> None:
    stub = provider_stub(provider)
    client(provider).complete(PROMPT)
    [request] = stub.completions()
    assert sent_model(provider, request) == DEFAULT_MODELS[provider]
    assert sent_prompt_and_limit(provider, request.json())[1] == 256


def test_gemini_accepts_a_model_name_copied_from_its_model_list(provider_stub: Any, monkeypatch: Any) -> None:
    stub = provider_stub("gemini")
    monkeypatch.setenv("GEMINI_MODEL", "models/gemini-2.5-pro")
    client("gemini").complete(PROMPT)
    assert [r.path for r in stub.completions()] == ["/v1beta/models/gemini-2.5-pro:generateContent"]


@pytest.mark.parametrize(
    ("provider", "reply"),
    [
        pytest.param(
            "anthropic",
            {
                "type": "message",
                "content": [
                    {"type": "thinking", "thinking": "The spread filter...", "signature": "sig"},
                    {"type": "text", "text": REPLY_TEXT},
                ],
                "stop_reason": "end_turn",
            },
            id="anthropic-thinking-block",
        ),
        pytest.param(
            "gemini",
            {
                "candidates": [
                    {
                        "content": {
                            "role": "model",
                            "parts": [{"text": "The spread...", "thought": True}, {"text": REPLY_TEXT}],
                        },
                        "finishReason": "STOP",
                    }
                ]
            },
            id="gemini-thought-part",
        ),
    ],
)
def test_complete_returns_the_answer_text_without_the_model_thinking(
    provider: str, reply: dict[str, Any], provider_stub: Any
) -> None:
    stub = provider_stub(provider)
    stub.reply = reply
    assert client(provider).complete(PROMPT) == REPLY_TEXT


def _chat(message: dict[str, Any], finish_reason: str = "stop") -> dict[str, Any]:
    return {"object": "chat.completion", "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}]}


_OPENAI_COMPATIBLE_ODD = [
    ("no-choices", {"object": "chat.completion", "choices": []}, "no choices"),
    ("no-choices-key", {"object": "chat.completion"}, "no choices"),
    ("cut-off", _chat({"role": "assistant", "content": None}, "length"), "finish_reason='length'"),
    ("refusal", _chat({"role": "assistant", "content": None, "refusal": "I can't help with that."}), "no text"),
    ("blank", _chat({"role": "assistant", "content": " \n"}), "no text"),
]
_ODD = [
    *[
        pytest.param(p, body, why, id=f"{p}-{name}")
        for p in OPENAI_COMPATIBLE
        for name, body, why in _OPENAI_COMPATIBLE_ODD
    ],
    pytest.param(
        "anthropic",
        {"type": "message", "content": [], "stop_reason": "max_tokens"},
        "stop_reason='max_tokens'",
        id="anthropic-empty",
    ),
    pytest.param(
        "anthropic",
        {
            "type": "message",
            "content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}}],
            "stop_reason": "tool_use",
        },
        "no text",
        id="anthropic-tool-use-only",
    ),
    pytest.param("anthropic", {"type": "message", "content": "text"}, "expected a message", id="anthropic-content-str"),
    pytest.param("gemini", {"promptFeedback": {"blockReason": "SAFETY"}}, "blockReason='SAFETY'", id="gemini-blocked"),
    pytest.param(
        "gemini", {"candidates": [{"finishReason": "MAX_TOKENS", "index": 0}]}, "MAX_TOKENS", id="gemini-cut-off"
    ),
    pytest.param(
        "gemini",
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "hmm", "thought": True}]}, "finishReason": "STOP"}
            ]
        },
        "no text",
        id="gemini-thoughts-only",
    ),
]


@pytest.mark.parametrize(("provider", "reply", "why"), _ODD)
def test_an_empty_or_odd_completion_is_a_bad_response_never_invented_text(
    provider: str, reply: dict[str, Any], why: str, provider_stub: Any
) -> None:
    stub = provider_stub(provider)
    stub.reply = reply
    error = failure(client(provider).complete, PROMPT)
    assert error.error_code == "INTEGRATION_BAD_RESPONSE"
    assert why in error.message
    event = IntegrationUsageEvent.objects.get(provider=provider, operation="complete")
    assert (event.status, event.error_code) == ("error", "INTEGRATION_BAD_RESPONSE")


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_completion_that_is_not_json_is_a_bad_response(provider: str, provider_stub: Any) -> None:
    stub = provider_stub(provider)
    stub.mode = "malformed"
    assert failure(client(provider).complete, PROMPT).error_code == "INTEGRATION_BAD_RESPONSE"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_complete_without_a_key_fails_closed_without_calling(provider: str, provider_stub: Any) -> None:
    stub = provider_stub(provider, configure=False)
    with pytest.raises(IntegrationKeyMissing):
        client(provider).complete(PROMPT)
    assert stub.requests == []
    assert not IntegrationUsageEvent.objects.filter(provider=provider).exists()


# -- each provider's own failures --------------------------------------------------------------------------


@pytest.mark.parametrize("operation", ["verify", "complete"])
def test_gemini_answers_a_bad_key_with_400_api_key_invalid_which_is_an_auth_failure(
    operation: str, provider_stub: Any
) -> None:
    stub = provider_stub("gemini")
    stub.mode = "bad_key"
    ai = client("gemini")
    error = failure(ai.verify) if operation == "verify" else failure(ai.complete, PROMPT)
    assert (error.error_code, error.http_status, error.permanent) == ("INTEGRATION_AUTH_FAILED", 400, True)
    assert "GEMINI_API_KEY" in error.suggested_fix
    event = IntegrationUsageEvent.objects.get(provider="gemini", operation=operation)
    assert (event.error_code, event.http_status) == ("INTEGRATION_AUTH_FAILED", 400)


def test_gemini_400_not_about_the_key_stays_a_rejected_request(provider_stub: Any) -> None:
    stub = provider_stub("gemini")
    stub.mode = "bad_request"
    error = failure(client("gemini").complete, PROMPT)
    assert (error.error_code, error.http_status) == ("INTEGRATION_REQUEST_REJECTED", 400)


@pytest.mark.parametrize("operation", ["verify", "complete"])
def test_anthropic_529_overloaded_is_a_transient_provider_error(operation: str, provider_stub: Any) -> None:
    stub = provider_stub("anthropic")
    stub.mode = "overloaded"
    ai = client("anthropic")
    error = failure(ai.verify) if operation == "verify" else failure(ai.complete, PROMPT)
    assert (error.error_code, error.http_status, error.permanent) == ("INTEGRATION_PROVIDER_ERROR", 529, False)
    assert "Overloaded" in error.message


def test_an_openai_spent_balance_is_not_retried_as_a_rate_limit(provider_stub: Any) -> None:
    stub = provider_stub("openai")
    stub.mode = "quota"
    error = failure(client("openai").complete, PROMPT)
    assert (error.error_code, error.permanent) == ("INTEGRATION_PERMISSION_DENIED", True)
    assert "credits" in error.suggested_fix


@pytest.mark.parametrize(("provider", "seconds"), [("groq", 2.0), ("anthropic", 1.0)])
def test_a_rate_limit_passes_on_the_providers_retry_after(provider: str, seconds: float, provider_stub: Any) -> None:
    stub = provider_stub(provider)
    stub.mode = "rate_limit"
    error = failure(client(provider).complete, PROMPT)
    assert (error.error_code, error.retry_after, error.permanent) == ("INTEGRATION_RATE_LIMITED", seconds, False)
