from __future__ import annotations

import json

from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from config.urls import urlpatterns as project_urlpatterns


def plain(request: HttpRequest) -> JsonResponse:
    """The in-run reference: a plain Django JsonResponse view, no auth, no query."""
    return JsonResponse({"status": "ok"})


@csrf_exempt
def plain_post(request: HttpRequest) -> JsonResponse:
    """The same for a POST with a JSON body (the runner action benchmark's peer): parses the body,
    answers it back; no auth, no query. csrf_exempt as DRF's token-authenticated views are."""
    return JsonResponse({"status": "ok", "received": json.loads(request.body or b"{}")})


urlpatterns = [path("bench/plain", plain), path("bench/plain-post", plain_post), *project_urlpatterns]
