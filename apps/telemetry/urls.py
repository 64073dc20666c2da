from __future__ import annotations

from django.urls import path

from apps.telemetry import apis

app_name = "alerts"

alert_collection = apis.AlertListApi.as_view()

urlpatterns = [
    path("", alert_collection, name="list"),
    path("<int:alert_id>", apis.AlertDetailApi.as_view(), name="detail"),
    path("<int:alert_id>/ack", apis.AlertAckApi.as_view(), name="ack"),
]
