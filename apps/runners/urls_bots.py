from __future__ import annotations

from django.urls import path

from apps.runners import apis

app_name = "bot-switches"

urlpatterns = [
    path("<int:bot_id>/kill", apis.BotKillApi.as_view(), name="kill"),
    path("<int:bot_id>/demote", apis.BotDemoteApi.as_view(), name="demote"),
    path("<int:bot_id>/reconcile", apis.BotReconcileApi.as_view(), name="reconcile"),
    path("<int:bot_id>/unkill", apis.BotUnkillApi.as_view(), name="unkill"),
]
