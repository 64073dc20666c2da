from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.core.audit import audit_record
from apps.trading.models import (
    AccountRisk,
    Fill,
    Order,
    Position,
    ReconcileReport,
    RestrictedInstrument,
    TradingState,
)


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
    """The account caps set here: contracts (until set on a broker account, its orders are refused)
    and, optionally, gross notional in USD (RISK_ACCOUNT_NOTIONAL)."""

    list_display = ("venue", "account", "max_contracts", "max_notional", "updated_at")
    fields = ("venue", "account", "max_contracts", "max_notional")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        return ("venue", "account") if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: AccountRisk, form: Any, change: bool) -> None:
        before = (
            AccountRisk.objects.filter(pk=obj.pk).values("max_contracts", "max_notional").first() if change else None
        )
        if before is not None and before["max_notional"] is not None:
            before["max_notional"] = str(before["max_notional"])
        super().save_model(request, obj, form, change)
        audit_record(
            action="trading.account_cap_set",
            actor=request.user,
            target=obj,
            before=before,
            after={
                "venue": obj.venue,
                "account": obj.account,
                "max_contracts": obj.max_contracts,
                "max_notional": None if obj.max_notional is None else str(obj.max_notional),
            },
        )


@admin.register(RestrictedInstrument)
class RestrictedInstrumentAdmin(admin.ModelAdmin):
    """The restricted list (RISK_RESTRICTED): add a row to stop bots opening or adding to an
    instrument everywhere, on a venue, or on one account; delete it to lift the restriction. Both
    are audited. A row is not edited in place: delete and add, so the trail says what changed."""

    list_display = ("instrument", "venue", "account", "reason", "created_by", "created_at")
    list_filter = ("instrument", "venue")
    fields = ("instrument", "venue", "account", "reason")

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return obj is None and super().has_change_permission(request, obj)

    def _row(self, obj: RestrictedInstrument) -> dict[str, Any]:
        return {"instrument": obj.instrument, "venue": obj.venue, "account": obj.account, "reason": obj.reason}

    def save_model(self, request: HttpRequest, obj: RestrictedInstrument, form: Any, change: bool) -> None:
        obj.instrument = obj.instrument.strip().upper()
        obj.created_by = request.user.get_username()
        super().save_model(request, obj, form, change)
        audit_record(action="trading.instrument_restricted", actor=request.user, target=obj, after=self._row(obj))

    def delete_model(self, request: HttpRequest, obj: RestrictedInstrument) -> None:
        audit_record(action="trading.instrument_unrestricted", actor=request.user, target=obj, before=self._row(obj))
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        for obj in queryset:
            self.delete_model(request, obj)
