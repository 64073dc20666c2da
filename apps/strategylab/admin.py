from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.strategylab.models import Candidate, Experiment


class _ReadOnly(admin.ModelAdmin):
    """Experiments change only through the services (validation, runs, the audit trail)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Experiment)
class ExperimentAdmin(_ReadOnly):
    list_display = ("id", "name", "strategy_key", "status", "phase", "progress", "created_at")
    list_filter = ("status", "strategy_key")
    search_fields = ("name",)


@admin.register(Candidate)
class CandidateAdmin(_ReadOnly):
    list_display = ("id", "experiment", "rank", "instrument", "verdict", "bot", "graduated_at")
    list_filter = ("verdict",)
