"""Walk-forward folds: each fold's train part is followed by its test part; a later fold's train
part starts late enough that its warm-up never reads the previous fold's test bars (poisoned, they
change nothing in sample). The luck statistics are stored with their inputs, or null with a reason."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from apps.backtests.models import Backtest
from apps.market import hours
from apps.market.arrays import bar_cache_clear
from apps.market.models import Bar
from apps.strategylab.models import Experiment, ExperimentRun
from apps.trading.strategies import required_bars
from tests.strategylab.conftest import TEST, TRAIN, drive, start, store_bars

pytestmark = pytest.mark.django_db

WALK = {"folds": 2, "start": TRAIN["start"], "end": TEST["end"], "test_fraction": 0.5}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _walk(client: Any) -> Experiment:
    return drive(start(client, train=None, test=None, walk_forward=WALK))


def test_folds_alternate_train_and_test_and_later_trains_are_purged(operator_client: Any) -> None:
    store_bars()
    experiment = _walk(operator_client)
    assert experiment.status == "SUCCEEDED", experiment.error
    first, second = experiment.folds
    assert first["train"]["start"] == TRAIN["start"] and second["test"]["end"] == TEST["end"]
    assert _time(first["train"]["end"]) == _time(first["test"]["start"]) < _time(second["train"]["start"])
    assert first["purged_bars"] == 0 and second["purged_bars"] > 0
    warm = max(required_bars("trend_following", p) for p in experiment.combinations) - 1
    assert second["purged_bars"] == warm
    # Every in-sample run's warm-up starts at or after the previous fold's test part ended.
    for run in ExperimentRun.objects.filter(experiment=experiment, phase="IN_SAMPLE", fold=1).select_related(
        "backtest"
    ):
        own = required_bars("trend_following", run.backtest.parameters) - 1
        slots = hours.bar_slots_before("MES", 300, int(run.backtest.start.timestamp()), own)
        assert slots[0] >= int(_time(first["test"]["end"]).timestamp())
    assert ExperimentRun.objects.filter(experiment=experiment, phase="IN_SAMPLE").count() == 8  # 4 sets × 2 folds
    assert ExperimentRun.objects.filter(experiment=experiment, phase="OUT_OF_SAMPLE").count() == 6  # top 3 × 2
    candidate = experiment.candidates.get(rank=1)
    assert len(candidate.in_sample["runs"]) == 2 and len(candidate.out_of_sample["runs"]) == 2
    objective = sum(Decimal(r["metrics"]["net_pnl"]) for r in candidate.out_of_sample["runs"]) / 2
    assert Decimal(candidate.out_of_sample["objective"]) == objective.quantize(Decimal("0.0001")).normalize()


def test_poisoned_test_parts_change_nothing_in_sample(operator_client: Any) -> None:
    store_bars()
    clean = _walk(operator_client)
    for fold in clean.folds:
        Bar.objects.filter(
            instrument="MES", timeframe="5m", ts__gte=_time(fold["test"]["start"]), ts__lt=_time(fold["test"]["end"])
        ).update(open=Decimal("99999.00"), high=Decimal("99999.00"), low=Decimal("0.25"), close=Decimal("0.25"))
    bar_cache_clear()
    poisoned = _walk(operator_client)
    assert poisoned.folds == clean.folds

    def in_sample(experiment: Experiment) -> list[Any]:
        runs = Backtest.objects.filter(lab_run__experiment=experiment, lab_run__phase="IN_SAMPLE")
        return sorted((b.lab_run.fold, b.lab_run.combo, b.metrics["net_pnl"], b.metrics["trades"]) for b in runs)

    assert in_sample(poisoned) == in_sample(clean)
    chosen = [
        list(e.candidates.order_by("in_sample_rank").values_list("combo", "in_sample_rank")) for e in (clean, poisoned)
    ]
    assert chosen[0] == chosen[1]


def test_the_luck_statistics_are_stored_with_their_inputs_or_a_reason(operator_client: Any) -> None:
    store_bars()
    experiment = _walk(operator_client)
    luck = operator_client.get(f"/api/strategy-lab/experiments/{experiment.pk}").json()["luck"]
    assert luck["best_candidate_id"] == experiment.candidates.get(rank=1).pk
    assert luck["trials"] == 4  # every in-sample parameter set
    deflated = luck["deflated_sharpe"]
    assert deflated["trials"] == 4 and deflated["observations"] >= 2  # inputs shown: N and T (trading days)
    assert deflated["probability"] is not None or deflated["reason"]
    pbo = luck["pbo"]
    assert pbo["trials"] == 4 and pbo["periods"] >= 2  # one column per set, one row per in-sample day
    assert pbo["probability"] is not None or pbo["reason"] == luck["pbo_reason"]


def test_a_train_test_split_has_no_pbo(operator_client: Any) -> None:
    store_bars()
    experiment = drive(start(operator_client))
    assert experiment.luck["pbo"] is None and "walk-forward" in experiment.luck["pbo_reason"]
    # A trend follower on a random walk: its winner is flagged as likely luck.
    assert experiment.luck["deflated_sharpe"]["likely_luck"] is True
    assert experiment.luck["deflated_sharpe"]["trials"] == 4
