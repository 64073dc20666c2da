from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from apps.core import health
from apps.core.http import HtmxHttpRequest
from apps.telemetry import selectors


@require_GET
@login_required
@vary_on_headers("HX-Request")
def overview(request: HtmxHttpRequest) -> HttpResponse:
    database = health.check_database()
    scheduler = selectors.scheduler_state() if database["ok"] else None
    context = {
        "database": database,
        "redis": health.check_redis(),
        "scheduler": scheduler,
        "nav": "overview",
    }
    template = "telemetry/overview.html"
    if request.htmx:
        template += "#platform-status"
    return render(request, template, context)
