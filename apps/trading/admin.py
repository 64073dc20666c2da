from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.core.audit import audit_record
from apps.trading.models import AccountRisk, Fill, Order, Position, ReconcileReport, TradingState


class _ReadOnly(admin.ModelAdmin):
    """The ledger moves only through execution, reconcile and the kill switch: read-only here."""

    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(_ReadOnly):
    list_display = ("client_order_id", "bot_id", "mode", "venue", "instrument", "side", "quantity", "status",
                    "reason_code", "filled_quantity", "avg_fill_price", "placed_at", "trace_id")  # fmt: skip
    list_filter = ("status", "mode", "venue", "instrument")
    search_fields = ("=client_order_id", "=venue_order_id", "=bot_id", "trace_id")
    date_hierarchy = "created_at"


@admin.register(Fill)
class FillAdmin(_ReadOnly):
    list_display = ("order", "bot_id", "instrument", "side", "quantity", "price", "fee", "slippage", "filled_at")
    search_fields = ("=bot_id", "=venue_fill_id")


@admin.register(Position)
class PositionAdmin(_ReadOnly):
    list_display = ("bot_id", "venue", "account", "instrument", "quantity", "avg_price", "realized_pnl", "fees")
    list_filter = ("venue", "instrument")


@admin.register(TradingState)
class TradingStateAdmin(_ReadOnly):
    """Changed through POST /api/bots/{id}/trading-state (operator + reason, audited)."""

    list_display = ("bot_id", "state", "reason_code", "reason", "changed_by", "changed_at")
    list_filter = ("state",)


@admin.register(ReconcileReport)
class ReconcileReportAdmin(_ReadOnly):
    list_display = ("id", "bot_id", "venue", "account", "trigger", "status", "actor_label", "created_at", "trace_id")
    list_filter = ("status", "trigger", "venue")


@admin.register(AccountRisk)
class AccountRiskAdmin(admin.ModelAdmin):
    """The one thing set here: a broker account's aggregate cap (until set, its orders are refused)."""

    list_display = ("venue", "account", "max_contracts", "updated_at")
    fields = ("venue", "account", "max_contracts")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("venue", "account") if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: AccountRisk, form: Any, change: bool) -> None:
        before = AccountRisk.objects.filter(pk=obj.pk).values("max_contracts").first() if change else None
        super().save_model(request, obj, form, change)
        audit_record(
            action="trading.account_cap_set",
            actor=request.user,
            target=obj,
            before=before,
            after={"venue": obj.venue, "account": obj.account, "max_contracts": obj.max_contracts},
        )
