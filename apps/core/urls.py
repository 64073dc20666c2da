from __future__ import annotations

from django.urls import path

from apps.core import apis

app_name = "core"

urlpatterns = [
    path("health", apis.HealthApi.as_view(), name="health"),
]
