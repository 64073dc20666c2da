from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from apps.backtests import services
from apps.backtests.models import Backtest, BacktestMatrix, BacktestTrade
from apps.core.exceptions import ApplicationError


class _ReadOnly(admin.ModelAdmin):
    """Backtests are created and closed through the services (validation, the job, the audit
    trail); the admin shows them and offers cancel as an action, never a status field."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # A backtest is the evidence a promotion gate named: it stays.
        return False


class BacktestTradeInline(admin.TabularInline):
    model = BacktestTrade
    fields = (
        "seq",
        "side",
        "quantity",
        "entry_ts",
        "entry_price",
        "exit_ts",
        "exit_price",
        "exit_reason",
        "pnl",
        "fees",
    )
    readonly_fields = fields
    ordering = ("seq",)
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[BacktestTrade]:
        return super().get_queryset(request)[:200]  # the first trades; the API pages through all


@admin.register(Backtest)
class BacktestAdmin(_ReadOnly):
    list_display = (
        "id",
        "strategy_key",
        "instrument",
        "timeframe",
        "start",
        "end",
        "bot",
        "config_version",
        "status",
        "progress",
        "created_at",
    )
    list_filter = ("status", "strategy_key", "instrument", "timeframe")
    search_fields = ("=id", "=bot__id", "bot__name")
    readonly_fields = [f.name for f in Backtest._meta.fields]
    list_select_related = ("bot",)
    date_hierarchy = "created_at"
    actions = ["cancel_backtests"]

    @admin.action(description="Cancel the selected backtests (QUEUED or RUNNING)")
    def cancel_backtests(self, request: HttpRequest, queryset: QuerySet[Backtest]) -> None:
        done = 0
        for backtest in queryset:
            try:
                services.backtest_cancel(backtest=backtest, actor=request.user, reason="cancelled in the admin")
                done += 1
            except ApplicationError as error:
                self.message_user(request, f"Backtest {backtest.pk}: {error.message}", level=messages.WARNING)
        if done:
            self.message_user(request, f"Cancelled {done} backtest(s).", level=messages.SUCCESS)


@admin.register(BacktestMatrix)
class BacktestMatrixAdmin(_ReadOnly):
    list_display = ("id", "objective", "status", "progress", "runs", "created_at", "finished_at")
    list_filter = ("status",)
    readonly_fields = [f.name for f in BacktestMatrix._meta.fields]
