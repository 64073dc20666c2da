"""The backtests API (SPEC §9): POST /api/backtests (202 with its job), GET the list, one backtest
and its trades, POST cancel; the matrix: POST /api/backtests/matrix, GET one with its runs ranked,
POST cancel. One APIView per operation; the service validates the domain (every
bad field named at once), the OutputSerializers shape the answer. Money and prices are decimal
strings, times ISO 8601 UTC."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.backtests import selectors, services
from apps.backtests.models import BacktestTrade, Status
from apps.core.permissions import IsOperator, IsViewer

TRADES_DEFAULT_LIMIT = 100
TRADES_MAX_LIMIT = 1000


def decimal_string(value: Decimal | None) -> str | None:
    """A stored Decimal as a plain decimal string with at least two places: 5501.25, 0.85, 1.125."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


@extend_schema_field({"type": "string", "format": "decimal", "nullable": True})
class DecimalStringField(serializers.Field):
    """A Decimal rendered by `decimal_string` (no exponent, no padding to the column's scale)."""

    def to_representation(self, value: Decimal) -> str | None:
        return decimal_string(value)


class BacktestConfigSerializer(serializers.Serializer):
    """What was backtested: the strategy and its parameters, the market, the window, the costs."""

    bot_id = serializers.IntegerField(allow_null=True)
    config_version = serializers.IntegerField(allow_null=True)
    strategy_key = serializers.CharField()
    parameters = serializers.DictField()
    instrument = serializers.CharField()
    timeframe = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    fill_model = serializers.DictField(help_text="slippage_ticks (ticks per fill), commission_per_contract (USD).")
    risk_limits = serializers.DictField(allow_null=True, help_text="null: no risk checks.")
    initial_capital = DecimalStringField()
    data_provider = serializers.CharField(help_text="Where missing bars are fetched from.")

    class Meta:
        ref_name = "BacktestConfig"


class BacktestListItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Status.choices)
    progress = serializers.FloatField(help_text="0 to 1.")
    job_id = serializers.IntegerField(allow_null=True)
    matrix_id = serializers.IntegerField(allow_null=True)
    config = BacktestConfigSerializer(source="*")
    bars = serializers.IntegerField(allow_null=True, help_text="Window bars decided over.")
    trading_days = serializers.IntegerField(allow_null=True)
    elapsed_ms = serializers.IntegerField(allow_null=True)
    metrics = serializers.DictField(help_text="SPEC §9 figures; a null figure's reason is in metrics.unknown.")
    classification = serializers.DictField(help_text="verdict, reasons[], thresholds.")
    error = serializers.DictField(allow_null=True, help_text="The error envelope, when FAILED.")
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "BacktestListItem"


class BacktestOutputSerializer(BacktestListItemSerializer):
    timings = serializers.DictField(help_text="bars_ms, engine_ms, store_ms.")
    equity_curve = serializers.ListField(child=serializers.DictField(), help_text="[{ts, equity}], ≤ 2,000 points.")
    decisions = serializers.DictField(help_text="Counts by outcome (TRADE, NO_TRADE) and reason code.")

    class Meta:
        ref_name = "Backtest"


class BacktestTradeOutputSerializer(serializers.Serializer):
    side = serializers.ChoiceField(choices=BacktestTrade.Side.choices)
    quantity = serializers.IntegerField()
    entry_ts = serializers.DateTimeField(help_text="Open time of the bar the entry filled on.")
    entry_price = DecimalStringField()
    exit_ts = serializers.DateTimeField(help_text="Open time of the bar the exit filled on (END: the last bar's).")
    exit_price = DecimalStringField()
    exit_reason = serializers.ChoiceField(choices=BacktestTrade.ExitReason.choices)
    pnl = DecimalStringField(help_text="USD, net of fees.")
    fees = DecimalStringField(help_text="USD.")

    class Meta:
        ref_name = "BacktestTrade"


class BacktestPagination(LimitOffsetPagination):
    max_limit = 200


class BacktestListApi(APIView):
    permission_classes = [IsViewer]

    class FilterSerializer(serializers.Serializer):
        bot_id = serializers.IntegerField(required=False, min_value=1)
        status = serializers.ChoiceField(choices=Status.choices, required=False)
        matrix_id = serializers.IntegerField(required=False, min_value=1)

        class Meta:
            ref_name = "BacktestListFilter"

    @extend_schema(
        parameters=[FilterSerializer, OpenApiParameter("limit", int), OpenApiParameter("offset", int)],
        responses=BacktestListItemSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        filters = self.FilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        backtests = selectors.backtest_list(filters=filters.validated_data)
        paginator = BacktestPagination()
        page = paginator.paginate_queryset(backtests, request, view=self)
        return paginator.get_paginated_response(BacktestListItemSerializer(page, many=True).data)


class BacktestCreateApi(APIView):
    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        """The request's shape, for the schema; the service validates it (and names every bad field)."""

        bot_id = serializers.IntegerField(required=False, help_text="A bot's current config; or the strategy fields.")
        strategy_key = serializers.CharField(required=False)
        parameters = serializers.DictField(required=False, help_text="Missing parameters take their defaults.")
        instrument = serializers.CharField(required=False)
        timeframe = serializers.CharField(required=False)
        start = serializers.DateTimeField(help_text="UTC; bars whose open time is in [start, end).")
        end = serializers.DateTimeField(help_text="UTC, not in the future.")
        fill_model = serializers.DictField(required=False, help_text="Default: the SIM fill model's.")
        risk_limits = serializers.DictField(
            required=False, allow_null=True, help_text="Default: the bot's; none for a strategy; null: none."
        )
        initial_capital = serializers.DecimalField(
            max_digits=18, decimal_places=2, required=False, help_text="USD, default 10000."
        )

        class Meta:
            ref_name = "BacktestCreateInput"

    @extend_schema(
        request=InputSerializer,
        responses={
            202: inline_serializer(
                "BacktestQueued",
                {
                    "id": serializers.IntegerField(),
                    "job_id": serializers.IntegerField(),
                    "status": serializers.CharField(),
                },
            )
        },
    )
    def post(self, request: Request) -> Response:
        backtest = services.backtest_create(data=request.data, actor=request.user)
        return Response(
            {"id": backtest.pk, "job_id": backtest.job_id, "status": backtest.status}, status=status.HTTP_202_ACCEPTED
        )


class BacktestDetailApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(responses=BacktestOutputSerializer)
    def get(self, request: Request, backtest_id: int) -> Response:
        return Response(BacktestOutputSerializer(selectors.backtest_get(backtest_id=backtest_id)).data)


class BacktestTradeListApi(APIView):
    permission_classes = [IsViewer]

    class FilterSerializer(serializers.Serializer):
        limit = serializers.IntegerField(required=False, min_value=1, max_value=TRADES_MAX_LIMIT)
        cursor = serializers.RegexField(r"^[0-9]{1,10}$", required=False, help_text="The `next` of the page before.")

        class Meta:
            ref_name = "BacktestTradeListFilter"

    @extend_schema(
        parameters=[FilterSerializer],
        responses=inline_serializer(
            "BacktestTradePage",
            {
                "results": BacktestTradeOutputSerializer(many=True),
                "next": serializers.CharField(allow_null=True),
            },
        ),
    )
    def get(self, request: Request, backtest_id: int) -> Response:
        backtest = selectors.backtest_get(backtest_id=backtest_id)
        query = self.FilterSerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        limit = query.validated_data.get("limit", TRADES_DEFAULT_LIMIT)
        after = int(query.validated_data.get("cursor", 0))
        trades, next_after = selectors.backtest_trades_page(backtest=backtest, limit=limit, after=after)
        return Response(
            {
                "results": BacktestTradeOutputSerializer(trades, many=True).data,
                "next": None if next_after is None else str(next_after),
            }
        )


class BacktestCancelApi(APIView):
    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=1000, allow_blank=True, default="")

        class Meta:
            ref_name = "BacktestCancelInput"

    @extend_schema(request=InputSerializer, responses=BacktestOutputSerializer)
    def post(self, request: Request, backtest_id: int) -> Response:
        backtest = selectors.backtest_get(backtest_id=backtest_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        backtest = services.backtest_cancel(backtest=backtest, actor=request.user, **data.validated_data)
        return Response(BacktestOutputSerializer(backtest).data, status=status.HTTP_200_OK)


# -- the matrix ---------------------------------------------------------------------------------

MATRIX_RESULTS_DEFAULT_LIMIT = 100
MATRIX_RESULTS_MAX_LIMIT = 1000


class MatrixWindowSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()

    class Meta:
        ref_name = "BacktestMatrixWindow"


class MatrixRunSerializer(serializers.Serializer):
    """One run of a matrix: what it ran, its figures and verdict, or its error."""

    rank = serializers.IntegerField(allow_null=True, help_text="1 = best by the objective; null unless SUCCEEDED.")
    backtest_id = serializers.IntegerField(source="pk")
    status = serializers.ChoiceField(choices=Status.choices)
    progress = serializers.FloatField()
    parameters = serializers.DictField()
    instrument = serializers.CharField()
    window = MatrixWindowSerializer(source="*")
    objective_value = serializers.SerializerMethodField(help_text="The objective's figure, as in metrics.")
    metrics = serializers.DictField()
    verdict = serializers.SerializerMethodField()
    trading_days = serializers.IntegerField(allow_null=True)
    error = serializers.DictField(allow_null=True, help_text="The error envelope, when FAILED.")

    class Meta:
        ref_name = "BacktestMatrixRun"

    @extend_schema_field({"type": "string", "nullable": True})
    def get_objective_value(self, run: Any) -> Any:
        return (run.metrics or {}).get(self.context["objective"])

    @extend_schema_field({"type": "string", "nullable": True, "enum": ["PROMOTABLE", "MARGINAL", "REJECTED", None]})
    def get_verdict(self, run: Any) -> str | None:
        return (run.classification or {}).get("verdict")


class MatrixOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Status.choices)
    progress = serializers.FloatField(help_text="0 to 1: finished runs whole, running ones by their progress.")
    runs = serializers.IntegerField()
    counts = serializers.DictField(child=serializers.IntegerField(), help_text="Runs by status.")
    objective = serializers.CharField()
    config = serializers.DictField(help_text="The base config every run shares (parameters: before the grid).")
    grid = serializers.DictField()
    instruments = serializers.ListField(child=serializers.CharField())
    windows = serializers.ListField(child=serializers.DictField())
    skipped_combinations = serializers.DictField(
        help_text="Grid combinations the strategy's rules refuse (count, examples with the rule)."
    )
    created_by = serializers.CharField(allow_null=True)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    results = MatrixRunSerializer(many=True)
    next = serializers.IntegerField(allow_null=True, help_text="The offset of the next page of results, or null.")

    class Meta:
        ref_name = "BacktestMatrix"


def _matrix_answer(matrix: Any, *, limit: int, offset: int) -> dict[str, Any]:
    state = selectors.matrix_state(matrix=matrix)
    runs, next_offset = selectors.matrix_results(matrix=matrix, limit=limit, offset=offset)
    config = dict(matrix.base_config or {})
    skipped = config.pop("skipped_combinations", {"count": 0, "examples": []})
    return MatrixOutputSerializer(
        {
            "id": matrix.pk,
            "status": state["status"],
            "progress": state["progress"],
            "runs": matrix.runs,
            "counts": state["counts"],
            "objective": matrix.objective,
            "config": config,
            "grid": matrix.grid,
            "instruments": matrix.instruments,
            "windows": matrix.windows,
            "skipped_combinations": skipped,
            "created_by": matrix.created_by.username if matrix.created_by else None,
            "created_at": matrix.created_at,
            "finished_at": matrix.finished_at,
            "results": runs,
            "next": next_offset,
        },
        context={"objective": matrix.objective},
    ).data


class MatrixCreateApi(APIView):
    permission_classes = [IsOperator]

    class InputSerializer(BacktestCreateApi.InputSerializer):
        """The base config of POST /api/backtests, plus the grid; the service validates it."""

        start = serializers.DateTimeField(required=False, help_text="With end: the one window (or give windows).")
        end = serializers.DateTimeField(required=False)
        grid = serializers.DictField(
            child=serializers.ListField(), help_text='{parameter: [values]}, e.g. {"fast_period": [5, 10, 20]}.'
        )
        instruments = serializers.ListField(
            child=serializers.CharField(), required=False, help_text="Default: the base config's instrument."
        )
        windows = MatrixWindowSerializer(many=True, required=False, help_text="Default: the base start and end.")
        objective = serializers.ChoiceField(
            choices=list(selectors.OBJECTIVES), required=False, help_text="What ranks the runs; default expectancy."
        )

        class Meta:
            ref_name = "BacktestMatrixCreateInput"

    @extend_schema(
        request=InputSerializer,
        responses={
            202: inline_serializer(
                "BacktestMatrixQueued",
                {
                    "id": serializers.IntegerField(),
                    "runs": serializers.IntegerField(),
                    "status": serializers.CharField(),
                    "skipped_combinations": serializers.IntegerField(),
                },
            )
        },
    )
    def post(self, request: Request) -> Response:
        matrix = services.matrix_create(data=request.data, actor=request.user)
        return Response(
            {
                "id": matrix.pk,
                "runs": matrix.runs,
                "status": matrix.status,
                "skipped_combinations": matrix.base_config["skipped_combinations"]["count"],
            },
            status=status.HTTP_202_ACCEPTED,
        )


class MatrixResultsPageSerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, min_value=1, max_value=MATRIX_RESULTS_MAX_LIMIT)
    offset = serializers.IntegerField(required=False, min_value=0)

    class Meta:
        ref_name = "BacktestMatrixResultsPage"


class MatrixDetailApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(parameters=[MatrixResultsPageSerializer], responses=MatrixOutputSerializer)
    def get(self, request: Request, matrix_id: int) -> Response:
        matrix = selectors.matrix_get(matrix_id=matrix_id)
        page = MatrixResultsPageSerializer(data=request.query_params)
        page.is_valid(raise_exception=True)
        limit = page.validated_data.get("limit", MATRIX_RESULTS_DEFAULT_LIMIT)
        return Response(_matrix_answer(matrix, limit=limit, offset=page.validated_data.get("offset", 0)))


class MatrixCancelApi(APIView):
    permission_classes = [IsOperator]

    class InputSerializer(serializers.Serializer):
        reason = serializers.CharField(max_length=1000, allow_blank=True, default="")

        class Meta:
            ref_name = "BacktestMatrixCancelInput"

    @extend_schema(request=InputSerializer, responses=MatrixOutputSerializer)
    def post(self, request: Request, matrix_id: int) -> Response:
        matrix = selectors.matrix_get(matrix_id=matrix_id)
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        matrix = services.matrix_cancel(matrix=matrix, actor=request.user, **data.validated_data)
        return Response(_matrix_answer(matrix, limit=MATRIX_RESULTS_DEFAULT_LIMIT, offset=0))
