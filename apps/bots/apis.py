"""The bots API (SPEC §3 "Bots"). One APIView per operation: shape validation in the nested
InputSerializer, domain rules in the service, the answer from the OutputSerializer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.bots import selectors, services
from apps.bots.models import Bot
from apps.core.context import ensure_trace_id
from apps.core.permissions import IsOperator, IsViewer
from apps.market import selectors as market_selectors
from apps.telemetry import selectors as telemetry_selectors
from apps.trading import selectors as trading_selectors
from apps.trading import services as trading_services


class BotOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    strategy_key = serializers.CharField()
    parameters = serializers.DictField()
    instrument = serializers.CharField()
    timeframe = serializers.CharField()
    data_provider = serializers.CharField()
    venue = serializers.CharField()
    broker_account = serializers.CharField()
    stage = serializers.CharField()
    autonomy_tier = serializers.CharField()
    risk_limits = serializers.DictField()
    config_version = serializers.IntegerField()
    killed = serializers.BooleanField()
    killed_at = serializers.DateTimeField(allow_null=True)
    kill_reason = serializers.CharField()
    killed_by = serializers.CharField()
    runner_status = serializers.SerializerMethodField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Bot"

    def get_runner_status(self, bot: Bot) -> str | None:
        return selectors.bot_runner_status(bot)


class GateSerializer(serializers.Serializer):
    name = serializers.CharField()
    passed = serializers.BooleanField()
    detail = serializers.CharField()

    class Meta:
        ref_name = "PromotionGate"


class StageChangeOutputSerializer(serializers.Serializer):
    bot = BotOutputSerializer()
    from_stage = serializers.CharField()
    to_stage = serializers.CharField()
    gates = GateSerializer(many=True)
    override = serializers.BooleanField()

    class Meta:
        ref_name = "BotStageChange"


class _RejectsUnknownFields(serializers.Serializer):
    """Names every key the operation does not take (lifecycle fields with the way to change them),
    instead of DRF's default of dropping them silently."""

    creating = False

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        unknown = [name for name in self.initial_data if name not in self.fields]
        errors = services.bot_field_refusals(unknown, creating=self.creating)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class BotPagination(LimitOffsetPagination):
    max_limit = 200


class BotListApi(APIView):
    permission_classes = [IsViewer]

    class FilterSerializer(serializers.Serializer):
        stage = serializers.ChoiceField(choices=Bot.Stage.choices, required=False)
        autonomy_tier = serializers.ChoiceField(choices=Bot.Tier.choices, required=False)
        venue = serializers.ChoiceField(choices=Bot.Venue.choices, required=False)
        instrument = serializers.CharField(required=False)
        strategy_key = serializers.CharField(required=False)
        killed = serializers.BooleanField(required=False, allow_null=True, default=None)

        class Meta:
            ref_name = "BotListFilter"

    @extend_schema(
        parameters=[FilterSerializer, OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses=BotOutputSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        bots = selectors.bot_list(filters=filters.validated_data)
        paginator = BotPagination()
        page = paginator.paginate_queryset(bots, request, view=self)
        return paginator.get_paginated_response(BotOutputSerializer(page, many=True).data)


class BotCreateApi(APIView):
    permission_classes = [IsOperator]

    class InputSerializer(_RejectsUnknownFields):
        creating = True
        name = serializers.CharField(max_length=100)
        strategy_key = serializers.CharField(max_length=60)
        parameters = serializers.DictField(required=False)
        instrument = serializers.CharField(max_length=20)
        timeframe = serializers.CharField(max_length=10, required=False)
        data_provider = serializers.CharField(max_length=20, required=False)
        venue = serializers.CharField(max_length=20, required=False)
        broker_account = serializers.CharField(max_length=100, required=False, allow_blank=True)
        risk_limits = serializers.DictField(required=False)

        class Meta:
            ref_name = "BotCreateInput"

    @extend_schema(request=InputSerializer, responses={201: BotOutputSerializer})
    def post(self, request: Request) -> Response:
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        bot = services.bot_create(actor=request.user, **data.validated_data)
        return Response(BotOutputSerializer(bot).data, status=status.HTTP_201_CREATED)


class BotDetailApi(APIView):
    permission_classes = [IsViewer]

    class OutputSerializer(BotOutputSerializer):
        config_versions = serializers.SerializerMethodField()

        class Meta:
            ref_name = "BotDetail"

        def get_config_versions(self, bot: Bot) -> list[dict[str, Any]]:
            return [
                {
                    "version": v.version,
                    "parameters": v.parameters,
                    "risk_limits": v.risk_limits,
                    "changed_by": v.changed_by,
                    "reason": v.reason,
                    "created_at": v.created_at.isoformat(),
                }
                for v in selectors.bot_config_version_list(bot=bot)
            ]

    @extend_schema(responses=OutputSerializer)
    def get(self, request: Request, bot_id: int) -> Response:
        return Response(self.OutputSerializer(selectors.bot_get(bot_id=bot_id)).data)


class BotUpdateApi(APIView):
    permission_classes = [IsOperator]

    class InputSerializer(_RejectsUnknownFields):
        name = serializers.CharField(max_length=100, required=False)
        strategy_key = serializers.CharField(max_length=60, required=False)
        parameters = serializers.DictField(required=False, help_text="Merge-patch: a null resets to the default.")
        instrument = serializers.CharField(max_length=20, required=False)
        timeframe = serializers.CharField(max_length=10, required=False)
        data_provider = serializers.CharField(max_length=20, required=False)
        venue = serializers.CharField(max_length=20, required=False)
        broker_account = serializers.CharField(max_length=100, required=False, allow_blank=True)
        risk_limits = serializers.DictField(required=False, help_text="Merge-patch: a null removes the limit.")
        reason = serializers.CharField(max_length=1000, required=False, allow_blank=True)

        class Meta:
            ref_name = "BotUpdateInput"

    @extend_schema(request=InputSerializer, responses=BotOutputSerializer)
    def patch(self, request: Request, bot_id: int) -> Response:
        bot = selectors.bot_get(bot_id=bot_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        bot = services.bot_update(bot=bot, actor=request.user, **data.validated_data)
        return Response(BotOutputSerializer(bot).data)


class BotStarterPackApi(APIView):
    permission_classes = [IsOperator]

    OutputSerializer = inline_serializer(
        "BotStarterPack",
        {
            "created": BotOutputSerializer(many=True),
            "existing": BotOutputSerializer(many=True),
            "message": serializers.CharField(),
            "trace_id": serializers.CharField(),
        },
    )

    @extend_schema(request=None, responses={201: OutputSerializer, 200: OutputSerializer})
    def post(self, request: Request) -> Response:
        result = services.bot_starter_pack(actor=request.user)
        if result.created:
            message = f"Created {len(result.created)} starter bot(s) at LAB on the simulated venue."
        else:
            message = "The starter pack already exists; nothing was created."
        body = {
            "created": BotOutputSerializer(result.created, many=True).data,
            "existing": BotOutputSerializer(result.existing, many=True).data,
            "message": message,
            "trace_id": ensure_trace_id(),
        }
        return Response(body, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK)


def _stage_change_response(change: services.StageChange) -> Response:
    body = StageChangeOutputSerializer(change).data
    return Response({**body, "trace_id": ensure_trace_id()})


class BotPromoteApi(APIView):
    """Operators promote LAB→PAPER; PAPER→LIVE needs an admin (checked by the service, 403)."""

    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        to_stage = serializers.ChoiceField(choices=Bot.Stage.choices)
        reason = serializers.CharField(max_length=1000)
        override = serializers.BooleanField(default=False)

        class Meta:
            ref_name = "BotPromoteInput"

    @extend_schema(request=InputSerializer, responses=StageChangeOutputSerializer)
    def post(self, request: Request, bot_id: int) -> Response:
        bot = selectors.bot_get(bot_id=bot_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _stage_change_response(services.bot_promote(bot=bot, actor=request.user, **data.validated_data))


class BotDemoteApi(APIView):
    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        to_stage = serializers.ChoiceField(choices=Bot.Stage.choices)
        reason = serializers.CharField(max_length=1000)

        class Meta:
            ref_name = "BotDemoteInput"

    @extend_schema(request=InputSerializer, responses=StageChangeOutputSerializer)
    def post(self, request: Request, bot_id: int) -> Response:
        bot = selectors.bot_get(bot_id=bot_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _stage_change_response(self.demote(bot=bot, actor=request.user, **data.validated_data))

    def demote(self, **kwargs: Any) -> services.StageChange:
        """The service that demotes; apps.runners serves the route with one that also stops a
        runner the new stage cannot keep (a higher app may call a lower one, not the reverse)."""
        return services.bot_demote(**kwargs)


class DecisionTraceOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    bot_id = serializers.IntegerField()
    runner_id = serializers.IntegerField(allow_null=True)
    job_id = serializers.IntegerField(allow_null=True)
    generation = serializers.IntegerField()
    mode = serializers.CharField()
    bar_ts = serializers.DateTimeField()
    replay = serializers.BooleanField()
    outcome = serializers.CharField()
    stopped_at = serializers.CharField()
    reason_code = serializers.CharField()
    message = serializers.CharField()
    decision = serializers.JSONField(allow_null=True)
    risk = serializers.JSONField(allow_null=True)
    stages = serializers.JSONField()
    order = serializers.JSONField(allow_null=True)
    config_version = serializers.IntegerField()
    fingerprint = serializers.CharField()
    inputs = serializers.JSONField()
    latency_ms = serializers.FloatField()
    trace_id = serializers.CharField()
    created_at = serializers.DateTimeField()

    class Meta:
        ref_name = "DecisionTrace"


class BotDecisionTraceListApi(APIView):
    """GET /api/bots/{id}/decision-traces?outcome=TRADE|NO_TRADE: "why traded" and "why not"."""

    @extend_schema(
        parameters=[OpenApiParameter("outcome", str, enum=["TRADE", "NO_TRADE"])],
        responses=DecisionTraceOutputSerializer(many=True),
    )
    def get(self, request: Request, bot_id: int) -> Response:
        bot = selectors.bot_get(bot_id=bot_id)
        outcome = request.query_params.get("outcome") or None
        if outcome not in (None, "TRADE", "NO_TRADE"):
            raise serializers.ValidationError({"outcome": ["must be TRADE or NO_TRADE."]})
        traces = telemetry_selectors.decision_trace_list(bot_id=bot.pk, outcome=outcome)
        paginator = LimitOffsetPagination()
        page = paginator.paginate_queryset(traces, request, view=self)
        return paginator.get_paginated_response(DecisionTraceOutputSerializer(page, many=True).data)


class BotPerformanceApi(APIView):
    """GET /api/bots/{id}/performance: the profit variables per trade date and in total; a figure
    that is not known is null with its reason under `unknown`, never 0."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request: Request, bot_id: int) -> Response:
        bot = selectors.bot_get(bot_id=bot_id)
        latest = market_selectors.latest_bar(instrument=bot.instrument, timeframe=bot.timeframe)
        performance = trading_selectors.bot_performance(
            bot_id=bot.pk, mark=latest.close if latest else None, mark_at=latest.ts if latest else None
        )
        return Response({**performance, "trace_id": ensure_trace_id()})


class BotTradingStateApi(APIView):
    """POST /api/bots/{id}/trading-state {"state", "reason"}: a person's decision (RELIABILITY R8,
    R10): return a HALTED or REDUCING bot to ACTIVE, or restrict it. Operator, with a reason; audited."""

    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        state = serializers.ChoiceField(choices=["ACTIVE", "REDUCING", "HALTED"])
        reason = serializers.CharField(max_length=1000)

        class Meta:
            ref_name = "BotTradingStateInput"

    @extend_schema(request=InputSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request, bot_id: int) -> Response:
        bot = selectors.bot_get(bot_id=bot_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        changed = trading_services.trading_state_change(
            bot_id=bot.pk, state=data.validated_data["state"], reason=data.validated_data["reason"], actor=request.user
        )
        return Response({"bot_id": bot.pk, **changed, "trace_id": ensure_trace_id()})
