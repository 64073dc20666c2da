"""Graduate: a ranked candidate becomes a LAB bot (or a new config version of a bot trading the same
thing) with its parameters, audited; the bot's own backtest over the candidate's out-of-sample window
is the evidence the LAB→PAPER gate reads: a promotable candidate's bot is promoted without override,
a rejected one's is refused naming that backtest."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from apps.backtests.models import Backtest
from apps.bots.models import Bot
from apps.strategylab.models import Candidate
from apps.telemetry.models import AuditEvent
from tests.backtests.conftest import run_job
from tests.bots.factories import BotFactory
from tests.strategylab.conftest import TEST, drive, start, store_bars, store_trend_after

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _one_day_is_enough(settings: Any) -> None:
    # A two-day fixture: the sample-size thresholds are lowered; the result thresholds stay.
    settings.BACKTEST_CLASSIFICATION = {**settings.BACKTEST_CLASSIFICATION, "min_trades": 1, "min_trading_days": 1}
    settings.BACKTEST_GATE_MIN_TRADING_DAYS = 1


def _graduate(client: Any, candidate: dict[str, Any], **data: Any) -> Any:
    return client.post(f"/api/strategy-lab/candidates/{candidate['id']}/graduate", data, format="json")


def _promote(client: Any, bot_id: int) -> Any:
    return client.post(f"/api/bots/{bot_id}/promote", {"to_stage": "PAPER", "reason": "lab evidence"}, format="json")


def _finished(client: Any) -> dict[str, Any]:
    experiment_id = start(client)
    drive(experiment_id)
    answer = client.get(f"/api/strategy-lab/experiments/{experiment_id}").json()
    assert answer["status"] == "SUCCEEDED", answer["error"]
    return answer


def test_a_promotable_candidates_bot_passes_the_gate_without_override(operator_client: Any) -> None:
    store_trend_after(datetime.fromisoformat(TEST["start"].replace("Z", "+00:00")))
    experiment = _finished(operator_client)
    best = experiment["candidates"][0]
    assert best["rank"] == 1 and best["verdict"] == "PROMOTABLE", best["out_of_sample"]["runs"][0]

    response = _graduate(operator_client, best, name="MES trend from the lab")
    assert response.status_code == 201, response.json()
    graduated = response.json()
    bot = Bot.objects.get(pk=graduated["bot_id"])
    assert (bot.name, bot.stage, bot.strategy_key, bot.instrument, bot.timeframe) == (
        "MES trend from the lab", "LAB", "trend_following", "MES", "5m",
    )  # fmt: skip
    assert bot.parameters == best["parameters"] and graduated["bot_config_version"] == bot.config_version == 1
    assert bot.risk_limits == experiment["risk_limits"]
    (evidence_id,) = graduated["graduation_backtests"]
    evidence = Backtest.objects.get(pk=evidence_id)
    assert (evidence.bot_id, evidence.config_version) == (bot.pk, 1)
    assert (evidence.start.isoformat(), evidence.end.isoformat()) == (
        "2025-12-16T14:00:00+00:00", "2025-12-17T14:00:00+00:00",
    )  # fmt: skip
    event = AuditEvent.objects.get(action="strategylab.candidate.graduate")
    assert event.after["bot_id"] == bot.pk and event.after["experiment_id"] == experiment["id"]

    # Before its backtest has run, the gate says it waits for it.
    early = _promote(operator_client, bot.pk)
    assert early.status_code == 409 and f"Backtest {evidence_id}" in str(early.json()["gates"])
    run_job(evidence_id)
    evidence.refresh_from_db()
    # The same bars, parameters, limits and costs as the candidate's out-of-sample run: the same result.
    assert evidence.metrics == best["out_of_sample"]["runs"][0]["metrics"]
    promoted = _promote(operator_client, bot.pk)
    assert promoted.status_code == 200, promoted.json()
    bot.refresh_from_db()
    assert bot.stage == "PAPER"


def test_a_rejected_candidates_bot_fails_the_gate_naming_its_backtest(operator_client: Any) -> None:
    store_bars(seed=7)  # a random walk: trend following loses out of sample
    experiment = _finished(operator_client)
    rejected = next(c for c in experiment["candidates"] if c["verdict"] == "REJECTED")
    graduated = _graduate(operator_client, rejected).json()
    (evidence_id,) = graduated["graduation_backtests"]
    run_job(evidence_id)
    response = _promote(operator_client, graduated["bot_id"])
    assert response.status_code == 409 and response.json()["error_code"] == "PROMOTION_GATE_FAILED"
    gate = next(g for g in response.json()["gates"] if g["name"] == "backtest_promotable")
    assert gate["passed"] is False and f"backtest {evidence_id}" in gate["detail"] and "REJECTED" in gate["detail"]


def test_graduating_into_an_existing_bot_adds_a_config_version(operator_client: Any) -> None:
    store_bars(seed=7)
    experiment = _finished(operator_client)
    candidate = experiment["candidates"][0]
    bot = BotFactory(strategy_key="trend_following", instrument="MES", timeframe="5m")
    response = _graduate(operator_client, candidate, bot_id=bot.pk)
    assert response.status_code == 201, response.json()
    bot.refresh_from_db()
    assert bot.config_version == 2 and bot.parameters == candidate["parameters"]
    assert response.json()["bot_config_version"] == 2
    assert Candidate.objects.get(pk=candidate["id"]).bot_id == bot.pk


def test_an_existing_bot_trading_something_else_is_400(operator_client: Any) -> None:
    store_bars(seed=7)
    experiment = _finished(operator_client)
    other = BotFactory(strategy_key="trend_following", instrument="MNQ", timeframe="5m")
    response = _graduate(operator_client, experiment["candidates"][0], bot_id=other.pk)
    assert response.status_code == 400 and "bot_id" in response.json()["fields"]
    assert "MNQ" in str(response.json()["fields"]["bot_id"])
    other.refresh_from_db()
    assert other.config_version == 1


def test_a_candidate_of_an_unfinished_experiment_cannot_graduate(operator_client: Any) -> None:
    store_bars(seed=7)
    experiment_id = start(operator_client)
    drive(experiment_id)
    candidate = Candidate.objects.filter(experiment_id=experiment_id).first()
    Candidate.objects.filter(pk=candidate.pk).update(rank=None, unranked_reason="its out-of-sample run failed")
    response = _graduate(operator_client, {"id": candidate.pk})
    assert response.status_code == 409 and response.json()["error_code"] == "CANDIDATE_NOT_GRADUABLE"
    assert not Bot.objects.exists()
