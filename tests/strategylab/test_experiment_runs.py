"""What happens to an experiment's runs: cancel leaves no job queued or running; a failed run is named
and the experiment still finishes; the beat task advances an experiment whose last close was lost;
the out-of-sample bars are never read by the in-sample search (poisoned, they change nothing there)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from apps.backtests.models import Backtest
from apps.market.arrays import bar_cache_clear
from apps.market.models import Bar
from apps.runners.models import Job
from apps.runners.services.jobs import job_execute
from apps.strategylab import services
from apps.strategylab.models import Experiment, ExperimentRun
from apps.strategylab.tasks import experiment_advance_all
from apps.telemetry.models import AuditEvent
from tests.strategylab.conftest import TEST, TRAIN, body, drive, store_bars

pytestmark = pytest.mark.django_db


def _start(client: Any, **overrides: Any) -> int:
    created = client.post("/api/strategy-lab/experiments", body(**overrides), format="json")
    assert created.status_code == 201, created.json()
    assert client.post(f"/api/strategy-lab/experiments/{created.json()['id']}/start").status_code == 202
    return int(created.json()["id"])


def _jobs(experiment_id: int) -> Any:
    return Job.objects.filter(pk__in=Backtest.objects.filter(lab_run__experiment_id=experiment_id).values("job_id"))


def test_cancel_leaves_no_job_running(operator_client: Any) -> None:
    store_bars()
    experiment_id = _start(operator_client)
    first = Backtest.objects.filter(lab_run__experiment_id=experiment_id).order_by("pk").first()
    job_execute(job_id=first.job_id, worker="bt-worker")  # one run finished before the cancel

    response = operator_client.post(
        f"/api/strategy-lab/experiments/{experiment_id}/cancel", {"reason": "wrong space"}, format="json"
    )
    assert response.status_code == 200 and response.json()["status"] == "CANCELLED"
    assert not _jobs(experiment_id).filter(status__in=["QUEUED", "RUNNING", "FAILED"]).exists()
    assert _jobs(experiment_id).filter(status="CANCELLED").count() == 3
    statuses = set(Backtest.objects.filter(lab_run__experiment_id=experiment_id).values_list("status", flat=True))
    assert statuses == {"SUCCEEDED", "CANCELLED"}  # the finished run keeps its result
    # A message still on its way finds nothing to run; no out-of-sample phase starts.
    for job in _jobs(experiment_id).filter(status="CANCELLED"):
        assert job_execute(job_id=job.pk, worker="bt-worker") is None
    services.experiment_advance_all()
    assert not ExperimentRun.objects.filter(experiment_id=experiment_id, phase="OUT_OF_SAMPLE").exists()
    assert Experiment.objects.get(pk=experiment_id).status == "CANCELLED"
    event = AuditEvent.objects.get(action="strategylab.experiment.cancel")
    assert event.reason == "wrong space" and event.after["jobs_cancelled"] == 3
    again = operator_client.post(f"/api/strategy-lab/experiments/{experiment_id}/cancel")
    assert again.status_code == 409 and again.json()["trace_id"]


def test_a_failed_run_is_named_and_the_experiment_still_finishes(operator_client: Any) -> None:
    store_bars()
    experiment_id = _start(operator_client)
    broken = Backtest.objects.filter(lab_run__experiment_id=experiment_id).order_by("pk").first()
    # The bars of one run's window go missing and no data provider is configured: DATA_UNAVAILABLE.
    Backtest.objects.filter(pk=broken.pk).update(instrument="MNQ")
    experiment = drive(experiment_id)
    assert experiment.status == "SUCCEEDED"
    (failure,) = experiment.failures
    assert failure["backtest_id"] == broken.pk and failure["phase"] == "IN_SAMPLE"
    assert failure["error"]["error_code"] == "DATA_UNAVAILABLE"
    answer = operator_client.get(f"/api/strategy-lab/experiments/{experiment_id}").json()
    assert answer["failures"][0]["backtest_id"] == broken.pk
    assert answer["runs"]["IN_SAMPLE"]["FAILED"] == 1 and answer["progress"] == 1.0
    assert len(answer["candidates"]) == 3  # three sets left to re-run; the failed one is not a candidate
    assert broken.parameters not in [c["parameters"] for c in answer["candidates"]]


def test_every_run_failing_fails_the_experiment_with_the_envelope(operator_client: Any) -> None:
    experiment_id = _start(operator_client)  # no bars stored, no provider configured
    experiment = drive(experiment_id)
    assert experiment.status == "FAILED" and experiment.progress == 1.0
    assert experiment.error["error_code"] == "EXPERIMENT_NOTHING_RANKED" and experiment.error["trace_id"]
    assert len(experiment.failures) == 4
    assert {f["error"]["error_code"] for f in experiment.failures} == {"DATA_UNAVAILABLE"}


def test_the_beat_task_advances_an_experiment_whose_close_was_lost(
    operator_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_bars()
    experiment_id = _start(operator_client)
    with monkeypatch.context() as lost:
        # Every run's job runs its backtest, but the lab's close after it is lost.
        lost.setattr(services, "_advance_quietly", lambda experiment_id: None)
        drive(experiment_id)
    assert Experiment.objects.get(pk=experiment_id).phase == "IN_SAMPLE"
    experiment_advance_all.delay()
    experiment = Experiment.objects.get(pk=experiment_id)
    assert experiment.phase == "OUT_OF_SAMPLE"
    assert ExperimentRun.objects.filter(experiment_id=experiment_id, phase="OUT_OF_SAMPLE").count() == 3
    # Advancing again changes nothing (idempotent).
    services.experiment_advance(experiment_id=experiment_id)
    assert ExperimentRun.objects.filter(experiment_id=experiment_id, phase="OUT_OF_SAMPLE").count() == 3


def _in_sample_outcome(experiment_id: int) -> tuple[list[Any], list[Any]]:
    runs = ExperimentRun.objects.filter(experiment_id=experiment_id, phase="IN_SAMPLE").select_related("backtest")
    figures = sorted((r.combo, r.backtest.metrics, r.backtest.classification) for r in runs)
    chosen = list(
        Experiment.objects.get(pk=experiment_id)
        .candidates.order_by("in_sample_rank")
        .values_list("combo", "in_sample_rank", "in_sample_objective")
    )
    return figures, chosen


def test_poisoned_out_of_sample_bars_change_nothing_in_sample(operator_client: Any) -> None:
    store_bars()
    clean_id = _start(operator_client)
    drive(clean_id)
    clean = _in_sample_outcome(clean_id)

    # Absurd prices on every out-of-sample bar (from test.start on).
    test_start = datetime.fromisoformat(TEST["start"].replace("Z", "+00:00"))
    poisoned_rows = Bar.objects.filter(instrument="MES", timeframe="5m", ts__gte=test_start)
    assert poisoned_rows.exists()
    poisoned_rows.update(open=Decimal("99999.00"), high=Decimal("99999.00"), low=Decimal("0.25"), close=Decimal("0.25"))
    bar_cache_clear()  # this process's cached arrays: the next runs read the store again
    poisoned_id = _start(operator_client)
    poisoned = drive(poisoned_id)
    assert _in_sample_outcome(poisoned_id) == clean
    # ... while the out-of-sample phase did read them.
    clean_oos = sorted(Experiment.objects.get(pk=clean_id).candidates.values_list("combo", "out_of_sample_objective"))
    assert sorted(poisoned.candidates.values_list("combo", "out_of_sample_objective")) != clean_oos
    for bt in Backtest.objects.filter(lab_run__experiment_id=poisoned_id, lab_run__phase="IN_SAMPLE"):
        assert bt.end.isoformat().startswith(TRAIN["end"][:19])


def test_progress_counts_both_phases(operator_client: Any) -> None:
    store_bars()
    experiment_id = _start(operator_client)
    for bt in Backtest.objects.filter(lab_run__experiment_id=experiment_id).order_by("pk")[:2]:
        job_execute(job_id=bt.job_id, worker="bt-worker")
    # 2 of 4 in-sample runs done, 3 out-of-sample runs (top_k × 1 fold) still to come.
    answer = operator_client.get(f"/api/strategy-lab/experiments/{experiment_id}").json()
    assert answer["progress"] == round(2 / 7, 4) and answer["phase"] == "IN_SAMPLE"
    assert answer["runs"]["IN_SAMPLE"] == {**answer["runs"]["IN_SAMPLE"], "SUCCEEDED": 2, "QUEUED": 2}
