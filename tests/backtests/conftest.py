from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apps.backtests.models import Backtest
from apps.runners.services.jobs import job_execute

# A window of CME equity-index futures trading (Monday 08:00 CT to Tuesday 08:00 CT, no holiday),
# served by the Databento stub's synthetic minute bars.
START = datetime(2025, 12, 15, 14, 0, tzinfo=UTC)
END = datetime(2025, 12, 16, 14, 0, tzinfo=UTC)


def strategy_body(**overrides: Any) -> dict[str, Any]:
    return {
        "strategy_key": "trend_following",
        "parameters": {"fast_period": 5, "slow_period": 20, "atr_period": 5, "stop_atr_multiple": 2.0},
        "instrument": "MES",
        "timeframe": "1m",
        "start": START.isoformat(),
        "end": END.isoformat(),
        **overrides,
    }


def run_job(backtest_id: int, worker: str = "bt-worker") -> Any:
    """Run the backtest's ledger job here, as the backtests worker would."""
    backtest = Backtest.objects.get(pk=backtest_id)
    return job_execute(job_id=backtest.job_id, worker=worker)
