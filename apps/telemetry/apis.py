"""GET /api/alerts, GET /api/alerts/{id}, POST /api/alerts/{id}/ack (SPEC §3, §11)."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.context import ensure_trace_id
from apps.core.permissions import IsOperator
from apps.telemetry import selectors, services
from apps.telemetry.models import Alert


class AlertOutputSerializer(serializers.ModelSerializer):
    acked_by = serializers.SerializerMethodField()

    class Meta:
        model = Alert
        fields = [
            "id",
            "severity",
            "code",
            "bot_id",
            "message",
            "suggested_fix",
            "trace_id",
            "created_at",
            "last_seen_at",
            "repeat_count",
            "status",
            "acked_by",
            "acked_at",
            "note",
            "sms_status",
            "sms_error",
            "sms_attempts",
            "sms_sent_at",
        ]

    def get_acked_by(self, alert: Alert) -> str | None:
        return alert.acked_by.get_username() if alert.acked_by else None


def _alert_or_404(alert_id: int) -> Alert:
    alert = selectors.alert_get(alert_id=alert_id)
    if alert is None:
        raise Http404
    return alert


class AlertListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Alert.Status.choices, required=False)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Alert.Status.values),
            OpenApiParameter("limit", int),
            OpenApiParameter("offset", int),
        ],
        responses=AlertOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(selectors.alert_list(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(AlertOutputSerializer(page, many=True).data)


class AlertDetailApi(APIView):
    @extend_schema(responses=AlertOutputSerializer)
    def get(self, request: Request, alert_id: int) -> Response:
        return Response(AlertOutputSerializer(_alert_or_404(alert_id)).data)


class AlertAckApi(APIView):
    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        note = serializers.CharField(max_length=2000, allow_blank=False, trim_whitespace=True)

        class Meta:
            ref_name = "AlertAckInput"

    @extend_schema(request=InputSerializer, responses=AlertOutputSerializer)
    def post(self, request: Request, alert_id: int) -> Response:
        alert = _alert_or_404(alert_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        alert = services.alert_ack(alert=alert, actor=request.user, **data.validated_data)
        return Response({**AlertOutputSerializer(alert).data, "trace_id": ensure_trace_id()})
