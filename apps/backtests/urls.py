from __future__ import annotations

from django.urls import path

from apps.backtests import apis
from apps.core.routing import by_method

app_name = "backtests"

# Module-level so the project URLconf can also serve it at /api/backtests (no trailing slash).
backtest_collection = by_method(get=apis.BacktestListApi, post=apis.BacktestCreateApi)

urlpatterns = [
    path("", backtest_collection, name="list"),
    path("<int:backtest_id>", apis.BacktestDetailApi.as_view(), name="detail"),
    path("<int:backtest_id>/trades", apis.BacktestTradeListApi.as_view(), name="trades"),
    path("<int:backtest_id>/cancel", apis.BacktestCancelApi.as_view(), name="cancel"),
    path("matrix", by_method(post=apis.MatrixCreateApi), name="matrix-create"),
    path("matrix/<int:matrix_id>", apis.MatrixDetailApi.as_view(), name="matrix-detail"),
    path("matrix/<int:matrix_id>/cancel", apis.MatrixCancelApi.as_view(), name="matrix-cancel"),
]
