from __future__ import annotations

from django.urls import path

from apps.runners import views

app_name = "runner-pages"

urlpatterns = [
    path("", views.runner_list, name="list"),
    path("kill-all", views.kill_all, name="kill-all"),
    path("kill-all/release", views.kill_all_release, name="kill-all-release"),
]
