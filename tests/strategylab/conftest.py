"""Experiments over stored bars: a random walk on MES's tick grid (tests.backtests.factories.store_walk),
the runs driven here as the backtests worker would run their ledger jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from django.utils import timezone

from apps.backtests.models import OPEN_STATUSES, Backtest
from apps.market import hours
from apps.market.bars import MarketBar
from apps.market.models import Bar
from apps.market.services import bars_store
from apps.runners.services.jobs import job_execute
from apps.strategylab.models import Experiment
from tests.backtests.factories import store_walk

# Monday 08:00 CT .. Wednesday 08:00 CT (no holiday); the walk starts earlier for the warm-up.
BARS_FROM = datetime(2025, 12, 15, 0, 0, tzinfo=UTC)
TRAIN = {"start": "2025-12-15T14:00:00Z", "end": "2025-12-16T14:00:00Z"}
TEST = {"start": "2025-12-16T14:00:00Z", "end": "2025-12-17T14:00:00Z"}
BARS_TO = datetime(2025, 12, 17, 14, 0, tzinfo=UTC)
SPACE = {"fast_period": [3, 5], "slow_period": {"min": 8, "max": 12, "step": 4}}


def body(**overrides: Any) -> dict[str, Any]:
    """An experiment request; an override of None leaves that field out."""
    data = {
        "name": "MES trend search",
        "strategy_key": "trend_following",
        "instruments": ["MES"],
        "timeframe": "5m",
        "parameter_space": SPACE,
        "train": TRAIN,
        "test": TEST,
        "objective": "net_pnl",
        "top_k": 3,
        **overrides,
    }
    return {k: v for k, v in data.items() if v is not None}


def store_bars(seed: int = 7, *, to: datetime = BARS_TO) -> int:
    return store_walk(seed=seed, start=BARS_FROM, end=to, timeframe="5m")


def store_trend_after(start: datetime, *, seed: int = 7, lo: int = -4, hi: int = 7) -> int:
    """The random walk up to `start`, then a steady climb (1 tick a bar on average, 4 down to 6 up) to BARS_TO: a
    market trend following earns in."""
    count = store_walk(seed=seed, start=BARS_FROM, end=start, timeframe="5m")
    last = Bar.objects.filter(instrument="MES", timeframe="5m").order_by("-ts").first()
    assert last is not None
    rng = np.random.default_rng(seed)
    tick = Decimal("0.25")
    price = int(last.close / tick)
    bars = []
    for slot in hours.bar_slots_between("MES", 300, int(start.timestamp()), int(BARS_TO.timestamp())):
        o = price
        c = o + int(rng.integers(lo, hi))
        bars.append(
            MarketBar(datetime.fromtimestamp(slot, UTC), o * tick, max(o, c) * tick, min(o, c) * tick, c * tick, 100)
        )
        price = c
    bars_store(instrument="MES", timeframe="5m", bars=bars, source="test", fetched_at=timezone.now())
    return count + len(bars)


def drive(experiment_id: int, worker: str = "bt-worker", limit: int = 500) -> Experiment:
    """Run the experiment's queued jobs, phase after phase, until it has finished."""
    for _ in range(limit):
        queued = list(
            Backtest.objects.filter(lab_run__experiment_id=experiment_id, status__in=OPEN_STATUSES)
            .order_by("pk")
            .values_list("job_id", flat=True)
        )
        if not queued:
            break
        for job_id in queued:
            job_execute(job_id=job_id, worker=worker)
    return Experiment.objects.get(pk=experiment_id)


def start(client: Any, **overrides: Any) -> int:
    created = client.post("/api/strategy-lab/experiments", body(**overrides), format="json")
    assert created.status_code == 201, created.json()
    assert client.post(f"/api/strategy-lab/experiments/{created.json()['id']}/start").status_code == 202
    return int(created.json()["id"])


@pytest.fixture
def operator_client(token_client: Any) -> Any:
    return token_client("operator")
