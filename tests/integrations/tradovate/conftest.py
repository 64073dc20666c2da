from __future__ import annotations

from typing import Any

import pytest

from apps.integrations.tradovate import client as tradovate
from tests.stubs import tradovate as stubs


@pytest.fixture(autouse=True)
def waits(monkeypatch: pytest.MonkeyPatch) -> Any:
    """No token (or memory of sent orders) survives from another test, and p-ticket waits are
    recorded instead of slept."""
    tradovate.clear_token_cache()
    recorded: list[float] = []
    monkeypatch.setattr(tradovate, "_sleep", recorded.append)
    yield recorded
    tradovate.clear_token_cache()


@pytest.fixture
def stub(provider_stub: Any) -> stubs.TradovateStub:
    return provider_stub("tradovate")
