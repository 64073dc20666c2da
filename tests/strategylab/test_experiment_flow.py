"""An experiment over stored bars runs to SUCCEEDED: in-sample runs over the train window, the best
top_k re-run over the test window, candidates ranked by their out-of-sample objective, each carrying
both windows' figures, its verdict and warnings; progress covers both phases."""

from __future__ import annotations

from typing import Any

import pytest

from apps.backtests.models import Backtest
from apps.runners.models import Job
from apps.strategylab.models import Experiment, ExperimentRun
from tests.strategylab.conftest import TEST, TRAIN, body, drive, store_bars

pytestmark = pytest.mark.django_db


def _create_and_start(client: Any, **overrides: Any) -> dict[str, Any]:
    created = client.post("/api/strategy-lab/experiments", body(**overrides), format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["status"] == "DRAFT"
    started = client.post(f"/api/strategy-lab/experiments/{created.json()['id']}/start")
    assert started.status_code == 202, started.json()
    return started.json()


def test_an_experiment_runs_to_succeeded_with_ranked_candidates(operator_client: Any) -> None:
    store_bars()
    started = _create_and_start(operator_client)
    assert started["status"] == "RUNNING" and started["phase"] == "IN_SAMPLE"
    # 2 fast × 2 slow periods = 4 in-sample runs, each a strategylab.run job on the backtests queue.
    runs = ExperimentRun.objects.filter(experiment_id=started["id"])
    assert runs.count() == 4
    assert set(Job.objects.filter(pk__in=runs.values("backtest__job_id")).values_list("type", flat=True)) == {
        "strategylab.run"
    }
    for bt in Backtest.objects.filter(lab_run__experiment_id=started["id"]):
        assert (bt.start.isoformat(), bt.end.isoformat()) == ("2025-12-15T14:00:00+00:00", "2025-12-16T14:00:00+00:00")

    experiment = drive(started["id"])
    assert experiment.status == Experiment.Status.SUCCEEDED, experiment.error
    answer = operator_client.get(f"/api/strategy-lab/experiments/{experiment.pk}").json()
    assert answer["progress"] == 1.0
    assert answer["runs"]["IN_SAMPLE"]["SUCCEEDED"] == 4
    assert answer["runs"]["OUT_OF_SAMPLE"]["SUCCEEDED"] == 3
    candidates = answer["candidates"]
    assert [c["rank"] for c in candidates] == [1, 2, 3]
    oos = [float(c["out_of_sample"]["objective"]) for c in candidates]
    assert oos == sorted(oos, reverse=True)  # net_pnl: the highest first
    for c in candidates:
        (ins,) = c["in_sample"]["runs"]
        (out,) = c["out_of_sample"]["runs"]
        assert (ins["start"], ins["end"]) == (TRAIN["start"], TRAIN["end"])
        assert (out["start"], out["end"]) == (TEST["start"], TEST["end"])
        assert ins["metrics"]["net_pnl"] == c["in_sample"]["objective"] or float(ins["metrics"]["net_pnl"]) == float(
            c["in_sample"]["objective"]
        )
        assert "trades" in out["metrics"]
        assert c["verdict"] == out["verdict"] and c["verdict"] in ("PROMOTABLE", "MARGINAL", "REJECTED")
        assert isinstance(c["overfit_warnings"], list)
    # The top_k were the best in sample.
    in_sample = sorted(float(c["in_sample"]["objective"]) for c in candidates)
    all_in = sorted(
        float(bt.metrics["net_pnl"])
        for bt in Backtest.objects.filter(lab_run__experiment_id=experiment.pk, lab_run__phase="IN_SAMPLE")
    )
    assert in_sample == all_in[-3:]
    # The runs traded (the default risk limits let the strategy trade, as a graduated bot's would).
    assert all(c["out_of_sample"]["runs"][0]["metrics"]["trades"] > 0 for c in candidates)
    assert len(set(all_in)) > 1
