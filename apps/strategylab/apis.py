"""The strategy lab API (SPEC §10): GET|POST /api/strategy-lab/experiments, GET one with its
candidates ranked, POST start / cancel / review, POST /api/strategy-lab/candidates/{id}/graduate.
Viewers read; operators create, start, cancel, review and graduate. The services validate (every
bad field named at once); errors are the SPEC §2 envelope."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.backtests.apis import DecimalStringField
from apps.core.permissions import IsOperator, IsViewer
from apps.strategylab import selectors, services
from apps.strategylab.models import Experiment


class ExperimentListItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Experiment.Status.choices)
    phase = serializers.ChoiceField(choices=Experiment.Phase.choices)
    progress = serializers.FloatField(help_text="0 to 1, over every in-sample and out-of-sample run.")
    strategy_key = serializers.CharField()
    instruments = serializers.ListField(child=serializers.CharField())
    timeframe = serializers.CharField()
    parameter_space = serializers.DictField(help_text="As given.")
    grid = serializers.DictField(help_text="The space expanded: {parameter: [values]}.")
    windows = serializers.DictField(help_text="train and test, or walk_forward.")
    folds = serializers.ListField(child=serializers.DictField(), help_text="[{train, test, purged_bars}].")
    objective = serializers.CharField()
    max_runs = serializers.IntegerField()
    top_k = serializers.IntegerField()
    fill_model = serializers.DictField()
    risk_limits = serializers.DictField()
    initial_capital = DecimalStringField()
    error = serializers.DictField(allow_null=True, help_text="The error envelope, when FAILED.")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "ExperimentListItem"


class CandidateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    rank = serializers.IntegerField(allow_null=True, help_text="1 = best out of sample; null: not ranked.")
    in_sample_rank = serializers.IntegerField()
    parameters = serializers.DictField()
    instrument = serializers.CharField()
    in_sample = serializers.DictField(help_text="objective (mean over folds) and runs[] with their metrics.")
    out_of_sample = serializers.DictField(help_text="objective (mean over folds) and runs[] with their metrics.")
    verdict = serializers.CharField(allow_null=True, help_text="The out-of-sample backtest's classification.")
    unranked_reason = serializers.CharField(allow_null=True)
    overfit_warnings = serializers.ListField(child=serializers.DictField(), help_text="[{code, message, figures}].")
    bot_id = serializers.IntegerField(allow_null=True)
    bot_config_version = serializers.IntegerField(allow_null=True)
    graduation_backtests = serializers.ListField(child=serializers.IntegerField())
    graduated_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "LabCandidate"

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["verdict"] = data["verdict"] or None
        data["unranked_reason"] = data["unranked_reason"] or None
        return data


class ExperimentSerializer(ExperimentListItemSerializer):
    combinations = serializers.SerializerMethodField(help_text="How many parameter sets are searched.")
    skipped = serializers.DictField(help_text="Combinations a strategy rule refused: count and examples.")
    runs = serializers.SerializerMethodField(help_text="Run counts by phase and backtest status.")
    failures = serializers.ListField(child=serializers.DictField(), help_text="Failed runs, each named.")
    luck = serializers.DictField(help_text="deflated_sharpe and pbo, each with its inputs, or null with a reason.")
    review = serializers.SerializerMethodField()
    candidates = serializers.SerializerMethodField()

    class Meta:
        ref_name = "Experiment"

    def get_combinations(self, experiment: Experiment) -> int:
        return len(experiment.combinations)

    def get_runs(self, experiment: Experiment) -> dict[str, dict[str, int]]:
        return selectors.experiment_run_counts(experiment=experiment)

    def get_review(self, experiment: Experiment) -> dict[str, Any] | None:
        if not experiment.reviewed_at:
            return None
        return {
            "text": experiment.review_text,
            "provider": experiment.review_provider,
            "model": experiment.review_model,
            "reviewed_at": experiment.reviewed_at.isoformat(),
        }

    def get_candidates(self, experiment: Experiment) -> list[dict[str, Any]]:
        return CandidateSerializer(selectors.experiment_candidates(experiment=experiment), many=True).data


class ExperimentPagination(LimitOffsetPagination):
    max_limit = 200


class ExperimentListApi(APIView):
    permission_classes = [IsViewer]

    class FilterSerializer(serializers.Serializer):
        status = serializers.ChoiceField(choices=Experiment.Status.choices, required=False)
        strategy_key = serializers.CharField(required=False)

        class Meta:
            ref_name = "ExperimentListFilter"

    @extend_schema(
        parameters=[FilterSerializer, OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses=ExperimentListItemSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        paginator = ExperimentPagination()
        page = paginator.paginate_queryset(
            selectors.experiment_list(filters=filters.validated_data), request, view=self
        )
        return paginator.get_paginated_response(ExperimentListItemSerializer(page, many=True).data)


class ExperimentCreateApi(APIView):
    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        """The request's shape, for the schema; the service validates it (and names every bad field)."""

        name = serializers.CharField()
        strategy_key = serializers.CharField()
        instruments = serializers.ListField(child=serializers.CharField())
        timeframe = serializers.CharField()
        parameter_space = serializers.DictField(help_text='{parameter: [values]} or {parameter: {"min","max","step"}}.')
        train = serializers.DictField(required=False, help_text='{"start", "end"}: the in-sample window.')
        test = serializers.DictField(required=False, help_text='{"start", "end"}: at or after train.end.')
        walk_forward = serializers.DictField(
            required=False, help_text='{"folds" (2..20), "start", "end", "test_fraction"? (default 0.25)}.'
        )
        objective = serializers.CharField(required=False, help_text="A backtest metric; default expectancy.")
        max_runs = serializers.IntegerField(required=False, help_text="Most in-sample runs allowed.")
        top_k = serializers.IntegerField(required=False, help_text="Best in-sample sets re-run out of sample.")
        fill_model = serializers.DictField(required=False, help_text="Default: the SIM fill model's.")
        risk_limits = serializers.DictField(
            required=False, help_text="Default: 1 contract, LAB_DEFAULT_MAX_DAILY_LOSS, the strategy's orders a day."
        )
        initial_capital = serializers.DecimalField(max_digits=18, decimal_places=2, required=False)

        class Meta:
            ref_name = "ExperimentCreateInput"

    @extend_schema(request=InputSerializer, responses={201: ExperimentSerializer})
    def post(self, request: Request) -> Response:
        experiment = services.experiment_create(data=request.data, actor=request.user)
        return Response(ExperimentSerializer(experiment).data, status=status.HTTP_201_CREATED)


class ExperimentDetailApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(responses=ExperimentSerializer)
    def get(self, request: Request, experiment_id: int) -> Response:
        return Response(ExperimentSerializer(selectors.experiment_get(experiment_id=experiment_id)).data)


class ExperimentStartApi(APIView):
    permission_classes = [IsOperator]

    @extend_schema(request=None, responses={202: ExperimentSerializer})
    def post(self, request: Request, experiment_id: int) -> Response:
        experiment = selectors.experiment_get(experiment_id=experiment_id)
        experiment = services.experiment_start(experiment=experiment, actor=request.user)
        return Response(ExperimentSerializer(experiment).data, status=status.HTTP_202_ACCEPTED)


class ExperimentCancelApi(APIView):
    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=1000, allow_blank=True, default="")

        class Meta:
            ref_name = "ExperimentCancelInput"

    @extend_schema(request=InputSerializer, responses=ExperimentSerializer)
    def post(self, request: Request, experiment_id: int) -> Response:
        experiment = selectors.experiment_get(experiment_id=experiment_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        experiment = services.experiment_cancel(experiment=experiment, actor=request.user, **data.validated_data)
        return Response(ExperimentSerializer(experiment).data)


class ExperimentReviewApi(APIView):
    permission_classes = [IsOperator]

    @extend_schema(request=None, responses=ExperimentSerializer)
    def post(self, request: Request, experiment_id: int) -> Response:
        experiment = selectors.experiment_get(experiment_id=experiment_id)
        experiment = services.experiment_review(experiment=experiment, actor=request.user)
        return Response(ExperimentSerializer(experiment).data)


class CandidateGraduateApi(APIView):
    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100, required=False, help_text="The new bot's name.")
        bot_id = serializers.IntegerField(
            required=False, help_text="A bot of the same strategy, instrument and timeframe: a new config version."
        )

        class Meta:
            ref_name = "CandidateGraduateInput"

    @extend_schema(request=InputSerializer, responses={201: CandidateSerializer})
    def post(self, request: Request, candidate_id: int) -> Response:
        candidate = selectors.candidate_get(candidate_id=candidate_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        candidate = services.candidate_graduate(candidate=candidate, actor=request.user, **data.validated_data)
        return Response(CandidateSerializer(candidate).data, status=status.HTTP_201_CREATED)
