"""Views that exist only in tests, to exercise the platform's error handling and task plumbing."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.http import HttpRequest, HttpResponse
from django.template import RequestContext, Template
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.audit import audit_record
from apps.core.exceptions import StateConflict
from apps.core.permissions import IsOperator


class _Input(serializers.Serializer):
    name = serializers.CharField(max_length=10)
    quantity = serializers.IntegerField(min_value=1)


class EchoApi(APIView):
    """GET for any viewer; POST validates and needs an operator."""

    def get_permissions(self) -> list[Any]:
        return [IsOperator()] if self.request.method == "POST" else super().get_permissions()

    def get(self, request: Request) -> Response:
        return Response({"user": request.user.get_username()})

    def post(self, request: Request) -> Response:
        data = _Input(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(data.validated_data)


class ConflictApi(APIView):
    def post(self, request: Request) -> Response:
        raise StateConflict(
            "Bot is killed.",
            error_code="BOT_KILLED",
            suggested_fix="Unkill it first.",
            extra={"missing_env_vars": ["X_KEY"]},
        )


class CrashApi(APIView):
    def get(self, request: Request) -> Response:
        raise RuntimeError("secret-internal-detail SELECT * FROM auth_user")


def crash_plain_view(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("plain view secret-internal-detail")


@shared_task
def audit_from_task(action: str) -> None:
    audit_record(action=action, actor_label="system:test-task")


class EnqueueApi(APIView):
    def post(self, request: Request) -> Response:
        audit_from_task.delay_on_commit("test.enqueued")
        return Response({"enqueued": True}, status=202)


# --- Observatory pages (outside /api/): the global failure mechanism ---------------------------------


def page_crash(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("page secret-internal-detail")


def page_conflict(request: HttpRequest) -> HttpResponse:
    raise StateConflict(
        "The bot is killed.",
        error_code="BOT_KILLED",
        suggested_fix="Unkill it on its page first.",
        extra={"missing_env_vars": ["X_KEY"]},
    )


_CONTROLS = Template(
    """{% extends "_base.html" %}{% block content %}
<h1>Test controls</h1>
<section id="conflict-target"><p>conflict target</p>
  <button id="conflict" hx-post="/test/page-conflict" hx-target="#conflict-target" hx-swap="outerHTML">Conflict</button>
</section>
<section id="crash-target"><p>crash target</p>
  <button id="crash" hx-post="/test/page-crash" hx-target="#crash-target" hx-swap="outerHTML">Crash</button>
</section>
<section id="whole-page-target"><p>whole page target</p>
  <button id="whole-page" hx-get="/test/controls" hx-target="#whole-page-target" hx-swap="outerHTML">Page</button>
</section>
{% endblock %}"""
)


def page_controls(request: HttpRequest) -> HttpResponse:
    """A page with htmx controls aimed at the failing views above (no sign-in needed)."""
    return HttpResponse(_CONTROLS.render(RequestContext(request, {})))
