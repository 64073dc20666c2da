"""POST /api/strategy-lab/experiments answers 400 naming every bad field; viewers read but may not
write; unknown ids are 404; every error is the envelope with a trace id; writes are audited."""

from __future__ import annotations

from typing import Any

import pytest

from apps.strategylab.models import Experiment
from apps.telemetry.models import AuditEvent
from tests.strategylab.conftest import TEST, TRAIN, body

pytestmark = pytest.mark.django_db


def _fields(response: Any) -> dict[str, Any]:
    data = response.json()
    assert response.status_code == 400, data
    assert data["error_code"] == "VALIDATION_ERROR" and data["trace_id"] and data["suggested_fix"]
    return data["fields"]


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"strategy_key": "martingale"}, "strategy_key", "must be one of"),
        ({"parameter_space": {"fast_period": [1, 5]}}, "parameter_space", "between 2 and 200"),
        ({"parameter_space": {"volume_filter": [1]}}, "parameter_space", "is not a parameter"),
        ({"parameter_space": {"fast_period": {"min": 9, "max": 3, "step": 1}}}, "parameter_space", "is empty"),
        ({"parameter_space": {"fast_period": {"min": 2, "max": 200, "step": 0}}}, "parameter_space", "above 0"),
        (
            {"parameter_space": {"stop_atr_multiple": {"min": 0.5, "max": 10, "step": 0.0001}}},
            "parameter_space",
            "at most",
        ),
        ({"parameter_space": {"fast_period": []}}, "parameter_space", "non-empty"),
        ({"max_runs": 3}, "parameter_space", "more than max_runs"),
        ({"train": {"start": TRAIN["start"]}}, "train", "start"),
        ({"train": TEST, "test": TRAIN}, "train", "at or before test.start"),
        ({"test": {"start": TEST["end"], "end": TEST["start"]}}, "test", "after start"),
        ({"walk_forward": {"folds": 1, "start": TRAIN["start"], "end": TEST["end"]}}, "walk_forward", "from 2 to"),
        ({"objective": "luck"}, "objective", "must be one of"),
        ({"instruments": ["XYZ"]}, "instruments", "is not an instrument"),
    ],
)
def test_a_bad_experiment_is_400_naming_the_field(
    operator_client: Any, overrides: dict[str, Any], field: str, words: str
) -> None:
    fields = _fields(operator_client.post("/api/strategy-lab/experiments", body(**overrides), format="json"))
    assert field in fields, fields
    assert words in str(fields[field]), fields
    assert not Experiment.objects.exists()


def test_every_bad_field_is_named_at_once(operator_client: Any) -> None:
    fields = _fields(
        operator_client.post(
            "/api/strategy-lab/experiments",
            body(name="", objective="luck", top_k=0, parameter_space={"fast_period": [1]}, colour="red"),
            format="json",
        )
    )
    assert {"name", "objective", "top_k", "parameter_space", "colour"} <= set(fields)


def test_train_and_walk_forward_together_is_400(operator_client: Any) -> None:
    walk = {"folds": 2, "start": TRAIN["start"], "end": TEST["end"]}
    fields = _fields(operator_client.post("/api/strategy-lab/experiments", body(walk_forward=walk), format="json"))
    assert "train" in fields and "test" in fields


def test_a_range_expands_to_its_values_and_is_stored_as_given(operator_client: Any) -> None:
    space = {"fast_period": {"min": 3, "max": 7, "step": 2}, "stop_atr_multiple": [1.5, 2]}
    response = operator_client.post("/api/strategy-lab/experiments", body(parameter_space=space), format="json")
    data = response.json()
    assert response.status_code == 201, data
    assert data["parameter_space"] == space
    assert data["grid"] == {"fast_period": [3, 5, 7], "stop_atr_multiple": [1.5, 2.0]}
    assert data["combinations"] == 6 and data["status"] == "DRAFT" and data["candidates"] == []
    event = AuditEvent.objects.get(action="strategylab.experiment.create")
    assert event.target_id == str(data["id"])


def test_a_viewer_reads_but_may_not_write(token_client: Any, operator_client: Any) -> None:
    created = operator_client.post("/api/strategy-lab/experiments", body(), format="json").json()
    viewer = token_client("viewer")
    assert viewer.get("/api/strategy-lab/experiments").status_code == 200
    assert viewer.get(f"/api/strategy-lab/experiments/{created['id']}").status_code == 200
    for path in (
        "/api/strategy-lab/experiments",
        f"/api/strategy-lab/experiments/{created['id']}/start",
        f"/api/strategy-lab/experiments/{created['id']}/cancel",
        f"/api/strategy-lab/experiments/{created['id']}/review",
        "/api/strategy-lab/candidates/1/graduate",
    ):
        response = viewer.post(path, body(), format="json")
        assert response.status_code == 403, path
        assert response.json()["error_code"] == "PERMISSION_DENIED" and response.json()["trace_id"]
    assert Experiment.objects.get().status == "DRAFT"


def test_unauthenticated_is_401(api_client: Any) -> None:
    assert api_client.get("/api/strategy-lab/experiments").status_code == 401


def test_an_unknown_experiment_or_candidate_is_404_in_the_envelope(operator_client: Any) -> None:
    for response in (
        operator_client.get("/api/strategy-lab/experiments/999999"),
        operator_client.post("/api/strategy-lab/candidates/999999/graduate", {}, format="json"),
    ):
        assert response.status_code == 404
        assert response.json()["error_code"] == "NOT_FOUND" and response.json()["trace_id"]


def test_starting_twice_is_409(operator_client: Any) -> None:
    created = operator_client.post("/api/strategy-lab/experiments", body(), format="json").json()
    assert operator_client.post(f"/api/strategy-lab/experiments/{created['id']}/start").status_code == 202
    again = operator_client.post(f"/api/strategy-lab/experiments/{created['id']}/start")
    assert again.status_code == 409 and again.json()["error_code"] == "EXPERIMENT_STATE_CONFLICT"


def test_the_list_is_newest_first_and_paginated(operator_client: Any) -> None:
    ids = [operator_client.post("/api/strategy-lab/experiments", body(), format="json").json()["id"] for _ in range(3)]
    page = operator_client.get("/api/strategy-lab/experiments?limit=2").json()
    assert [e["id"] for e in page["results"]] == ids[::-1][:2] and page["next"]


def test_an_unknown_timeframe_is_400_not_a_crash(operator_client: Any) -> None:
    fields = _fields(operator_client.post("/api/strategy-lab/experiments", body(timeframe="7m"), format="json"))
    assert "timeframe" in fields
