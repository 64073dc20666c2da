from __future__ import annotations

from django.utils import timezone
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core import health
from apps.core.context import ensure_trace_id


class HealthApi(APIView):
    """Liveness and TradeOps' own dependencies. No auth: load balancers and operators call it."""

    authentication_classes: list[type] = []
    permission_classes = [AllowAny]

    @extend_schema(
        responses={
            200: inline_serializer(
                "Health",
                {
                    "status": serializers.ChoiceField(choices=["ok", "unavailable"]),
                    "database": serializers.DictField(),
                    "redis": serializers.DictField(),
                    "checked_at": serializers.DateTimeField(),
                    "trace_id": serializers.CharField(),
                },
            )
        }
    )
    def get(self, request: Request) -> Response:
        database, redis = health.check_database(), health.check_redis()
        ok = database["ok"] and redis["ok"]
        body = {
            "status": "ok" if ok else "unavailable",
            "database": database,
            "redis": redis,
            "checked_at": timezone.now().isoformat(),
            "trace_id": ensure_trace_id(),
        }
        return Response(body, status=200 if ok else 503)
