from __future__ import annotations

from typing import Any

import pytest

from apps.integrations.ironbeam import client as ironbeam
from tests.stubs import ironbeam as stubs


@pytest.fixture(autouse=True)
def _fresh_process(settings: Any) -> Any:
    """No token (or memory of sent orders) survives from another test."""
    ironbeam.clear_token_cache()
    settings.IRONBEAM_PLACE_TIMEOUT_SECONDS = 0.5  # the stub stalls for 2 s
    yield
    ironbeam.clear_token_cache()


@pytest.fixture
def stub(provider_stub: Any) -> stubs.IronbeamStub:
    return provider_stub("ironbeam")
