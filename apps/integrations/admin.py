from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.integrations.models import IntegrationCheck, StoredCredential


@admin.register(StoredCredential)
class StoredCredentialAdmin(admin.ModelAdmin):
    """Presence only. Values are entered on the Connections page or via the API, never shown."""

    list_display = ("name", "provider", "updated_at", "updated_by")
    list_filter = ("provider",)
    fields = ("name", "provider", "updated_at", "updated_by")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(IntegrationCheck)
class IntegrationCheckAdmin(admin.ModelAdmin):
    """Each provider's newest verify or probe outcome, written by TradeOps only."""

    list_display = ("provider", "operation", "ok", "checked_at", "latency_ms", "error_code")
    list_filter = ("operation", "ok")
    readonly_fields = ("provider", "operation", "ok", "checked_at", "latency_ms", "error_code", "message", "trace_id")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
