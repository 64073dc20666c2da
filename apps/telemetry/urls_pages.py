from __future__ import annotations

from django.urls import path

from apps.telemetry import views

app_name = "alert-pages"

urlpatterns = [
    path("", views.alert_list, name="list"),
    path("<int:alert_id>/ack", views.alert_ack, name="ack"),
]
