from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.views import APIView

from apps.bots import apis

app_name = "bots"


def by_method(**operations: type[APIView]) -> Callable[..., HttpResponse]:
    """One path served by one APIView per operation (R6), e.g. GET lists for a viewer and POST
    creates for an operator, each with its own serializers and permission. Other methods go to a
    view combining them, which answers 405 with the right Allow header (and OPTIONS); it is also
    what the OpenAPI generator reads (`.cls`)."""
    combined = type("".join(op.__name__ for op in operations.values()), tuple(operations.values()), {})
    fallback = combined.as_view()
    views = {method.upper(): op.as_view() for method, op in operations.items()}
    if "GET" in views:
        views.setdefault("HEAD", views["GET"])

    @csrf_exempt  # each APIView enforces CSRF itself for session-authenticated requests
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return views.get(request.method or "", fallback)(request, *args, **kwargs)

    view.cls = combined  # type: ignore[attr-defined]
    view.initkwargs = {}  # type: ignore[attr-defined]
    return view


# Module-level so the project URLconf can also serve it at /api/bots (no trailing slash).
bot_collection = by_method(get=apis.BotListApi, post=apis.BotCreateApi)

urlpatterns = [
    path("", bot_collection, name="list"),
    path("starter-pack", apis.BotStarterPackApi.as_view(), name="starter-pack"),
    path("<int:bot_id>", by_method(get=apis.BotDetailApi, patch=apis.BotUpdateApi), name="detail"),
    path("<int:bot_id>/promote", apis.BotPromoteApi.as_view(), name="promote"),
    path("<int:bot_id>/trading-state", apis.BotTradingStateApi.as_view(), name="trading-state"),
    path("<int:bot_id>/performance", apis.BotPerformanceApi.as_view(), name="performance"),
    path("<int:bot_id>/decision-traces", apis.BotDecisionTraceListApi.as_view(), name="decision-traces"),
]
