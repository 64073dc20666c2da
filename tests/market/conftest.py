from __future__ import annotations

import pytest

from tests.market.helpers import FakeBarSource


@pytest.fixture
def fake_source() -> FakeBarSource:
    return FakeBarSource()
