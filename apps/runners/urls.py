from __future__ import annotations

from django.urls import path

from apps.runners import apis

app_name = "runners"

urlpatterns = [
    path("", apis.RunnerListApi.as_view(), name="list"),
    path("start", apis.RunnerStartApi.as_view(), name="start"),
    path("stop", apis.RunnerStopApi.as_view(), name="stop"),
    path("restart", apis.RunnerRestartApi.as_view(), name="restart"),
    path("<int:runner_id>", apis.RunnerDetailApi.as_view(), name="detail"),
    path("<int:runner_id>/tick", apis.RunnerTickApi.as_view(), name="tick"),
]
