from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.bots import apis as bot_apis
from apps.bots import services as bot_services
from apps.bots.models import Bot
from apps.core.context import ensure_trace_id
from apps.core.permissions import IsOperator
from apps.runners.models import Runner
from apps.runners.services import runners as runner_services
from apps.runners.services import tick as tick_services


class RunnerOutputSerializer(serializers.ModelSerializer):
    bot_id = serializers.IntegerField(read_only=True)
    bot_name = serializers.CharField(source="bot.name", read_only=True)
    killed = serializers.BooleanField(source="bot.killed", read_only=True)

    class Meta:
        model = Runner
        fields = [
            "id",
            "bot_id",
            "bot_name",
            "status",
            "mode",
            "generation",
            "heartbeat_at",
            "last_tick_at",
            "last_error",
            "started_at",
            "stopped_at",
            "updated_at",
            "killed",
        ]


class RunnerListApi(APIView):
    @extend_schema(responses=RunnerOutputSerializer(many=True))
    def get(self, request: Request) -> Response:
        qs = Runner.objects.select_related("bot").order_by("bot__name", "id")
        status = request.query_params.get("status")
        if status:
            qs = qs.filter(status=status)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(RunnerOutputSerializer(page, many=True).data)


class RunnerDetailApi(APIView):
    @extend_schema(responses=RunnerOutputSerializer)
    def get(self, request: Request, runner_id: int) -> Response:
        runner = get_object_or_404(Runner.objects.select_related("bot"), pk=runner_id)
        return Response(RunnerOutputSerializer(runner).data)


class _BotActionApi(APIView):
    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "RunnerActionInput"

        bot_id = serializers.IntegerField(min_value=1)

    def _bot(self, request: Request) -> Bot:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return get_object_or_404(Bot, pk=data.validated_data["bot_id"])

    def _answer(self, runner: Runner) -> Response:
        return Response({**RunnerOutputSerializer(runner).data, "trace_id": ensure_trace_id()})


class RunnerStartApi(_BotActionApi):
    @extend_schema(request=_BotActionApi.InputSerializer, responses=RunnerOutputSerializer)
    def post(self, request: Request) -> Response:
        return self._answer(runner_services.runner_start(bot=self._bot(request), actor=request.user))


class RunnerStopApi(_BotActionApi):
    @extend_schema(request=_BotActionApi.InputSerializer, responses=RunnerOutputSerializer)
    def post(self, request: Request) -> Response:
        return self._answer(runner_services.runner_stop(bot=self._bot(request), actor=request.user))


class RunnerRestartApi(_BotActionApi):
    @extend_schema(request=_BotActionApi.InputSerializer, responses=RunnerOutputSerializer)
    def post(self, request: Request) -> Response:
        return self._answer(runner_services.runner_restart(bot=self._bot(request), actor=request.user))


class BotKillApi(APIView):
    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        class Meta:
            ref_name = "BotKillInput"

        reason = serializers.CharField(max_length=1000)
        flatten = serializers.BooleanField(default=False)

    @extend_schema(request=InputSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, bot_id: int) -> Response:
        bot = get_object_or_404(Bot, pk=bot_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        report = runner_services.bot_kill(bot=bot, actor=request.user, **data.validated_data)
        return Response({**report.as_dict(), "killed": True, "trace_id": ensure_trace_id()})


class ReasonInputSerializer(serializers.Serializer):
    """Unkill and kill-all: a lifecycle switch only moves with a reason."""

    class Meta:
        ref_name = "ReasonInput"

    reason = serializers.CharField(max_length=1000)


class BotUnkillApi(APIView):
    permission_classes = [IsOperator]
    InputSerializer = ReasonInputSerializer

    @extend_schema(request=ReasonInputSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, bot_id: int) -> Response:
        bot = get_object_or_404(Bot, pk=bot_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        bot_services.bot_unkill(bot=bot, actor=request.user, reason=data.validated_data["reason"])
        bot.refresh_from_db()
        return Response({"bot_id": bot.pk, "killed": bot.killed, "trace_id": ensure_trace_id()})


class SystemKillAllApi(APIView):
    """POST /api/system/kill-all {"reason"} (operator): the global latch, then every bot killed,
    open orders cancelled, runners stopped. The latch stays until released (below)."""

    permission_classes = [IsOperator]
    InputSerializer = ReasonInputSerializer

    @extend_schema(request=ReasonInputSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        done = runner_services.system_kill_all(actor=request.user, reason=data.validated_data["reason"])
        body: dict[str, Any] = {
            "kill_all": done.state.as_dict(),
            "newly_engaged": done.newly_engaged,
            "killed": [r.as_dict() for r in done.reports],
            "message": "Kill-all is engaged: no bot may start or send an order until a person releases it with "
            "a reason (POST /api/system/kill-all/release).",
            "trace_id": ensure_trace_id(),
        }
        return Response(body)


class SystemKillAllReleaseApi(APIView):
    """POST /api/system/kill-all/release {"reason"} (operator or admin; a reason is required).
    Ends the global latch only: a bot that kill-all killed stays killed until its own unkill."""

    permission_classes = [IsOperator]
    InputSerializer = ReasonInputSerializer

    @extend_schema(request=ReasonInputSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        state, still_killed = runner_services.system_kill_all_release(
            actor=request.user, reason=data.validated_data["reason"]
        )
        if still_killed:
            after = (
                f"{len(still_killed)} bot{'s are' if len(still_killed) != 1 else ' is'} still killed and will not "
                "start until each is unkilled with a reason (Unkill on its page, or POST /api/bots/<id>/unkill)."
            )
        else:
            after = "No bot is killed."
        body = {
            "kill_all": state.as_dict(),
            "still_killed_bot_ids": still_killed,
            "message": f"Kill-all is released: bots may start again once nothing else stops them. {after}",
            "trace_id": ensure_trace_id(),
        }
        return Response(body)


class BotDemoteApi(bot_apis.BotDemoteApi):
    """POST /api/bots/{id}/demote: always allowed; a runner the new stage cannot keep is stopped."""

    def demote(self, **kwargs: Any) -> bot_services.StageChange:
        return runner_services.bot_demote(**kwargs)


class RunnerTickApi(APIView):
    """POST /api/runners/{id}/tick {"as_of"?}: one tick now (operator); as_of replays a past bar
    (SIM only). Answers the decision trace."""

    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        as_of = serializers.DateTimeField(required=False, allow_null=True)

        class Meta:
            ref_name = "RunnerTickInput"

    @extend_schema(request=InputSerializer, responses=bot_apis.DecisionTraceOutputSerializer)
    def post(self, request: Request, runner_id: int) -> Response:
        runner = get_object_or_404(Runner.objects.select_related("bot"), pk=runner_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        trace = tick_services.runner_tick_force(runner=runner, as_of=data.validated_data.get("as_of"))
        return Response(
            {**bot_apis.DecisionTraceOutputSerializer(trace).data, "trace_id": trace.trace_id or ensure_trace_id()}
        )


class BotReconcileApi(APIView):
    """POST /api/bots/{id}/reconcile: internal orders and position against the venue; answers the
    report (matched, fixed, unsettled) it keeps. A mismatch it cannot settle halts the bot."""

    permission_classes = [IsOperator]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, bot_id: int) -> Response:
        bot = get_object_or_404(Bot, pk=bot_id)
        report = runner_services.bot_reconcile(bot=bot, actor=request.user)
        body = {
            "id": report.pk,
            "bot_id": report.bot_id,
            "venue": report.venue,
            "status": report.status,
            "trigger": report.trigger,
            **report.report,
            "created_at": report.created_at,
        }
        return Response({**body, "trace_id": ensure_trace_id()})
