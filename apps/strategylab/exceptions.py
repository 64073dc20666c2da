"""The strategy lab's domain errors, each with its SPEC §2 code and HTTP status."""

from __future__ import annotations

from typing import Any

from apps.core.exceptions import ApplicationError, StateConflict


class ExperimentValidationError(ApplicationError):
    """400 naming every bad field at once (`fields`)."""

    status_code = 400
    error_code = "VALIDATION_ERROR"
    default_message = "The experiment is not valid; see `fields`."
    default_suggested_fix = "Correct the fields named in `fields` and resend."

    def __init__(self, fields: dict[str, Any], message: str | None = None) -> None:
        super().__init__(message, extra={"fields": fields})


class ExperimentNotFound(ApplicationError):
    status_code = 404
    error_code = "NOT_FOUND"
    default_message = "No experiment has this id."
    default_suggested_fix = "List the experiments with GET /api/strategy-lab/experiments."


class CandidateNotFound(ApplicationError):
    status_code = 404
    error_code = "NOT_FOUND"
    default_message = "No candidate has this id."
    default_suggested_fix = "Read the experiment (GET /api/strategy-lab/experiments/{id}): it lists its candidates."


class ExperimentStateConflict(StateConflict):
    """A valid request the experiment's state refuses (start twice, cancel a finished one)."""

    error_code = "EXPERIMENT_STATE_CONFLICT"
    default_suggested_fix = "Read the experiment's status first; create a new experiment for another search."


class CandidateNotGraduable(StateConflict):
    error_code = "CANDIDATE_NOT_GRADUABLE"
    default_suggested_fix = "Graduate a ranked candidate of a SUCCEEDED experiment."
