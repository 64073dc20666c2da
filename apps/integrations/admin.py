from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.integrations.models import StoredCredential


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
