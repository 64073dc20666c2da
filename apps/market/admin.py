from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.market.models import Bar, BarConflict, BarCoverage, BarFetch


class _ReadOnly(admin.ModelAdmin):
    """The bar store is written by the data service and import_bars only; the admin shows it."""

    show_full_result_count = False  # no COUNT(*) over millions of bars on every page

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Bar)
class BarAdmin(_ReadOnly):
    list_display = ("instrument", "timeframe", "ts", "open", "high", "low", "close", "volume", "source", "derived")
    list_filter = ("instrument", "timeframe", "source", "derived")
    date_hierarchy = "ts"
    readonly_fields = [f.name for f in Bar._meta.fields]


@admin.register(BarFetch)
class BarFetchAdmin(_ReadOnly):
    list_display = (
        "requested_at",
        "provider",
        "symbol",
        "timeframe",
        "start",
        "end",
        "status",
        "bars_returned",
        "bars_inserted",
        "conflicts",
        "error_code",
        "trace_id",
    )
    list_filter = ("provider", "status", "instrument", "timeframe")
    search_fields = ("trace_id", "error_code", "symbol")
    date_hierarchy = "requested_at"
    readonly_fields = [f.name for f in BarFetch._meta.fields]


@admin.register(BarConflict)
class BarConflictAdmin(_ReadOnly):
    list_display = ("seen_at", "instrument", "timeframe", "ts", "stored_source", "offered_source", "trace_id")
    list_filter = ("instrument", "timeframe", "offered_source")
    readonly_fields = [f.name for f in BarConflict._meta.fields]


@admin.register(BarCoverage)
class BarCoverageAdmin(_ReadOnly):
    list_display = ("instrument", "timeframe", "start", "end", "source", "updated_at")
    list_filter = ("instrument", "timeframe", "source")
    readonly_fields = [f.name for f in BarCoverage._meta.fields]
