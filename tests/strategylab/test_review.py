"""The AI review: without any AI provider configured it answers 409 INTEGRATION_KEY_MISSING and
changes nothing; with one (its stub), the review is asked through the provider's metered client
(a usage event), stored with the experiment, and the prompt carries the results, not secrets."""

from __future__ import annotations

from typing import Any

import pytest

from apps.strategylab.models import Experiment
from apps.telemetry.models import AuditEvent, IntegrationUsageEvent
from tests.strategylab.conftest import drive, start, store_bars
from tests.stubs.ai import REPLY_TEXT

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished(operator_client: Any) -> int:
    store_bars(seed=7)
    experiment_id = start(operator_client)
    assert drive(experiment_id).status == "SUCCEEDED"
    return experiment_id


def test_without_an_ai_key_the_review_is_409_and_nothing_is_stored(operator_client: Any, finished: int) -> None:
    response = operator_client.post(f"/api/strategy-lab/experiments/{finished}/review")
    body = response.json()
    assert response.status_code == 409, body
    assert body["error_code"] == "INTEGRATION_KEY_MISSING" and body["trace_id"] and body["suggested_fix"]
    assert "ANTHROPIC_API_KEY" in body["missing_env_vars"] and "OPENAI_API_KEY" in body["missing_env_vars"]
    assert Experiment.objects.get(pk=finished).review_text == ""
    assert not IntegrationUsageEvent.objects.exists()


def test_with_the_ai_stub_the_review_is_stored_and_metered(
    operator_client: Any, finished: int, provider_stub: Any
) -> None:
    stub = provider_stub("anthropic")
    response = operator_client.post(f"/api/strategy-lab/experiments/{finished}/review")
    assert response.status_code == 200, response.json()
    review = response.json()["review"]
    assert review["text"] == REPLY_TEXT and review["provider"] == "anthropic" and review["model"]
    assert operator_client.get(f"/api/strategy-lab/experiments/{finished}").json()["review"]["text"] == REPLY_TEXT
    (event,) = IntegrationUsageEvent.objects.filter(provider="anthropic", operation="complete")
    assert event.status == "ok"
    (call,) = stub.completions()
    prompt = call.json()["messages"][0]["content"]
    experiment = Experiment.objects.get(pk=finished)
    best = experiment.candidates.get(rank=1)
    assert "trend_following" in prompt and str(best.parameters) in prompt and "rank 1" in prompt
    assert stub.good_key not in prompt
    assert AuditEvent.objects.filter(action="strategylab.experiment.review", target_id=str(finished)).exists()


def test_a_running_experiment_is_not_reviewed(operator_client: Any, provider_stub: Any) -> None:
    provider_stub("anthropic")
    experiment_id = start(operator_client)
    response = operator_client.post(f"/api/strategy-lab/experiments/{experiment_id}/review")
    assert response.status_code == 409 and response.json()["error_code"] == "EXPERIMENT_STATE_CONFLICT"
    assert not IntegrationUsageEvent.objects.exists()
