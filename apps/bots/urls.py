from __future__ import annotations

from django.urls import path

from apps.bots import apis
from apps.core.routing import by_method

app_name = "bots"

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
