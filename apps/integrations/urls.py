from __future__ import annotations

from django.urls import path

from apps.integrations import apis

app_name = "integrations"

urlpatterns = [
    path("registry", apis.RegistryApi.as_view(), name="registry"),
    path("status", apis.StatusApi.as_view(), name="status"),
    path("verify", apis.VerifyApi.as_view(), name="verify"),
    path("usage-events", apis.UsageEventListApi.as_view(), name="usage-events"),
    path("keys-needed", apis.KeysNeededApi.as_view(), name="keys-needed"),
    path("<str:provider>/credentials", apis.CredentialsApi.as_view(), name="credentials"),
]
