from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.backtests import urls as backtest_urls
from apps.bots import urls as bot_urls
from apps.core import views as core_views
from apps.core.views import legacy_function_retired
from apps.integrations.apis import SystemStatusApi
from apps.runners import apis as runner_apis
from apps.runners import apis_jobs as job_apis
from apps.runners import metrics as runner_metrics
from apps.runners import views as runner_views
from apps.runners.apis import SystemKillAllApi, SystemKillAllReleaseApi
from apps.telemetry import urls as alert_urls

admin.site.site_header = "TradeOps administration"
admin.site.site_title = "TradeOps"

api_patterns = [
    path("", include("apps.core.urls")),
    path("integrations/", include("apps.integrations.urls")),
    # Collections answer without a trailing slash too (SPEC paths: /api/bots, /api/runners, /api/jobs).
    path("bots", bot_urls.bot_collection),
    path("runners", runner_apis.RunnerListApi.as_view()),
    path("jobs", job_apis.JobListApi.as_view()),
    path("backtests", backtest_urls.backtest_collection),
    path("alerts", alert_urls.alert_collection),
    path("alerts/", include("apps.telemetry.urls")),
    path("bots/", include("apps.runners.urls_bots")),  # kill/unkill/demote: they stop runners (a higher app)
    path("bots/", include("apps.bots.urls")),
    path("runners/", include("apps.runners.urls")),
    path("jobs/", include("apps.runners.urls_jobs")),
    path("backtests/", include("apps.backtests.urls")),
    path("strategy-lab/", include("apps.strategylab.urls")),
    path("system/status", SystemStatusApi.as_view(), name="system-status"),
    path("system/kill-all", SystemKillAllApi.as_view(), name="system-kill-all"),
    path("system/kill-all/release", SystemKillAllReleaseApi.as_view(), name="system-kill-all-release"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]

urlpatterns = [
    path("api/", include(api_patterns)),
    # Legacy Supabase endpoints: retired, answer 410, never act (SPEC §3 "Legacy").
    re_path(r"^functions/v1/(?P<name>[^/]+)/?.*$", legacy_function_retired, name="legacy-function"),
    re_path(r"^rest/v1/rpc/(?P<name>[^/]+)/?.*$", legacy_function_retired, name="legacy-rpc"),
    path("login/", core_views.SignInView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(settings.ADMIN_URL, admin.site.urls),
    path("connections/", include("apps.integrations.urls_pages")),
    path("bots/", include("apps.bots.urls_pages")),
    path("bots/", include("apps.runners.urls_pages_bots")),  # the bot page: its actions stop runners
    path("runners/", include("apps.runners.urls_pages")),
    path("jobs/", include("apps.runners.urls_pages_jobs")),
    path("backtests/", include("apps.backtests.urls_pages")),
    path("lab/", include("apps.strategylab.urls_pages")),
    path("alerts/", include("apps.telemetry.urls_pages")),
    # Prometheus scrapes it with a bearer token (METRICS_TOKEN); apps/runners/metrics.py.
    path("metrics", runner_metrics.metrics_view, name="metrics"),
    path("favicon.ico", core_views.favicon, name="favicon"),
    path("", runner_views.overview, name="overview"),  # the desk reads runners: the top layer composes it
]

# TradeOps pages for errors (htmx: a fragment; /api/: the JSON envelope). Django uses them with DEBUG
# off; apps.core.middleware.ObservatoryErrorMiddleware covers htmx requests with DEBUG on too.
handler400 = "apps.core.views.bad_request"
handler403 = "apps.core.views.permission_denied"
handler404 = "apps.core.views.page_not_found"
handler500 = "apps.core.views.server_error"
