"""The backtest matrix (SPEC §9): a parameter grid × instruments × windows fanned out as one Backtest
row and one `backtest.run` job per run (on the backtests queue), validated against the catalogue
(400 naming the parameter), at most 10,000 runs; its runs ranked by the objective with their
parameters, instrument, window, metrics and verdict, a failed run listed with its error; progress
over the runs; cancel of what has not finished."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from apps.backtests.models import Backtest, BacktestMatrix
from apps.runners.models import Job
from apps.runners.services.jobs import job_claim, job_execute
from apps.telemetry.models import AuditEvent
from tests.backtests.conftest import START, run_job, strategy_body
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db

W1 = {"start": START.isoformat(), "end": (START + timedelta(hours=6)).isoformat()}
W2 = {"start": (START + timedelta(hours=6)).isoformat(), "end": (START + timedelta(hours=12)).isoformat()}
GRID = {"fast_period": [5, 8], "slow_period": [20, 30]}


@pytest.fixture
def operator_client(token_client: Any) -> Any:
    return token_client("operator", username="matrix-operator")


def _body(**overrides: Any) -> dict[str, Any]:
    body = strategy_body()
    del body["start"], body["end"]
    return {**body, "grid": GRID, "windows": [W1, W2], **overrides}


def _create(client: Any, **overrides: Any) -> dict[str, Any]:
    response = client.post("/api/backtests/matrix", _body(**overrides), format="json")
    assert response.status_code == 202, response.json()
    return response.json()


def _fields(response: Any) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == 400 and body["error_code"] == "VALIDATION_ERROR", body
    assert body["trace_id"] == response["X-Trace-Id"]
    return body["fields"]


def _runs(matrix_id: int) -> list[Backtest]:
    return list(Backtest.objects.filter(matrix_id=matrix_id).order_by("id"))


def test_a_matrix_is_one_backtest_and_one_job_per_run(operator_client: Any) -> None:
    answer = _create(operator_client)
    assert answer == {"id": answer["id"], "runs": 8, "status": "QUEUED", "skipped_combinations": 0}
    runs = _runs(answer["id"])
    assert len(runs) == 8
    combos = {(r.parameters["fast_period"], r.parameters["slow_period"], r.start.isoformat()) for r in runs}
    assert combos == {(f, s, w["start"]) for f in (5, 8) for s in (20, 30) for w in (W1, W2)}
    # The base parameters the grid does not name are kept on every run.
    assert {(r.parameters["atr_period"], r.parameters["stop_atr_multiple"]) for r in runs} == {(5, 2.0)}
    assert {(r.instrument, r.timeframe, r.status, r.risk_limits) for r in runs} == {("MES", "1m", "QUEUED", None)}
    assert {r.initial_capital for r in runs} == {Decimal(10000)}
    # Runs of one window are next to each other: a worker meets the same bars run after run.
    assert [r.start for r in runs] == sorted(r.start for r in runs)
    jobs = Job.objects.filter(pk__in=[r.job_id for r in runs])
    assert len({r.job_id for r in runs}) == 8 == jobs.count()
    for run in runs:
        job = next(j for j in jobs if j.pk == run.job_id)
        assert (job.type, job.status, job.payload) == ("backtest.run", "QUEUED", {"backtest_id": run.pk})
        assert job.idempotency_key == f"backtest:{run.pk}"
    audit = AuditEvent.objects.get(action="backtest_matrix.create")
    assert audit.actor_label == "matrix-operator" and audit.after["runs"] == 8
    assert audit.after["grid"] == GRID


def test_the_runs_are_ranked_by_the_objective_with_what_each_ran(operator_client: Any, provider_stub: Any) -> None:
    provider_stub("databento")
    matrix_id = _create(operator_client)["id"]
    for run in _runs(matrix_id):
        run_job(run.pk)
    body = operator_client.get(f"/api/backtests/matrix/{matrix_id}").json()
    assert body["status"] == "SUCCEEDED" and body["progress"] == 1.0 and body["runs"] == 8
    assert body["counts"] == {"QUEUED": 0, "RUNNING": 0, "SUCCEEDED": 8, "FAILED": 0, "CANCELLED": 0}
    assert body["objective"] == "expectancy" and body["next"] is None and body["finished_at"]
    assert body["grid"] == GRID and body["instruments"] == ["MES"] and len(body["windows"]) == 2
    assert body["config"]["strategy_key"] == "trend_following" and body["config"]["risk_limits"] is None
    results = body["results"]
    assert [r["rank"] for r in results] == list(range(1, 9))
    stored = {r.pk: r for r in _runs(matrix_id)}
    assert {r["backtest_id"] for r in results} == set(stored)
    for result in results:
        run = stored[result["backtest_id"]]
        assert result["parameters"] == run.parameters and result["instrument"] == "MES"
        assert result["window"] == {
            "start": run.start.isoformat().replace("+00:00", "Z"),
            "end": run.end.isoformat().replace("+00:00", "Z"),
        }
        assert result["metrics"] == run.metrics and result["verdict"] == run.classification["verdict"]
        assert result["objective_value"] == run.metrics["expectancy"]
        assert result["status"] == "SUCCEEDED" and result["error"] is None
    values = [r["objective_value"] for r in results]
    known = [Decimal(v) for v in values if v is not None]
    assert known == sorted(known, reverse=True)
    assert values == [*(v for v in values if v is not None), *(v for v in values if v is None)]  # nulls last
    assert len(known) >= 2 and known[0] != known[-1]  # the grid makes a difference on these bars

    # Another objective, and one where lower is better.
    BacktestMatrix.objects.filter(pk=matrix_id).update(objective="max_drawdown")
    drawdowns = [
        Decimal(r["objective_value"])
        for r in operator_client.get(f"/api/backtests/matrix/{matrix_id}").json()["results"]
    ]
    assert drawdowns == sorted(drawdowns)


def test_the_results_come_a_page_at_a_time(operator_client: Any, provider_stub: Any) -> None:
    provider_stub("databento")
    matrix_id = _create(operator_client, windows=[W1])["id"]
    for run in _runs(matrix_id):
        run_job(run.pk)
    whole = operator_client.get(f"/api/backtests/matrix/{matrix_id}").json()["results"]
    first = operator_client.get(f"/api/backtests/matrix/{matrix_id}?limit=3").json()
    assert first["next"] == 3 and first["results"] == whole[:3]
    second = operator_client.get(f"/api/backtests/matrix/{matrix_id}?limit=3&offset=3").json()
    assert second["next"] is None and second["results"] == whole[3:]
    assert [r["rank"] for r in second["results"]] == [4]
    assert "limit" in _fields(operator_client.get(f"/api/backtests/matrix/{matrix_id}?limit=0"))


def test_progress_and_status_follow_the_runs(operator_client: Any, provider_stub: Any) -> None:
    provider_stub("databento")
    matrix_id = _create(operator_client)["id"]
    runs = _runs(matrix_id)
    assert operator_client.get(f"/api/backtests/matrix/{matrix_id}").json()["status"] == "QUEUED"
    for run in runs[:3]:
        run_job(run.pk)
    Backtest.objects.filter(pk=runs[3].pk).update(status="RUNNING", progress=0.5)
    body = operator_client.get(f"/api/backtests/matrix/{matrix_id}").json()
    assert body["status"] == "RUNNING" and body["progress"] == pytest.approx((3 + 0.5) / 8)
    assert body["counts"]["SUCCEEDED"] == 3 and body["counts"]["RUNNING"] == 1 and body["counts"]["QUEUED"] == 4
    # The matrix row follows each run's close (the list pages and the admin read it).
    matrix = BacktestMatrix.objects.get(pk=matrix_id)
    assert (matrix.status, matrix.progress, matrix.finished_at) == ("RUNNING", 3 / 8, None)
    # Unfinished runs come after the ranked ones, unranked.
    assert [r["rank"] for r in body["results"]] == [1, 2, 3, None, None, None, None, None]


def test_a_failed_run_is_listed_with_its_error(operator_client: Any, provider_stub: Any) -> None:
    stub = provider_stub("databento")
    matrix_id = _create(operator_client, grid={"fast_period": [5, 8]})["id"]
    runs = _runs(matrix_id)
    for run in runs[:2]:  # the first window: its bars are fetched
        run_job(run.pk)
    stub.mode = "empty"  # the second window's bars cannot be had
    for run in runs[2:]:
        run_job(run.pk)
    body = operator_client.get(f"/api/backtests/matrix/{matrix_id}").json()
    assert body["status"] == "SUCCEEDED" and body["counts"]["FAILED"] == 2
    failed = body["results"][2:]
    assert [(r["status"], r["rank"], r["metrics"]) for r in failed] == [("FAILED", None, {})] * 2
    assert {r["error"]["error_code"] for r in failed} == {"DATA_UNAVAILABLE"}
    assert all(r["window"]["start"] == W2["start"].replace("+00:00", "Z") for r in failed)


def test_every_run_failing_fails_the_matrix(operator_client: Any) -> None:
    matrix_id = _create(operator_client, windows=[W1], grid={})["id"]  # no provider key: no bars
    (run,) = _runs(matrix_id)
    run_job(run.pk)
    body = operator_client.get(f"/api/backtests/matrix/{matrix_id}").json()
    assert body["status"] == "FAILED" and body["results"][0]["error"]["error_code"] == "DATA_UNAVAILABLE"
    assert BacktestMatrix.objects.get(pk=matrix_id).status == "FAILED"


def test_cancel_stops_what_has_not_finished_and_keeps_what_has(operator_client: Any, provider_stub: Any) -> None:
    provider_stub("databento")
    matrix_id = _create(operator_client)["id"]
    runs = _runs(matrix_id)
    run_job(runs[0].pk)
    running = job_claim(job_id=runs[1].job_id, worker="bt-elsewhere", lease_seconds=60)
    assert running is not None
    Backtest.objects.filter(pk=runs[1].pk).update(status="RUNNING")
    response = operator_client.post(
        f"/api/backtests/matrix/{matrix_id}/cancel", {"reason": "wrong grid"}, format="json"
    )
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "CANCELLED"
    assert body["counts"] == {"QUEUED": 0, "RUNNING": 0, "SUCCEEDED": 1, "FAILED": 0, "CANCELLED": 7}
    assert body["results"][0]["backtest_id"] == runs[0].pk and body["results"][0]["rank"] == 1
    jobs = {j.pk: j.status for j in Job.objects.filter(pk__in=[r.job_id for r in runs])}
    assert jobs[runs[0].job_id] == "SUCCEEDED"
    assert jobs[runs[1].job_id] == "RUNNING"  # its engine sees the cancelled row and stops
    assert {jobs[r.job_id] for r in runs[2:]} == {"CANCELLED"}
    # A cancelled run's message, delivered late, runs nothing.
    assert job_execute(job_id=runs[2].job_id, worker="bt-worker") is None
    assert Backtest.objects.get(pk=runs[2].pk).status == "CANCELLED"
    matrix = BacktestMatrix.objects.get(pk=matrix_id)
    assert matrix.status == "CANCELLED" and matrix.finished_at is not None
    audit = AuditEvent.objects.get(action="backtest_matrix.cancel")
    assert audit.reason == "wrong grid" and audit.after == {"runs_cancelled": 7, "jobs_cancelled": 6}

    again = operator_client.post(f"/api/backtests/matrix/{matrix_id}/cancel", {}, format="json")
    assert again.status_code == 409 and again.json()["error_code"] == "BACKTEST_NOT_CANCELLABLE"


def test_cancelling_one_run_counts_in_its_matrix(operator_client: Any) -> None:
    matrix_id = _create(operator_client, windows=[W1], grid={})["id"]
    (run,) = _runs(matrix_id)
    assert operator_client.post(f"/api/backtests/{run.pk}/cancel", {}, format="json").status_code == 200
    matrix = BacktestMatrix.objects.get(pk=matrix_id)
    assert (matrix.status, matrix.progress) == ("CANCELLED", 1.0)


def test_combinations_the_strategy_refuses_are_skipped_and_said(operator_client: Any) -> None:
    answer = _create(operator_client, grid={"fast_period": [5, 30], "slow_period": [20, 40]}, windows=[W1])
    assert answer["runs"] == 3 and answer["skipped_combinations"] == 1
    skipped = operator_client.get(f"/api/backtests/matrix/{answer['id']}").json()["skipped_combinations"]
    assert skipped["count"] == 1
    assert skipped["examples"][0]["parameters"] == {"fast_period": 30, "slow_period": 20}
    assert "fast_period" in skipped["examples"][0]["reason"]


def test_a_bots_matrix_varies_the_bots_current_config(operator_client: Any) -> None:
    bot = BotFactory(timeframe="1m")
    response = operator_client.post(
        "/api/backtests/matrix",
        {"bot_id": bot.pk, "grid": {"stop_atr_multiple": [1.5, 3]}, "start": W1["start"], "end": W1["end"]},
        format="json",
    )
    assert response.status_code == 202, response.json()
    runs = _runs(response.json()["id"])
    assert [r.parameters for r in runs] == [{**bot.parameters, "stop_atr_multiple": v} for v in (1.5, 3.0)]
    assert {(r.bot_id, r.config_version, r.risk_limits == bot.risk_limits) for r in runs} == {(bot.pk, 1, True)}


def test_instruments_multiply_the_runs(operator_client: Any) -> None:
    answer = _create(operator_client, instruments=["MES", "mnq"], windows=[W1], grid={"fast_period": [5, 8]})
    assert answer["runs"] == 4
    assert sorted({r.instrument for r in _runs(answer["id"])}) == ["MES", "MNQ"]


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"grid": {"fast_periodd": [5]}}, "grid", "fast_periodd"),
        ({"grid": {"fast_period": [5, 500]}}, "grid", "500 must be between 2 and 200."),
        ({"grid": {"fast_period": []}}, "grid", "non-empty list"),
        ({"grid": [5, 10]}, "grid", "must be an object"),
        ({"grid": {"fast_period": [30], "slow_period": [20]}}, "grid", "every combination breaks a rule"),
        ({"objective": "luck"}, "objective", "must be one of"),
        ({"instruments": ["MES", "XYZ"]}, "instruments", "'XYZ' is not an instrument"),
        ({"windows": []}, "windows", "must be a list of 1 to"),
        ({"windows": [W1, {"start": W1["end"], "end": W1["start"]}]}, "windows", "must be after start"),
        ({"windows": [{"start": "2025-12-13T12:00:00Z", "end": "2025-12-13T18:00:00Z"}]}, "windows", "does not trade"),
        ({"start": W1["start"]}, "start", "not both"),
        ({"speed": 3}, "speed", "is not a matrix field"),
    ],
)
def test_a_bad_matrix_is_400_naming_the_field(
    operator_client: Any, overrides: dict[str, Any], field: str, words: str
) -> None:
    fields = _fields(operator_client.post("/api/backtests/matrix", _body(**overrides), format="json"))
    assert field in fields and words in json.dumps(fields), fields
    assert not BacktestMatrix.objects.exists() and not Backtest.objects.exists()


def test_a_bad_window_is_named_by_its_index(operator_client: Any) -> None:
    fields = _fields(
        operator_client.post(
            "/api/backtests/matrix", _body(windows=[W1, {"start": W1["end"], "end": W1["start"]}]), format="json"
        )
    )
    assert fields["windows"] == {"1": {"end": ["must be after start."]}}


def test_more_than_10000_runs_is_400(operator_client: Any) -> None:
    grid = {"fast_period": list(range(2, 102)), "slow_period": list(range(200, 301))}  # 100 × 101 = 10,100
    fields = _fields(operator_client.post("/api/backtests/matrix", _body(grid=grid, windows=[W1]), format="json"))
    assert fields["grid"] == [
        "10,100 runs (10,100 parameter combinations × 1 instrument(s) × 1 window(s)); a matrix may have at most 10,000."
    ]
    assert not Backtest.objects.exists()


def test_a_viewer_reads_but_may_not_create_or_cancel(token_client: Any, operator_client: Any) -> None:
    matrix_id = _create(operator_client, windows=[W1], grid={})["id"]
    viewer = token_client("viewer")
    created = viewer.post("/api/backtests/matrix", _body(), format="json")
    assert created.status_code == 403 and created.json()["error_code"] == "PERMISSION_DENIED"
    cancelled = viewer.post(f"/api/backtests/matrix/{matrix_id}/cancel", {}, format="json")
    assert cancelled.status_code == 403
    assert viewer.get(f"/api/backtests/matrix/{matrix_id}").status_code == 200
    assert BacktestMatrix.objects.get(pk=matrix_id).status == "QUEUED"


def test_an_unknown_matrix_is_404_in_the_envelope(operator_client: Any) -> None:
    response = operator_client.get("/api/backtests/matrix/999999")
    assert response.status_code == 404 and response.json()["error_code"] == "NOT_FOUND"
    assert operator_client.get("/api/backtests/matrix").status_code == 405


def test_the_schema_documents_the_matrix(operator_client: Any) -> None:
    paths = operator_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    assert "post" in paths["/api/backtests/matrix"]
    assert "get" in paths["/api/backtests/matrix/{matrix_id}"]
    assert "post" in paths["/api/backtests/matrix/{matrix_id}/cancel"]


@pytest.fixture
def broker(real_celery: Any) -> Iterator[Any]:
    with real_celery.connection_for_write() as conn:
        client = conn.default_channel.client
        client.delete("backtests", "celery")
        yield client
        client.delete("backtests", "celery")


@pytest.mark.django_db(transaction=True)
def test_every_run_is_published_to_the_backtests_queue(broker: Any, token_client: Any) -> None:
    matrix_id = _create(token_client("operator"), windows=[W1])["id"]
    messages = [json.loads(raw) for raw in broker.lrange("backtests", 0, -1)]
    published = [json.loads(base64.b64decode(m["body"]))[0][0] for m in messages]
    assert sorted(published) == sorted(r.job_id for r in _runs(matrix_id))
    assert broker.llen("celery") == 0


def test_a_worker_reads_a_matrixs_bars_once_whatever_each_runs_warm_up_and_stores_what_a_lone_run_would(
    operator_client: Any,
) -> None:
    from apps.backtests.models import BacktestTrade
    from apps.market.arrays import bar_cache, bar_cache_clear
    from tests.backtests.factories import store_walk

    # Stored history from a day before the window (no provider: a gap in a run's window would fail it).
    store_walk(seed=10, start=START - timedelta(days=1), end=START + timedelta(hours=6))
    bar_cache_clear()
    matrix_id = _create(operator_client, grid={"fast_period": [5], "slow_period": [20, 30]}, windows=[W1])["id"]
    first, second = _runs(matrix_id)  # slow 20, then slow 30: a warm-up ten bars longer
    run_job(first.pk)  # reads further back than its warm-up needs (past the stored history, here)
    cache = bar_cache()
    misses, gap_checks = cache.misses, cache.gap_checks
    run_job(second.pk)
    assert (cache.misses, cache.gap_checks) == (misses, gap_checks)  # a slice of the first run's read
    second.refresh_from_db()
    assert second.status == "SUCCEEDED" and second.matrix.status == "SUCCEEDED"

    # The same backtest alone, its bars read afresh: the same result, to the trade.
    bar_cache_clear()
    body = strategy_body(parameters=second.parameters, start=W1["start"], end=W1["end"])
    response = operator_client.post("/api/backtests", body, format="json")
    assert response.status_code == 202, response.json()
    run_job(response.json()["id"])
    alone = Backtest.objects.get(pk=response.json()["id"])
    assert alone.status == "SUCCEEDED" and alone.bars == second.bars
    for name in ("metrics", "classification", "equity_curve", "decisions"):
        assert getattr(alone, name) == getattr(second, name), name
    columns = ("seq", "side", "quantity", "entry_ts", "entry_price", "exit_ts", "exit_price", "exit_reason", "pnl")
    trades = [
        list(BacktestTrade.objects.filter(backtest=b).order_by("seq").values_list(*columns)) for b in (alone, second)
    ]
    assert trades[0] == trades[1] and len(trades[0]) > 0


def test_trade_figures_round_to_the_columns_scale_as_they_are_stored() -> None:
    from apps.backtests import services
    from apps.backtests.models import BacktestTrade
    from apps.trading.engine import EngineTrade
    from tests.backtests.factories import BacktestFactory

    backtest = BacktestFactory()
    at = START + timedelta(minutes=1)
    money = [Decimal("1.0000000005"), Decimal("-1.0000000005"), Decimal("12345.123456789")]
    prices = (Decimal("6000.25"), Decimal("6001.5"))
    services._trades_copy(
        backtest.pk,
        [EngineTrade("LONG", 1, at, prices[0], at, prices[1], "SIGNAL", p, Decimal("0.85"), Decimal(0)) for p in money],
    )
    stored = list(BacktestTrade.objects.filter(backtest=backtest).order_by("seq").values_list("seq", "pnl", "entry_ts"))
    assert stored == [
        (1, Decimal("1.000000001"), at),
        (2, Decimal("-1.000000001"), at),
        (3, Decimal("12345.123456789"), at),
    ]


def test_a_trade_must_belong_to_a_backtest_and_a_backtest_goes_with_its_trades() -> None:
    """The COPY path keeps the foreign key: trades naming no backtest are refused (the constraint is
    deferred to the commit, as Django declares it: checked here at once), and a backtest cannot be
    deleted from under its trades, except by Django's cascade, which deletes them first."""
    from django.db import IntegrityError, connection, transaction

    from apps.backtests import services
    from apps.backtests.models import BacktestTrade
    from apps.trading.engine import EngineTrade
    from tests.backtests.factories import BacktestFactory, trade

    at = START + timedelta(minutes=1)
    zero = Decimal(0)
    orphan = EngineTrade("LONG", 1, at, Decimal("6000"), at, Decimal("6001"), "SIGNAL", Decimal(5), zero, zero)
    missing = (Backtest.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1000
    with pytest.raises(IntegrityError, match="foreign key"), transaction.atomic():
        services._trades_copy(missing, [orphan])
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    backtest = BacktestFactory()
    trade(backtest, 1)
    with pytest.raises(IntegrityError, match="foreign key"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM backtests_backtest WHERE id = %s", [backtest.pk])
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    backtest.delete()  # Django's cascade: its trades first
    assert not BacktestTrade.objects.exists()
