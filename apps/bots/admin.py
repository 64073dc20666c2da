from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.bots.models import Bot, BotConfigVersion


class BotConfigVersionInline(admin.TabularInline):
    """The config history, as recorded by the services: read-only, never edited or deleted."""

    model = BotConfigVersion
    fields = ("version", "parameters", "risk_limits", "changed_by", "reason", "created_at")
    readonly_fields = fields
    ordering = ("-version",)
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    """Bots are created and edited through the API and services, which validate, version the config
    and audit. The admin shows them; lifecycle fields (stage, tier, kill latch, config version)
    are read-only here: they change only through promote/demote and kill/unkill."""

    list_display = (
        "name",
        "strategy_key",
        "instrument",
        "timeframe",
        "venue",
        "stage",
        "autonomy_tier",
        "killed",
        "config_version",
        "updated_at",
    )
    list_filter = ("stage", "autonomy_tier", "venue", "killed", "strategy_key", "instrument")
    search_fields = ("name", "strategy_key", "instrument", "broker_account")
    ordering = ("name",)
    readonly_fields = (
        "stage",
        "autonomy_tier",
        "config_version",
        "killed",
        "killed_at",
        "kill_reason",
        "killed_by",
        "created_at",
        "updated_at",
    )
    inlines = [BotConfigVersionInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A bot made here would skip validation, config version 1 and the audit record.
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Same reason: a parameters edit here would not bump config_version. Use PATCH /api/bots/{id}.
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Retire instead: a bot's history (config versions, audit, runner) must stay resolvable.
        return False
