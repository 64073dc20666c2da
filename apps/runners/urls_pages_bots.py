"""The bot page and its actions, under /bots/<id>/ beside the Bots list (apps.bots.urls_pages):
they live here because they start, stop and kill runners (a higher app than bots)."""

from __future__ import annotations

from django.urls import path

from apps.runners import views

app_name = "bot-page"

urlpatterns = [
    path("<int:bot_id>/", views.bot_detail, name="detail"),
    path("<int:bot_id>/start", views.bot_start, name="start"),
    path("<int:bot_id>/stop", views.bot_stop, name="stop"),
    path("<int:bot_id>/restart", views.bot_restart, name="restart"),
    path("<int:bot_id>/promote", views.bot_promote, name="promote"),
    path("<int:bot_id>/demote", views.bot_demote, name="demote"),
    path("<int:bot_id>/kill", views.bot_kill, name="kill"),
    path("<int:bot_id>/unkill", views.bot_unkill, name="unkill"),
    path("<int:bot_id>/reconcile", views.bot_reconcile, name="reconcile"),
    path("<int:bot_id>/trading-state", views.bot_trading_state, name="trading-state"),
]
