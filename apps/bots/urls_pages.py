from __future__ import annotations

from django.urls import path

from apps.bots import views

app_name = "bot-pages"

urlpatterns = [
    path("", views.bot_list, name="list"),
    path("starter-pack", views.starter_pack, name="starter-pack"),
    path("new", views.bot_create, name="create"),
    path("<int:bot_id>/edit", views.bot_edit, name="edit"),
]
