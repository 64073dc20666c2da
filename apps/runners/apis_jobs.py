"""GET /api/jobs, GET /api/jobs/{id}, POST /api/jobs/{id}/cancel, POST /api/jobs/{id}/retry (SPEC §3)."""

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
from apps.runners.models import Job
from apps.runners.selectors import jobs as job_selectors
from apps.runners.services import jobs as job_services


class JobOutputSerializer(serializers.ModelSerializer):
    runner_id = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "type",
            "status",
            "attempts",
            "max_attempts",
            "available_at",
            "lease_expires_at",
            "leased_by",
            "idempotency_key",
            "runner_id",
            "payload",
            "result",
            "error",
            "trace_id",
            "created_at",
            "updated_at",
            "started_at",
            "finished_at",
        ]


def _job_or_404(job_id: int) -> Job:
    job = job_selectors.job_get(job_id=job_id)
    if job is None:
        raise Http404
    return job


class JobListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Job.Status.choices, required=False)
        type = serializers.CharField(max_length=40, required=False)

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=Job.Status.values),
            OpenApiParameter("type", str),
            OpenApiParameter("limit", int),
            OpenApiParameter("offset", int),
        ],
        responses=JobOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(job_selectors.job_list(**filters.validated_data), request, view=self)
        return paginator.get_paginated_response(JobOutputSerializer(page, many=True).data)


class JobDetailApi(APIView):
    @extend_schema(responses=JobOutputSerializer)
    def get(self, request: Request, job_id: int) -> Response:
        return Response(JobOutputSerializer(_job_or_404(job_id)).data)


class JobCancelApi(APIView):
    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=1000, allow_blank=True, default="")

        class Meta:
            ref_name = "JobCancelInput"

    @extend_schema(request=InputSerializer, responses=JobOutputSerializer)
    def post(self, request: Request, job_id: int) -> Response:
        job = _job_or_404(job_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = job_services.job_cancel(job=job, actor=request.user, **data.validated_data)
        return Response({**JobOutputSerializer(job).data, "trace_id": ensure_trace_id()})


class JobRetryApi(APIView):
    permission_classes = [IsOperator]

    @extend_schema(request=None, responses=JobOutputSerializer)
    def post(self, request: Request, job_id: int) -> Response:
        job = job_services.job_retry(job=_job_or_404(job_id), actor=request.user)
        return Response({**JobOutputSerializer(job).data, "trace_id": ensure_trace_id()})
