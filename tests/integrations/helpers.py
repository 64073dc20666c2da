"""Helpers shared by the provider client tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from apps.integrations.errors import IntegrationError
from apps.telemetry.models import IntegrationUsageEvent


def failure(call: Callable[[], Any]) -> IntegrationError:
    """The IntegrationError `call` raises (the test fails if it raises nothing)."""
    with pytest.raises(IntegrationError) as caught:
        call()
    return caught.value


def usage_events(provider: str) -> list[IntegrationUsageEvent]:
    return list(IntegrationUsageEvent.objects.filter(provider=provider).order_by("id"))
