"""Loopback stub servers, one per provider (see base.py for the contract)."""

from __future__ import annotations

import importlib

# provider -> "module:StubClass"; each stub class has `good_env`, credentials it accepts.
STUBS: dict[str, str] = {
    "databento": "tests.stubs.databento:DatabentoStub",
    "polygon": "tests.stubs.polygon:PolygonStub",
    "tradovate": "tests.stubs.tradovate:TradovateStub",
    "ironbeam": "tests.stubs.ironbeam:IronbeamStub",
    "openai": "tests.stubs.ai:OpenAIStub",
    "anthropic": "tests.stubs.ai:AnthropicStub",
    "gemini": "tests.stubs.ai:GeminiStub",
    "groq": "tests.stubs.ai:GroqStub",
    "openrouter": "tests.stubs.ai:OpenRouterStub",
    "twilio": "tests.stubs.twilio:TwilioStub",
}


def available_stubs() -> list[str]:
    """Providers whose stub module exists (they land one by one)."""
    out = []
    for provider, target in STUBS.items():
        module = target.split(":")[0]
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            continue
        out.append(provider)
    return out
