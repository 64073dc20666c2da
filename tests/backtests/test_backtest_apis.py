"""SPEC §9 over HTTP: POST /api/backtests (202 with its job), 400s naming every bad field, roles,
the list and detail shapes, the trades in pages, cancel."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone

from apps.backtests import services
from apps.backtests.models import Backtest
from apps.bots.models import Bot
from apps.runners.models import Job
from apps.telemetry.models import AuditEvent
from tests.backtests.conftest import END, START, run_job, strategy_body
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db

DETAIL_KEYS = {
    "id",
    "status",
    "progress",
    "job_id",
    "matrix_id",
    "config",
    "bars",
    "trading_days",
    "elapsed_ms",
    "timings",
    "metrics",
    "classification",
    "equity_curve",
    "decisions",
    "error",
    "created_by",
    "created_at",
    "started_at",
    "finished_at",
}
CONFIG_KEYS = {
    "bot_id",
    "config_version",
    "strategy_key",
    "parameters",
    "instrument",
    "timeframe",
    "start",
    "end",
    "fill_model",
    "risk_limits",
    "initial_capital",
    "data_provider",
}
TRADE_KEYS = {"side", "quantity", "entry_ts", "entry_price", "exit_ts", "exit_price", "exit_reason", "pnl", "fees"}


@pytest.fixture
def operator_client(token_client: Any) -> Any:
    return token_client("operator", username="bt-operator")


def _post(client: Any, body: Any) -> Any:
    return client.post("/api/backtests", body, format="json")


# -- create ---------------------------------------------------------------------------------------


def test_create_answers_202_with_its_queued_job_and_is_audited(operator_client: Any) -> None:
    response = _post(operator_client, strategy_body())
    body = response.json()
    assert response.status_code == 202, body
    assert set(body) == {"id", "job_id", "status"} and body["status"] == "QUEUED"
    backtest = Backtest.objects.get(pk=body["id"])
    job = Job.objects.get(pk=body["job_id"])
    assert backtest.job_id == job.pk and backtest.status == "QUEUED"
    assert job.type == "backtest.run" and job.status == "QUEUED"
    assert job.idempotency_key == f"backtest:{backtest.pk}" and job.payload == {"backtest_id": backtest.pk}
    # A strategy backtest: the SIM fill model, no risk limits, 10,000 USD, the default provider.
    assert backtest.fill_model == {"slippage_ticks": 1, "commission_per_contract": "0.85"}
    assert backtest.risk_limits is None and backtest.initial_capital == Decimal(10000)
    assert backtest.bot_id is None and backtest.config_version is None and backtest.data_provider == "databento"
    assert backtest.created_by.username == "bt-operator"
    audit = AuditEvent.objects.get(action="backtest.create", target_id=str(backtest.pk))
    assert audit.actor_label == "bt-operator" and audit.after["job_id"] == job.pk


def test_missing_parameters_take_the_strategy_defaults(operator_client: Any) -> None:
    response = _post(operator_client, strategy_body(parameters={"fast_period": 10}))
    assert response.status_code == 202, response.json()
    backtest = Backtest.objects.get(pk=response.json()["id"])
    assert backtest.parameters == {"fast_period": 10, "slow_period": 50, "atr_period": 14, "stop_atr_multiple": 2.0}


def test_a_bad_request_names_every_bad_field_at_once(operator_client: Any) -> None:
    body = {
        "strategy_key": "martingale",
        "instrument": "XYZ",
        "timeframe": "7m",
        "start": "2025-12-15T14:00:00",  # no time zone
        "end": "tomorrow",
        "fill_model": {"slippage_ticks": -1, "commission_per_contract": "abc", "spread": 1},
        "risk_limits": {"max_position_contracts": 0, "leverage": 10},
        "initial_capital": 0,
        "colour": "blue",
    }
    response = _post(operator_client, body)
    answer = response.json()
    assert response.status_code == 400, answer
    assert answer["error_code"] == "VALIDATION_ERROR" and answer["trace_id"] == response["X-Trace-Id"]
    fields = answer["fields"]
    assert set(fields) == {
        "strategy_key",
        "instrument",
        "timeframe",
        "start",
        "end",
        "fill_model",
        "risk_limits",
        "initial_capital",
        "colour",
    }
    assert set(fields["fill_model"]) == {"slippage_ticks", "commission_per_contract", "spread"}
    assert set(fields["risk_limits"]) == {"max_position_contracts", "leverage"}
    assert "time zone" in fields["start"][0]
    assert not Backtest.objects.exists() and not Job.objects.exists()


def test_parameters_are_checked_against_the_catalogue(operator_client: Any) -> None:
    response = _post(operator_client, strategy_body(parameters={"fast_period": 60, "slow_period": 20, "x": 1}))
    fields = response.json()["fields"]
    assert response.status_code == 400 and set(fields) == {"parameters"}
    assert set(fields["parameters"]) == {"x"}  # unknown names first; the ranges once the names are right
    response = _post(operator_client, strategy_body(parameters={"fast_period": 60, "slow_period": 20}))
    assert response.json()["fields"]["parameters"] == {"fast_period": ["must be smaller than slow_period."]}


@pytest.mark.parametrize(
    ("start", "end", "field", "words"),
    [
        (END, START, "end", "after start"),
        (START, timezone.now() + timedelta(days=1), "end", "in the future"),
        # Saturday: CME equity futures do not trade.
        (START + timedelta(days=5), START + timedelta(days=5, hours=12), "start", "does not trade"),
    ],
)
def test_the_window_is_checked(operator_client: Any, start: Any, end: Any, field: str, words: str) -> None:
    response = _post(operator_client, strategy_body(start=start.isoformat(), end=end.isoformat()))
    assert response.status_code == 400
    assert words in response.json()["fields"][field][0]


def test_a_window_larger_than_a_backtest_may_hold_is_refused(operator_client: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(services, "MAX_WINDOW_BARS", 1000)
    response = _post(operator_client, strategy_body())  # 1,380 one-minute bars
    assert response.status_code == 400
    assert "at most 1,000" in response.json()["fields"]["end"][0]


def test_a_bots_backtest_takes_its_current_config_version(operator_client: Any) -> None:
    bot = BotFactory(timeframe="15m", data_provider="polygon", config_version=3)
    response = _post(operator_client, {"bot_id": bot.pk, "start": START.isoformat(), "end": END.isoformat()})
    assert response.status_code == 202, response.json()
    backtest = Backtest.objects.get(pk=response.json()["id"])
    assert (backtest.bot_id, backtest.config_version) == (bot.pk, 3)
    assert backtest.parameters == bot.parameters and backtest.risk_limits == bot.risk_limits
    assert (backtest.strategy_key, backtest.instrument, backtest.timeframe) == ("trend_following", "MES", "15m")
    assert backtest.data_provider == "polygon"


def test_a_bots_backtest_may_replace_or_drop_its_risk_limits(operator_client: Any) -> None:
    bot = BotFactory()
    window = {"bot_id": bot.pk, "start": START.isoformat(), "end": END.isoformat()}
    given = _post(operator_client, {**window, "risk_limits": {"max_position_contracts": 2}})
    none = _post(operator_client, {**window, "risk_limits": None})
    assert Backtest.objects.get(pk=given.json()["id"]).risk_limits == {"max_position_contracts": 2}
    assert Backtest.objects.get(pk=none.json()["id"]).risk_limits is None


def test_bot_id_and_strategy_fields_together_or_an_unknown_bot_are_refused(operator_client: Any) -> None:
    bot = BotFactory()
    response = _post(operator_client, strategy_body(bot_id=bot.pk))
    fields = response.json()["fields"]
    assert response.status_code == 400 and {"strategy_key", "parameters", "instrument", "timeframe"} <= set(fields)
    response = _post(operator_client, {"bot_id": 999999, "start": START.isoformat(), "end": END.isoformat()})
    assert response.json()["fields"] == {"bot_id": ["no bot has id 999999."]}


def test_a_body_that_is_not_an_object_is_a_validation_error(operator_client: Any) -> None:
    response = _post(operator_client, [1, 2])
    assert response.status_code == 400 and response.json()["error_code"] == "VALIDATION_ERROR"


# -- roles ----------------------------------------------------------------------------------------


def test_a_viewer_reads_but_may_not_create_or_cancel(token_client: Any, operator_client: Any) -> None:
    viewer = token_client("viewer")
    created = _post(operator_client, strategy_body()).json()
    for path, body in (("/api/backtests", strategy_body()), (f"/api/backtests/{created['id']}/cancel", {})):
        response = viewer.post(path, body, format="json")
        answer = response.json()
        assert response.status_code == 403, answer
        assert answer["error_code"] == "PERMISSION_DENIED" and answer["trace_id"]
    assert Backtest.objects.count() == 1 and Backtest.objects.get().status == "QUEUED"
    assert viewer.get("/api/backtests").status_code == 200
    assert viewer.get(f"/api/backtests/{created['id']}").status_code == 200
    assert viewer.get(f"/api/backtests/{created['id']}/trades").status_code == 200


def test_without_credentials_it_is_401(api_client: Any) -> None:
    response = api_client.get("/api/backtests")
    assert response.status_code == 401 and response.json()["error_code"] == "AUTHENTICATION_REQUIRED"


def test_an_admin_may_create(token_client: Any) -> None:
    assert _post(token_client("admin"), strategy_body()).status_code == 202


def test_an_unknown_backtest_is_404_in_the_envelope(operator_client: Any) -> None:
    for response in (
        operator_client.get("/api/backtests/999999"),
        operator_client.get("/api/backtests/999999/trades"),
        operator_client.post("/api/backtests/999999/cancel", {}, format="json"),
    ):
        assert response.status_code == 404 and response.json()["error_code"] == "NOT_FOUND"


# -- read -----------------------------------------------------------------------------------------


def test_a_finished_backtest_answers_every_spec_field_and_its_trades_page_by_page(
    operator_client: Any, provider_stub: Any
) -> None:
    provider_stub("databento")
    backtest_id = _post(operator_client, strategy_body()).json()["id"]
    run_job(backtest_id)
    body = operator_client.get(f"/api/backtests/{backtest_id}").json()
    assert set(body) == DETAIL_KEYS and set(body["config"]) == CONFIG_KEYS
    assert body["status"] == "SUCCEEDED" and body["progress"] == 1.0 and body["error"] is None
    assert body["config"]["start"] == "2025-12-15T14:00:00Z" and body["config"]["end"] == "2025-12-16T14:00:00Z"
    assert body["config"]["initial_capital"] == "10000.00"
    assert body["config"]["fill_model"] == {"slippage_ticks": 1, "commission_per_contract": "0.85"}
    assert body["bars"] == 1380  # the window's one-minute bars (23 hours of trading)
    decided = sum(sum(codes.values()) for codes in body["decisions"].values())
    assert decided == body["bars"] and body["decisions"]["TRADE"]
    assert set(body["timings"]) == {"bars_ms", "engine_ms", "store_ms"}

    stored = Backtest.objects.get(pk=backtest_id).trades.count()
    assert stored >= 3
    seen: list[dict[str, Any]] = []
    cursor = None
    pages = 0
    while True:
        query = {"limit": 2} if cursor is None else {"limit": 2, "cursor": cursor}
        page = operator_client.get(f"/api/backtests/{backtest_id}/trades", query).json()
        assert set(page) == {"results", "next"} and len(page["results"]) <= 2
        seen.extend(page["results"])
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert len(seen) == stored and pages == -(-stored // 2)
    assert all(set(t) == TRADE_KEYS for t in seen)
    assert [t["entry_ts"] for t in seen] == sorted(t["entry_ts"] for t in seen)  # oldest first
    first = seen[0]
    assert first["side"] in ("LONG", "SHORT") and first["exit_reason"] in ("STOP", "SIGNAL", "END")
    assert isinstance(first["entry_price"], str) and Decimal(first["entry_price"]) % Decimal("0.25") == 0
    assert isinstance(first["pnl"], str) and isinstance(first["fees"], str)
    assert Decimal(first["fees"]) == Decimal("1.70")  # 0.85 a contract, in and out
    all_at_once = operator_client.get(f"/api/backtests/{backtest_id}/trades", {"limit": 1000}).json()
    assert all_at_once["results"] == seen and all_at_once["next"] is None


def test_trades_paging_arguments_are_checked(operator_client: Any) -> None:
    backtest_id = _post(operator_client, strategy_body()).json()["id"]
    response = operator_client.get(f"/api/backtests/{backtest_id}/trades", {"limit": 0, "cursor": "x"})
    assert response.status_code == 400 and set(response.json()["fields"]) == {"limit", "cursor"}


def test_the_list_filters_by_bot_and_status_newest_first(operator_client: Any) -> None:
    bot = BotFactory()
    window = {"start": START.isoformat(), "end": END.isoformat()}
    of_bot = _post(operator_client, {"bot_id": bot.pk, **window}).json()["id"]
    other = _post(operator_client, strategy_body()).json()["id"]
    cancelled = _post(operator_client, strategy_body()).json()["id"]
    operator_client.post(f"/api/backtests/{cancelled}/cancel", {}, format="json")
    everything = operator_client.get("/api/backtests").json()
    assert [b["id"] for b in everything["results"]] == [cancelled, other, of_bot] and everything["count"] == 3
    assert "equity_curve" not in everything["results"][0]  # the list stays small: the detail has it
    by_bot = operator_client.get("/api/backtests", {"bot_id": bot.pk}).json()["results"]
    assert [b["id"] for b in by_bot] == [of_bot] and by_bot[0]["config"]["config_version"] == bot.config_version
    queued = operator_client.get("/api/backtests", {"status": "QUEUED"}).json()["results"]
    assert [b["id"] for b in queued] == [other, of_bot]
    assert operator_client.get("/api/backtests", {"status": "DONE"}).status_code == 400
    page = operator_client.get("/api/backtests", {"limit": 1, "offset": 1}).json()
    assert [b["id"] for b in page["results"]] == [other] and page["next"]


# -- cancel ---------------------------------------------------------------------------------------


def test_cancelling_a_queued_backtest_cancels_its_job_and_nothing_runs(operator_client: Any) -> None:
    created = _post(operator_client, strategy_body()).json()
    response = operator_client.post(f"/api/backtests/{created['id']}/cancel", {"reason": "wrong window"}, format="json")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "CANCELLED" and body["finished_at"]
    assert Job.objects.get(pk=created["job_id"]).status == "CANCELLED"
    assert run_job(created["id"]) is None  # its message, if delivered, finds nothing to claim
    audit = AuditEvent.objects.get(action="backtest.cancel", target_id=str(created["id"]))
    assert audit.before == {"status": "QUEUED"} and audit.after == {"status": "CANCELLED"}
    assert audit.reason == "wrong window"
    again = operator_client.post(f"/api/backtests/{created['id']}/cancel", {}, format="json")
    assert again.status_code == 409 and again.json()["error_code"] == "BACKTEST_NOT_CANCELLABLE"


def test_a_finished_backtest_cannot_be_cancelled(operator_client: Any, provider_stub: Any) -> None:
    provider_stub("databento")
    backtest_id = _post(operator_client, strategy_body()).json()["id"]
    run_job(backtest_id)
    response = operator_client.post(f"/api/backtests/{backtest_id}/cancel", {}, format="json")
    assert response.status_code == 409 and "SUCCEEDED" in response.json()["message"]
    assert Backtest.objects.get(pk=backtest_id).status == "SUCCEEDED"


def test_cancelling_the_job_on_the_jobs_page_cancels_the_backtest(operator_client: Any) -> None:
    created = _post(operator_client, strategy_body()).json()
    response = operator_client.post(f"/api/jobs/{created['job_id']}/cancel", {"reason": "not needed"}, format="json")
    assert response.status_code == 200, response.json()
    assert Backtest.objects.get(pk=created["id"]).status == "CANCELLED"


def test_the_schema_documents_the_backtests_api(operator_client: Any) -> None:
    schema = operator_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    assert {"post", "get"} <= set(paths["/api/backtests"]) and "get" in paths["/api/backtests/{backtest_id}"]
    assert "/api/backtests/{backtest_id}/trades" in paths and "/api/backtests/{backtest_id}/cancel" in paths


def test_a_bot_deleted_later_keeps_its_backtests(operator_client: Any) -> None:
    bot = BotFactory()
    backtest_id = _post(operator_client, {"bot_id": bot.pk, "start": START.isoformat(), "end": END.isoformat()}).json()[
        "id"
    ]
    Bot.objects.filter(pk=bot.pk).delete()
    backtest = Backtest.objects.get(pk=backtest_id)
    assert backtest.bot_id is None and backtest.config_version == 1
