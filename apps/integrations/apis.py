from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core import snapshots
from apps.core.context import ensure_trace_id
from apps.core.permissions import IsAdmin, IsOperator
from apps.integrations import registry, selectors, services


class RegistryApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response({"providers": selectors.registry_list()})


def _snapshot_response(name: str, compute: Any) -> HttpResponse:
    body = snapshots.get_or_compute(name, compute)
    return HttpResponse(snapshots.with_trace_id(body, ensure_trace_id()), content_type="application/json")


class StatusApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> HttpResponse:
        return _snapshot_response(
            selectors.SNAPSHOT_INTEGRATIONS,
            lambda: {"integrations": selectors.integration_status_list(probe_infra=True)},
        )


class KeysNeededApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> Response:
        return Response({"categories": selectors.keys_needed(), "trace_id": ensure_trace_id()})


class UsageEventListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        class Meta:
            ref_name = "UsageEventFilter"

        provider = serializers.ChoiceField(choices=sorted(registry.PROVIDERS), required=False)
        bot_id = serializers.IntegerField(required=False, min_value=1)
        limit = serializers.IntegerField(required=False, min_value=1, max_value=500, default=50)

    class OutputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "UsageEvent"

        id = serializers.IntegerField()
        provider = serializers.CharField()
        operation = serializers.CharField()
        status = serializers.CharField()
        latency_ms = serializers.FloatField(allow_null=True)
        bot_id = serializers.IntegerField(allow_null=True)
        trace_id = serializers.CharField()
        error_code = serializers.SerializerMethodField()
        http_status = serializers.IntegerField(allow_null=True)
        created_at = serializers.DateTimeField()

        def get_error_code(self, obj: Any) -> str | None:
            return obj.error_code or None

    @extend_schema(
        parameters=[OpenApiParameter("provider", str), OpenApiParameter("bot_id", int), OpenApiParameter("limit", int)],
        responses=OutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        events = selectors.usage_event_list(**filters.validated_data)
        return Response({"results": self.OutputSerializer(events, many=True).data})


class VerifyApi(APIView):
    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "VerifyInput"

        provider = serializers.ChoiceField(choices=sorted(registry.PROVIDERS), required=False)

    @extend_schema(request=InputSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        provider = data.validated_data.get("provider")
        results = services.integration_verify_all(providers=[provider] if provider else None)
        return Response({"results": [r.as_dict() for r in results], "trace_id": ensure_trace_id()})


class CredentialsApi(APIView):
    """Write-only: PUT stores values encrypted, DELETE removes them. Answers name variables, never values."""

    permission_classes = [IsAdmin]

    @extend_schema(request=OpenApiTypes.OBJECT, responses=OpenApiTypes.OBJECT)
    def put(self, request: Request, provider: str) -> Response:
        stored = services.credentials_replace(provider=provider, values=request.data, actor=request.user)
        return Response({"provider": provider, "stored": stored, "trace_id": ensure_trace_id()})

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def delete(self, request: Request, provider: str) -> Response:
        removed = services.credentials_delete(provider=provider, actor=request.user)
        return Response({"provider": provider, "removed": removed, "trace_id": ensure_trace_id()})


class SystemStatusApi(APIView):
    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request) -> HttpResponse:
        def compute() -> dict[str, Any]:
            status = selectors.system_status()
            status.pop("trace_id")
            return status

        return _snapshot_response(selectors.SNAPSHOT_SYSTEM, compute)
