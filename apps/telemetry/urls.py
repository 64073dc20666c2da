from __future__ import annotations

from django.urls import path

from apps.telemetry import views

app_name = "telemetry"

urlpatterns = [
    path("", views.overview, name="overview"),
]
