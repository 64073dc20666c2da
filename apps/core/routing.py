"""URL helpers shared by the apps' urls.py modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.views import APIView


def by_method(**operations: type[APIView]) -> Callable[..., HttpResponse]:
    """One path served by one APIView per operation (R6), e.g. GET lists for a viewer and POST
    creates for an operator, each with its own serializers and permission. Other methods go to a
    view combining them, which answers 405 with the right Allow header (and OPTIONS); it is also
    what the OpenAPI generator reads (`.cls`)."""
    combined = type("".join(op.__name__ for op in operations.values()), tuple(operations.values()), {})
    fallback = combined.as_view()
    views = {method.upper(): op.as_view() for method, op in operations.items()}
    if "GET" in views:
        views.setdefault("HEAD", views["GET"])

    @csrf_exempt  # each APIView enforces CSRF itself for session-authenticated requests
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return views.get(request.method or "", fallback)(request, *args, **kwargs)

    view.cls = combined  # type: ignore[attr-defined]
    view.initkwargs = {}  # type: ignore[attr-defined]
    return view
