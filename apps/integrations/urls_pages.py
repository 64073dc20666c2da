from __future__ import annotations

from django.urls import path

from apps.integrations import views

app_name = "connections"

urlpatterns = [
    path("", views.connections, name="list"),
    path("keys-needed/", views.keys_needed, name="keys-needed"),
    path("<str:provider>/verify", views.verify, name="verify"),
    path("<str:provider>/credentials", views.credentials, name="credentials"),
    path("<str:provider>/usage", views.usage_popout, name="usage"),
]
