from __future__ import annotations

from django.urls import path

from apps.backtests import views

app_name = "backtest-pages"

urlpatterns = [
    path("", views.backtest_list, name="list"),
    path("new", views.backtest_create, name="create"),
    path("<int:backtest_id>/", views.backtest_detail, name="detail"),
    path("<int:backtest_id>/cancel", views.backtest_cancel, name="cancel"),
    path("<int:backtest_id>/prices.json", views.backtest_prices, name="prices"),
    path("matrix/new", views.matrix_create, name="matrix-create"),
    path("matrix/<int:matrix_id>/", views.matrix_detail, name="matrix"),
    path("matrix/<int:matrix_id>/cancel", views.matrix_cancel, name="matrix-cancel"),
]
