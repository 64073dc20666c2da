"""The `backtest.run` job against the real database, the Databento stub and the real engine: bars
fetched where missing (metered), the result stored; a window the provider cannot fill fails with
DATA_UNAVAILABLE naming its gaps; a cancel is seen by the running engine; a lost lease writes
nothing; an unexpected error is retried, then FAILED."""

from __future__ import annotations

import itertools
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone

from apps.backtests import services
from apps.backtests.models import Backtest, BacktestTrade
from apps.market.models import Bar
from apps.runners.models import Job
from apps.runners.services.jobs import job_watchdog
from apps.telemetry.models import IntegrationUsageEvent
from apps.trading import engine
from tests.backtests.conftest import START, run_job, strategy_body
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator_client(token_client: Any) -> Any:
    return token_client("operator", username="bt-operator")


def _create(client: Any, **overrides: Any) -> int:
    response = client.post("/api/backtests", strategy_body(**overrides), format="json")
    assert response.status_code == 202, response.json()
    return response.json()["id"]


def test_missing_bars_are_fetched_metered_then_the_engine_runs_and_the_result_is_stored(
    operator_client: Any, provider_stub: Any
) -> None:
    provider_stub("databento")
    bot = BotFactory(timeframe="1m", risk_limits={})
    before = IntegrationUsageEvent.objects.filter(provider="databento", bot_id=bot.pk).count()
    response = operator_client.post(
        "/api/backtests",
        {"bot_id": bot.pk, "start": START.isoformat(), "end": strategy_body()["end"]},
        format="json",
    )
    backtest_id = response.json()["id"]
    assert not Bar.objects.exists()
    job = run_job(backtest_id)
    backtest = Backtest.objects.get(pk=backtest_id)
    assert backtest.status == "SUCCEEDED", backtest.error
    assert job.status == Job.Status.SUCCEEDED and job.result["status"] == "SUCCEEDED"
    # The bars came from the provider, each call metered and attributed to the bot.
    assert IntegrationUsageEvent.objects.filter(provider="databento", bot_id=bot.pk).count() > before
    # The warm-up too: trend following's defaults need 50 bars, 49 of them before the window.
    assert Bar.objects.filter(instrument="MES", timeframe="1m", ts__lt=START).count() >= 49
    assert backtest.bars == 1380 and backtest.progress == 1.0
    assert backtest.started_at and backtest.finished_at and backtest.elapsed_ms is not None
    assert backtest.trades.count() == job.result["trades"]
    assert backtest.metrics and backtest.classification


def test_a_second_run_reads_the_stored_bars_and_asks_the_provider_nothing(
    operator_client: Any, provider_stub: Any
) -> None:
    stub = provider_stub("databento")
    run_job(_create(operator_client))
    asked = len(stub.get_range_requests())
    second = _create(operator_client)
    run_job(second)
    assert Backtest.objects.get(pk=second).status == "SUCCEEDED"
    assert len(stub.get_range_requests()) == asked


def test_the_same_bars_and_config_give_the_same_trades(operator_client: Any, provider_stub: Any) -> None:
    provider_stub("databento")
    first, second = _create(operator_client), _create(operator_client)
    run_job(first)
    run_job(second)

    def trades(backtest_id: int) -> list[tuple[Any, ...]]:
        return list(
            BacktestTrade.objects.filter(backtest_id=backtest_id)
            .order_by("seq")
            .values_list("side", "entry_ts", "entry_price", "exit_ts", "exit_price", "exit_reason", "pnl")
        )

    assert trades(first) == trades(second) and trades(first)


def test_a_window_the_provider_has_no_bars_for_fails_with_data_unavailable_naming_the_gaps(
    operator_client: Any, provider_stub: Any
) -> None:
    stub = provider_stub("databento")
    stub.mode = "empty"
    backtest_id = _create(operator_client)
    job = run_job(backtest_id)
    backtest = Backtest.objects.get(pk=backtest_id)
    assert backtest.status == "FAILED" and not backtest.trades.exists()
    assert job.status == Job.Status.SUCCEEDED and job.result["error_code"] == "DATA_UNAVAILABLE"
    error = backtest.error
    assert error["error_code"] == "DATA_UNAVAILABLE" and error["trace_id"] == job.trace_id
    assert error["reason"] == "gaps" and error["gaps_total"] >= 1 and error["provider"] == "databento"
    gap = error["gaps"][0]
    assert set(gap) == {"start", "end", "slots"} and gap["slots"] > 0
    # Warm-up and window: everything from the warm-up's first bar to the window's end is missing.
    assert gap["start"] < START.isoformat() and error["gaps"][-1]["end"] == "2025-12-16T14:00:00+00:00"
    assert error["missing_bars"] == sum(g["slots"] for g in error["gaps"])
    assert error["cause"]["error_code"] == "DATA_UNAVAILABLE" and error["cause"]["reason"] == "empty_answer"
    assert "missing from the store" in error["message"] and error["suggested_fix"]
    assert IntegrationUsageEvent.objects.filter(provider="databento").exists()  # it did ask
    detail = operator_client.get(f"/api/backtests/{backtest_id}").json()
    assert detail["status"] == "FAILED" and detail["error"] == error and detail["metrics"] == {}


def test_a_provider_without_a_key_fails_naming_the_variables(operator_client: Any) -> None:
    backtest_id = _create(operator_client)  # no stub configured: DATABENTO_API_KEY is not set
    run_job(backtest_id)
    error = Backtest.objects.get(pk=backtest_id).error
    assert error["error_code"] == "DATA_UNAVAILABLE" and error["cause"]["reason"] == "key_missing"
    assert "DATABENTO_API_KEY" in error["missing_env_vars"]


def test_only_the_bars_the_store_lacks_are_fetched(operator_client: Any, provider_stub: Any) -> None:
    stub = provider_stub("databento")
    half = START + timedelta(hours=12)
    run_job(_create(operator_client, end=half.isoformat()))
    stub.requests.clear()
    backtest_id = _create(operator_client)  # the same start, twelve hours further
    run_job(backtest_id)
    assert Backtest.objects.get(pk=backtest_id).status == "SUCCEEDED"
    asked = stub.get_range_requests()
    assert asked and all(r["start"] >= half.strftime("%Y-%m-%dT%H:%M") for r in asked), asked


def test_a_running_engine_sees_the_cancel_through_its_callback_and_nothing_is_stored(
    operator_client: Any, provider_stub: Any, monkeypatch: pytest.MonkeyPatch, operator: Any
) -> None:
    provider_stub("databento")
    backtest_id = _create(operator_client)
    real_run = engine.run
    seen: list[str] = []

    def run_then_cancelled_by_an_operator(bars: Any, config: Any, **kwargs: Any) -> Any:
        # The operator's cancel lands while the engine runs (committed, as the API's would be).
        assert Backtest.objects.get(pk=backtest_id).status == "RUNNING"
        services.backtest_cancel(backtest=Backtest.objects.get(pk=backtest_id), actor=operator)
        try:
            return real_run(bars, config, **kwargs)
        except engine.Cancelled:
            seen.append("cancelled")
            raise

    # The engine asks cancelled() about every half second: let every loop step be half a second.
    ticking = itertools.count(0, 0.5)
    monkeypatch.setattr(engine, "_time", SimpleNamespace(monotonic=lambda: next(ticking)))
    monkeypatch.setattr(services, "PROGRESS_SECONDS", 0)
    monkeypatch.setattr(engine, "run", run_then_cancelled_by_an_operator)
    job = run_job(backtest_id)
    backtest = Backtest.objects.get(pk=backtest_id)
    assert seen == ["cancelled"]  # the real engine stopped at its callback, not at the end
    assert backtest.status == "CANCELLED" and backtest.progress < 1.0 and not backtest.trades.exists()
    assert backtest.metrics == {} and backtest.bars is None
    assert job.status == Job.Status.SUCCEEDED and job.result["stopped"] == "cancelled"


def test_progress_is_written_and_the_lease_extended_while_it_runs(
    operator_client: Any, provider_stub: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    provider_stub("databento")
    backtest_id = _create(operator_client)
    real_run = engine.run
    observed: list[tuple[float, Any]] = []

    def run_watched(bars: Any, config: Any, *, progress: Any, cancelled: Any, **kwargs: Any) -> Any:
        def progress_seen(fraction: float) -> None:
            progress(fraction)
            row = Backtest.objects.get(pk=backtest_id)
            observed.append((row.progress, Job.objects.get(pk=row.job_id).lease_expires_at))

        return real_run(bars, config, progress=progress_seen, cancelled=cancelled, **kwargs)

    ticking = itertools.count(0, 0.5)
    clock = SimpleNamespace(monotonic=lambda: next(ticking))
    monkeypatch.setattr(engine, "_time", clock)
    monkeypatch.setattr(services, "time", clock)
    monkeypatch.setattr(services, "PROGRESS_SECONDS", 0)
    settings.JOB_LEASE_SECONDS = 1  # extend every 0.5 s of run (a quarter of the lease, at least PROGRESS_SECONDS)
    monkeypatch.setattr(engine, "run", run_watched)
    run_job(backtest_id)
    assert Backtest.objects.get(pk=backtest_id).status == "SUCCEEDED"
    fractions = [p for p, _ in observed]
    assert len(fractions) > 2 and fractions == sorted(fractions) and 0 < fractions[0] < fractions[-1] < 1
    leases = [lease for _, lease in observed]
    assert leases[-1] > leases[0]


def test_a_worker_whose_lease_was_taken_writes_nothing(
    operator_client: Any, provider_stub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider_stub("databento")
    backtest_id = _create(operator_client)
    real_run = engine.run

    def run_while_the_watchdog_takes_the_job(bars: Any, config: Any, **kwargs: Any) -> Any:
        result = real_run(bars, config, **kwargs)
        job_id = Backtest.objects.get(pk=backtest_id).job_id
        Job.objects.filter(pk=job_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        job_watchdog()  # the lease expired: requeued for another worker
        return result

    monkeypatch.setattr(engine, "run", run_while_the_watchdog_takes_the_job)
    run_job(backtest_id)
    backtest = Backtest.objects.get(pk=backtest_id)
    job = Job.objects.get(pk=backtest.job_id)
    assert job.status == Job.Status.QUEUED and job.attempts == 1  # the next worker's, untouched
    assert backtest.status == "RUNNING" and not backtest.trades.exists() and backtest.metrics == {}
    # The next worker runs it from the start.
    monkeypatch.setattr(engine, "run", real_run)
    run_job(backtest_id, worker="second")
    assert Backtest.objects.get(pk=backtest_id).status == "SUCCEEDED"


def test_an_unexpected_error_is_retried_then_failed_with_internal_error(
    operator_client: Any, provider_stub: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider_stub("databento")
    backtest_id = _create(operator_client)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("engine bug")

    monkeypatch.setattr(engine, "run", broken)
    job = run_job(backtest_id)
    backtest = Backtest.objects.get(pk=backtest_id)
    assert job.status == Job.Status.FAILED and "engine bug" in job.error
    assert backtest.status == "QUEUED" and backtest.error is None  # waiting for the retry
    Job.objects.filter(pk=job.pk).update(available_at=timezone.now() - timedelta(seconds=1), max_attempts=2)
    job = run_job(backtest_id, worker="second")
    backtest = Backtest.objects.get(pk=backtest_id)
    assert job.status == Job.Status.DEAD
    assert backtest.status == "FAILED" and backtest.error["error_code"] == "INTERNAL_ERROR"
    assert "engine bug" not in backtest.error["message"]  # the cause is in the job and the log, not the API


def test_a_job_dead_lettered_by_the_watchdog_fails_its_backtest(operator_client: Any) -> None:
    backtest_id = _create(operator_client)
    backtest = Backtest.objects.get(pk=backtest_id)
    Backtest.objects.filter(pk=backtest_id).update(status="RUNNING")
    Job.objects.filter(pk=backtest.job_id).update(
        status="RUNNING", attempts=3, max_attempts=3, leased_by="lost", lease_expires_at=timezone.now()
    )
    job_watchdog(now=timezone.now() + timedelta(seconds=1))
    backtest.refresh_from_db()
    assert Job.objects.get(pk=backtest.job_id).status == Job.Status.DEAD
    assert backtest.status == "FAILED" and backtest.error["error_code"] == "INTERNAL_ERROR"
    assert "given up after 3 attempt(s)" in backtest.error["message"]
    assert backtest.error["trace_id"] == Job.objects.get(pk=backtest.job_id).trace_id


def test_running_the_job_twice_runs_the_backtest_once(operator_client: Any, provider_stub: Any) -> None:
    provider_stub("databento")
    backtest_id = _create(operator_client)
    run_job(backtest_id)
    trades = BacktestTrade.objects.filter(backtest_id=backtest_id).count()
    assert run_job(backtest_id, worker="duplicate") is None
    # Even a job row forced back to QUEUED (a retry) finds the backtest finished: nothing is redone.
    backtest = Backtest.objects.get(pk=backtest_id)
    Job.objects.filter(pk=backtest.job_id).update(status="QUEUED")
    again = run_job(backtest_id, worker="retry")
    assert again.result == {"backtest_id": backtest_id, "skipped": "SUCCEEDED"}
    assert BacktestTrade.objects.filter(backtest_id=backtest_id).count() == trades
