from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import path

from config.urls import urlpatterns as project_urlpatterns


def plain(request: HttpRequest) -> JsonResponse:
    """The in-run reference: a plain Django JsonResponse view, no auth, no query."""
    return JsonResponse({"status": "ok"})


urlpatterns = [path("bench/plain", plain), *project_urlpatterns]
