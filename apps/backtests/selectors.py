"""Reads of backtests: the list, one backtest, and its trades a page at a time; a matrix's state
(status and progress from its runs) and its runs ranked by its objective."""

from __future__ import annotations

from typing import Any

from django.apps import apps as django_apps
from django.db.models import Avg, Case, Count, DecimalField, IntegerField, Max, Min, Q, QuerySet, Sum, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from apps.backtests.exceptions import BacktestMatrixNotFound, BacktestNotFound
from apps.backtests.models import OPEN_STATUSES, Backtest, BacktestMatrix, BacktestTrade, Status

# What a matrix may rank its runs by (a metric of SPEC §9) and which way is better: "desc" ranks
# the highest first, "asc" the lowest (a drawdown).
OBJECTIVES: dict[str, str] = {
    "expectancy": "desc",
    "net_pnl": "desc",
    "gross_pnl": "desc",
    "profit_factor": "desc",
    "win_rate": "desc",
    "sharpe": "desc",
    "sortino": "desc",
    "trades": "desc",
    "max_drawdown": "asc",
    "max_drawdown_pct": "asc",
}

# Fields the list does not carry (large JSON): read them on the detail.
_LIST_DEFERRED = ("equity_curve", "decisions")


def backtest_list(*, filters: dict[str, Any] | None = None) -> QuerySet[Backtest]:
    """Newest first, by id on ties (a stable order for pagination). Filters: bot_id, status,
    matrix_id; a None value means "any"."""
    qs = Backtest.objects.select_related("created_by").defer(*_LIST_DEFERRED).order_by("-created_at", "-id")
    for key, value in (filters or {}).items():
        if value is not None:
            qs = qs.filter(**{key: value})
    return qs


def backtest_get(*, backtest_id: int) -> Backtest:
    backtest = Backtest.objects.select_related("created_by").filter(pk=backtest_id).first()
    if backtest is None:
        raise BacktestNotFound(f"No backtest has id {backtest_id}.")
    return backtest


def backtest_trades_page(*, backtest: Backtest, limit: int, after: int = 0) -> tuple[list[BacktestTrade], int | None]:
    """(up to `limit` trades with seq > after, oldest first; the cursor of the next page or None).
    Keyset pagination on (backtest, seq): every page is one index range, however deep."""
    rows = list(BacktestTrade.objects.filter(backtest=backtest, seq__gt=after).order_by("seq")[: limit + 1])
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].seq
    return rows, None


def matrix_get(*, matrix_id: int) -> BacktestMatrix:
    matrix = BacktestMatrix.objects.select_related("created_by").filter(pk=matrix_id).first()
    if matrix is None:
        raise BacktestMatrixNotFound(f"No backtest matrix has id {matrix_id}.")
    return matrix


def matrix_state(*, matrix: BacktestMatrix) -> dict[str, Any]:
    """`counts` of the runs by status, `progress` (finished runs count whole, running ones by their
    own progress, over every run) and `status`: CANCELLED once cancelled; QUEUED until a run starts;
    RUNNING while any run is open; then SUCCEEDED when at least one run succeeded, FAILED when every
    run that was not cancelled failed, CANCELLED when every run was cancelled."""
    counts = dict.fromkeys(Status.values, 0)
    running = 0.0
    for row in Backtest.objects.filter(matrix=matrix).values("status").annotate(n=Count("id"), p=Sum("progress")):
        counts[row["status"]] = row["n"]
        if row["status"] == Status.RUNNING:
            running = float(row["p"] or 0.0)
    total = matrix.runs or sum(counts.values())
    finished = counts[Status.SUCCEEDED] + counts[Status.FAILED] + counts[Status.CANCELLED]
    progress = round(min((finished + running) / total, 1.0), 4) if total else 1.0
    if matrix.status == Status.CANCELLED:
        status = Status.CANCELLED
    elif finished < total:
        status = Status.QUEUED if finished == 0 and counts[Status.RUNNING] == 0 else Status.RUNNING
    elif counts[Status.SUCCEEDED]:
        status = Status.SUCCEEDED
    elif counts[Status.FAILED]:
        status = Status.FAILED
    else:
        status = Status.CANCELLED
    return {"status": str(status), "progress": progress, "counts": counts}


def _objective(matrix: BacktestMatrix) -> Cast:
    """The matrix's objective as a number, read from each run's metrics (NULL where the run has
    no figure for it)."""
    return Cast(
        KeyTextTransform(matrix.objective, "metrics"), output_field=DecimalField(max_digits=38, decimal_places=10)
    )


def matrix_results(*, matrix: BacktestMatrix, limit: int, offset: int = 0) -> tuple[list[Backtest], int | None]:
    """(a page of the matrix's runs, the offset of the next page or None), in rank order: the
    SUCCEEDED runs by the objective (best first; a run whose figure is null after those with one),
    then the runs still open, the FAILED and the CANCELLED ones, each by id. Each row carries
    `objective_value` (Decimal or None) and `rank` (1.. for SUCCEEDED runs, None for the others;
    ties keep id order)."""
    value = _objective(matrix)
    group = Case(
        When(status=Status.SUCCEEDED, then=Value(0)),
        When(status__in=OPEN_STATUSES, then=Value(1)),
        When(status=Status.FAILED, then=Value(2)),
        default=Value(3),
        output_field=IntegerField(),
    )
    ordered = value.asc(nulls_last=True) if OBJECTIVES.get(matrix.objective) == "asc" else value.desc(nulls_last=True)
    rows = list(
        Backtest.objects.filter(matrix=matrix)
        .defer("equity_curve", "decisions", "timings")
        .annotate(rank_group=group, objective_value=value)
        .order_by("rank_group", ordered, "id")[offset : offset + limit + 1]
    )
    for position, row in enumerate(rows[:limit], offset + 1):
        row.rank = position if row.status == Status.SUCCEEDED else None  # type: ignore[attr-defined]
    return rows[:limit], (offset + limit if len(rows) > limit else None)


def matrix_heatmap(*, matrix: BacktestMatrix, x: str, y: str | None = None) -> list[dict[str, Any]]:
    """The matrix's runs grouped by the values of two of its parameters (`y` None: by `x` alone),
    one row per pair that has runs: `x`, `y` (each value as the JSON text stored, e.g. "5", "1.5"),
    `runs` (every run of the pair: the other parameters, the instruments and the windows), `open`,
    `succeeded`, `known` (succeeded runs with a figure for the objective), and over those the
    `best` (by the objective's direction), `worst` and `mean` figure (Decimals, None when no run
    has one). One grouped query: the heatmap of a 10,000-run matrix reads no run row."""
    value = _objective(matrix)
    done = Q(status=Status.SUCCEEDED)
    lowest_first = OBJECTIVES.get(matrix.objective) == "asc"
    best, worst = (Min, Max) if lowest_first else (Max, Min)
    keys = {"x": KeyTextTransform(x, "parameters")}
    if y is not None:
        keys["y"] = KeyTextTransform(y, "parameters")
    rows = (
        Backtest.objects.filter(matrix=matrix)
        .annotate(**keys)
        .values(*keys)
        .annotate(
            runs=Count("id"),
            open=Count("id", filter=Q(status__in=OPEN_STATUSES)),
            succeeded=Count("id", filter=done),
            known=Count(value, filter=done),
            best=best(value, filter=done),
            worst=worst(value, filter=done),
            mean=Avg(value, filter=done),
        )
        .order_by()
    )
    return [{"y": None, **row} for row in rows]


def matrix_recent(*, limit: int) -> list[BacktestMatrix]:
    """The newest matrices, each with `counts` of its runs by status (one grouped query for all)."""
    matrices = list(BacktestMatrix.objects.select_related("created_by").order_by("-created_at", "-id")[:limit])
    counts: dict[int, dict[str, int]] = {m.pk: dict.fromkeys(Status.values, 0) for m in matrices}
    for row in (
        Backtest.objects.filter(matrix_id__in=list(counts))
        .values("matrix_id", "status")
        .annotate(n=Count("id"))
        .order_by()
    ):
        counts[row["matrix_id"]][row["status"]] = row["n"]
    for matrix in matrices:
        matrix.counts = counts[matrix.pk]  # type: ignore[attr-defined]
    return matrices


def matrix_activity() -> bool:
    """True while a matrix is QUEUED or RUNNING (its row follows its runs): the Backtests page's
    list of matrices polls only then."""
    return BacktestMatrix.objects.filter(status__in=OPEN_STATUSES).exists()


# -- reads of the Observatory's pages ----------------------------------------------------------


def backtest_activity(*, bot_id: int | None = None) -> bool:
    """True while a backtest (of this bot, when given) is QUEUED or RUNNING: while its progress or
    its outcome can change without anyone acting, the pages that show it poll; only then."""
    qs = Backtest.objects.filter(status__in=OPEN_STATUSES)
    if bot_id is not None:
        qs = qs.filter(bot_id=bot_id)
    return qs.exists()


def backtest_bot_choices(*, retired: bool = False) -> list[Any]:
    """The bots a backtest can be run from (every one but the RETIRED, unless `retired`: a filter
    of past backtests lists those too), by name then id. Bots sit above backtests: the model is
    reached by its label."""
    qs = django_apps.get_model("bots", "Bot").objects.order_by("name", "id")
    return list(qs if retired else qs.exclude(stage="RETIRED"))


def backtest_bot(*, bot_id: Any) -> Any:
    """The bot with this id, or None (gone, or no id): a matrix's page names the bot it varies."""
    if not isinstance(bot_id, int):
        return None
    return django_apps.get_model("bots", "Bot").objects.filter(pk=bot_id).first()


def backtest_trade_marks(*, backtest: Backtest, limit: int) -> tuple[list[dict[str, Any]], bool]:
    """(the first `limit` trades' side, entry and exit times and exit reason, oldest first; True
    when there are more) — what the price chart marks, without reading whole trade rows."""
    rows = list(
        BacktestTrade.objects.filter(backtest=backtest)
        .order_by("seq")
        .values("side", "entry_ts", "exit_ts", "exit_reason")[: limit + 1]
    )
    return rows[:limit], len(rows) > limit
