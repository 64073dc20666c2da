from __future__ import annotations

from django.urls import path

from apps.core.routing import by_method
from apps.strategylab import apis

app_name = "strategylab"

urlpatterns = [
    path("experiments", by_method(get=apis.ExperimentListApi, post=apis.ExperimentCreateApi), name="list"),
    path("experiments/<int:experiment_id>", apis.ExperimentDetailApi.as_view(), name="detail"),
    path("experiments/<int:experiment_id>/start", apis.ExperimentStartApi.as_view(), name="start"),
    path("experiments/<int:experiment_id>/cancel", apis.ExperimentCancelApi.as_view(), name="cancel"),
    path("experiments/<int:experiment_id>/review", apis.ExperimentReviewApi.as_view(), name="review"),
    path("candidates/<int:candidate_id>/graduate", apis.CandidateGraduateApi.as_view(), name="graduate"),
]
