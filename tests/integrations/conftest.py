from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from apps.integrations import registry
from apps.integrations.registry import ProviderSpec

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


@pytest.fixture(autouse=True)
def _no_provider_keys_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the variables they set: never a key from the developer's environment."""
    for name in registry.all_env_vars():
        if name not in registry.EMBEDDED_DEFAULTS:
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def provider_stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """provider_stub("databento") → a running stub; its base URL and good credentials are set in
    the environment unless configure=False."""
    started: list[Any] = []

    def start(provider: str, *, configure: bool = True) -> Any:
        module_name, _, cls_name = STUBS[provider].partition(":")
        module = importlib.import_module(module_name)
        stub = getattr(module, cls_name)().start()
        started.append(stub)
        spec: ProviderSpec = registry.PROVIDERS[provider]
        monkeypatch.setenv(spec.base_url_var, stub.url)
        if configure:
            for name, value in stub.good_env.items():
                monkeypatch.setenv(name, value)
        return stub

    yield start
    for stub in started:
        stub.stop()
