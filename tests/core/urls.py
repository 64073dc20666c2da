from __future__ import annotations

from django.urls import path

from config.urls import urlpatterns as project_urlpatterns
from tests.core import views_for_tests as v

urlpatterns = [
    path("api/test/echo", v.EchoApi.as_view()),
    path("api/test/conflict", v.ConflictApi.as_view()),
    path("api/test/crash", v.CrashApi.as_view()),
    path("api/test/crash-plain", v.crash_plain_view),
    path("api/test/enqueue", v.EnqueueApi.as_view()),
    *project_urlpatterns,
]
