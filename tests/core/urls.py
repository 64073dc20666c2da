from __future__ import annotations

from django.urls import path

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401  (Django reads them here)
from config.urls import urlpatterns as project_urlpatterns
from tests.core import views_for_tests as v

urlpatterns = [
    path("api/test/echo", v.EchoApi.as_view()),
    path("api/test/conflict", v.ConflictApi.as_view()),
    path("api/test/crash", v.CrashApi.as_view()),
    path("api/test/crash-plain", v.crash_plain_view),
    path("api/test/enqueue", v.EnqueueApi.as_view()),
    path("test/page-crash", v.page_crash),
    path("test/page-conflict", v.page_conflict),
    path("test/controls", v.page_controls),
    *project_urlpatterns,
]
