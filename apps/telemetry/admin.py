from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.telemetry.models import AuditEvent, ComponentHeartbeat, IntegrationUsageEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "actor_label", "action", "target_type", "target_id", "trace_id", "ip")
    list_filter = ("action", "target_type")
    search_fields = ("actor_label", "action", "target_id", "trace_id", "reason")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in AuditEvent._meta.fields]

    # Append-only: visible to staff, changeable by no one.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ComponentHeartbeat)
class ComponentHeartbeatAdmin(admin.ModelAdmin):
    list_display = ("component", "instance", "last_seen_at", "started_at", "stopped_at")
    list_filter = ("component",)
    readonly_fields = [f.name for f in ComponentHeartbeat._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(IntegrationUsageEvent)
class IntegrationUsageEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "provider", "operation", "status", "latency_ms", "error_code", "bot_id", "trace_id")
    list_filter = ("provider", "status", "operation")
    search_fields = ("trace_id", "error_code")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in IntegrationUsageEvent._meta.fields]
    show_full_result_count = False  # a COUNT(*) over millions of rows on every page is not free

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
