"""GET|POST /api/bots/, GET|PATCH /api/bots/{id}: validation that names each bad field, a
versioned config, lifecycle fields out of reach, roles."""

from __future__ import annotations

from typing import Any

import pytest

from apps.bots.models import Bot, BotConfigVersion
from apps.runners.models import Runner
from apps.telemetry.models import AuditEvent
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db

NEW_BOT = {"name": "MES trend", "strategy_key": "trend_following", "instrument": "MES", "timeframe": "5m"}


def _fields(response: Any) -> dict[str, Any]:
    body = response.json()
    assert response.status_code == 400 and body["error_code"] == "VALIDATION_ERROR", body
    assert body["trace_id"] and body["suggested_fix"]
    return body["fields"]


def test_it_creates_a_lab_bot_with_default_parameters_and_config_version_1(token_client: Any) -> None:
    response = token_client("operator").post("/api/bots/", NEW_BOT, format="json")
    body = response.json()
    assert response.status_code == 201, body
    assert body["stage"] == "LAB" and body["autonomy_tier"] == "LOCKED" and body["killed"] is False
    assert body["parameters"] == {"fast_period": 20, "slow_period": 50, "atr_period": 14, "stop_atr_multiple": 2.0}
    assert (body["venue"], body["data_provider"], body["config_version"]) == ("sim", "databento", 1)
    assert body["runner_status"] is None
    version = BotConfigVersion.objects.get(bot_id=body["id"])
    assert (version.version, version.parameters, version.changed_by) == (1, body["parameters"], "operator-bot")
    created = AuditEvent.objects.get(action="bot.create")
    assert created.target_id == str(body["id"]) and created.after["stage"] == "LAB"
    assert created.trace_id == response["X-Trace-Id"]


def test_it_names_every_bad_field_on_create(token_client: Any) -> None:
    response = token_client("operator").post(
        "/api/bots/",
        {"name": "x", "strategy_key": "martingale", "instrument": "ZZ", "timeframe": "2m", "venue": "tradovate"},
        format="json",
    )
    fields = _fields(response)
    assert set(fields) == {"strategy_key", "instrument", "timeframe", "broker_account"}
    assert "trend_following" in fields["strategy_key"][0] and "MES" in fields["instrument"][0]
    assert "tradovate" in fields["broker_account"][0]
    assert not Bot.objects.exists()


def test_it_names_each_bad_parameter_and_risk_limit(token_client: Any) -> None:
    response = token_client("operator").post(
        "/api/bots/",
        {
            **NEW_BOT,
            "parameters": {"fast_period": 60, "slow_period": 50, "lookback_bars": 3},
            "risk_limits": {"max_daily_loss": -5, "max_position_contracts": 1.5, "max_leverage": 2},
        },
        format="json",
    )
    fields = _fields(response)
    assert set(fields["parameters"]) == {"lookback_bars"}  # cross-parameter rules wait for known names
    assert set(fields["risk_limits"]) == {"max_daily_loss", "max_position_contracts", "max_leverage"}

    fields = _fields(
        token_client("operator", username="op2").post(
            "/api/bots/", {**NEW_BOT, "parameters": {"fast_period": 60, "slow_period": 50}}, format="json"
        )
    )
    assert fields == {"parameters": {"fast_period": ["must be smaller than slow_period."]}}


def test_it_requires_the_core_fields_and_refuses_a_duplicate_name(token_client: Any) -> None:
    operator = token_client("operator")
    assert set(_fields(operator.post("/api/bots/", {}, format="json"))) == {"name", "strategy_key", "instrument"}
    BotFactory(name="MES trend")
    assert (
        "already exists"
        in _fields(operator.post("/api/bots/", {**NEW_BOT, "name": "mes TREND"}, format="json"))["name"][0]
    )


def test_it_refuses_lifecycle_fields_on_create(token_client: Any) -> None:
    fields = _fields(
        token_client("operator").post(
            "/api/bots/", {**NEW_BOT, "stage": "LIVE", "killed": True, "colour": "red"}, format="json"
        )
    )
    assert set(fields) == {"stage", "killed", "colour"} and "LAB" in fields["stage"][0]
    assert not Bot.objects.exists()


def test_it_refuses_lifecycle_fields_on_patch_and_changes_nothing(token_client: Any) -> None:
    bot = BotFactory()
    before = Bot.objects.filter(pk=bot.pk).values().get()
    response = token_client("operator").patch(
        f"/api/bots/{bot.pk}",
        {"stage": "LIVE", "autonomy_tier": "LIVE_FULL", "killed": False, "config_version": 9, "name": "renamed"},
        format="json",
    )
    fields = _fields(response)
    assert set(fields) == {"stage", "autonomy_tier", "killed", "config_version"}
    assert "promote" in fields["stage"][0]
    assert Bot.objects.filter(pk=bot.pk).values().get() == before


def test_the_config_version_moves_only_when_parameters_or_limits_change(token_client: Any) -> None:
    operator = token_client("operator")
    bot_id = operator.post("/api/bots/", NEW_BOT, format="json").json()["id"]
    v1_parameters = BotConfigVersion.objects.get(bot_id=bot_id, version=1).parameters

    renamed = operator.patch(f"/api/bots/{bot_id}", {"name": "MES trend 2", "timeframe": "15m"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["config_version"] == 1

    tuned = operator.patch(
        f"/api/bots/{bot_id}", {"parameters": {"fast_period": 10}, "reason": "faster entries"}, format="json"
    ).json()
    assert tuned["config_version"] == 2 and tuned["parameters"]["fast_period"] == 10
    assert tuned["parameters"]["slow_period"] == 50  # a merge, not a replacement

    limited = operator.patch(f"/api/bots/{bot_id}", {"risk_limits": {"max_daily_loss": 200}}, format="json").json()
    assert limited["config_version"] == 3 and limited["risk_limits"] == {"max_daily_loss": 200.0}

    same = operator.patch(f"/api/bots/{bot_id}", {"parameters": {"fast_period": 10}}, format="json").json()
    assert same["config_version"] == 3

    versions = {v.version: v for v in BotConfigVersion.objects.filter(bot_id=bot_id)}
    assert set(versions) == {1, 2, 3}
    assert versions[1].parameters == v1_parameters and versions[1].parameters["fast_period"] == 20  # kept
    assert versions[2].parameters["fast_period"] == 10 and versions[2].reason == "faster entries"
    assert versions[2].risk_limits == {} and versions[3].risk_limits == {"max_daily_loss": 200.0}
    detail = operator.get(f"/api/bots/{bot_id}").json()
    assert [v["version"] for v in detail["config_versions"]] == [3, 2, 1]

    update = AuditEvent.objects.filter(action="bot.update").order_by("id")[1]
    assert update.before == {"parameters": v1_parameters, "config_version": 1}
    assert update.after["config_version"] == 2 and update.reason == "faster entries"


def test_a_null_resets_a_parameter_and_removes_a_limit(token_client: Any) -> None:
    bot = BotFactory(parameters={"fast_period": 5, "slow_period": 50, "atr_period": 14, "stop_atr_multiple": 2.0})
    body = (
        token_client("operator")
        .patch(
            f"/api/bots/{bot.pk}",
            {"parameters": {"fast_period": None}, "risk_limits": {"max_orders_per_day": None}},
            format="json",
        )
        .json()
    )
    assert body["parameters"]["fast_period"] == 20
    assert "max_orders_per_day" not in body["risk_limits"] and body["config_version"] == 2


def test_a_new_strategy_starts_from_its_own_defaults(token_client: Any) -> None:
    bot = BotFactory()
    body = (
        token_client("operator")
        .patch(f"/api/bots/{bot.pk}", {"strategy_key": "breakout", "parameters": {"lookback_bars": 40}}, format="json")
        .json()
    )
    assert body["parameters"] == {
        "lookback_bars": 40,
        "breakout_buffer_ticks": 2,
        "atr_period": 14,
        "stop_atr_multiple": 1.5,
    }


def test_it_names_bad_fields_on_patch(token_client: Any) -> None:
    bot = BotFactory()
    fields = _fields(
        token_client("operator").patch(
            f"/api/bots/{bot.pk}",
            {"timeframe": "2h", "venue": "ironbeam", "parameters": {"fast_period": "fast"}},
            format="json",
        )
    )
    assert set(fields) == {"timeframe", "broker_account", "parameters"}
    assert fields["parameters"] == {"fast_period": ["must be a number (int)."]}


def test_a_live_bot_keeps_what_and_where_it_trades_and_every_limit(token_client: Any) -> None:
    bot = BotFactory(live_ready=True, stage=Bot.Stage.LIVE)
    operator = token_client("operator")
    moved = operator.patch(f"/api/bots/{bot.pk}", {"venue": "ironbeam"}, format="json")
    assert moved.status_code == 409 and moved.json()["error_code"] == "BOT_CHANGE_REFUSED"
    assert "demote" in moved.json()["suggested_fix"].lower()
    unlimited = operator.patch(f"/api/bots/{bot.pk}", {"risk_limits": {"max_daily_loss": None}}, format="json")
    assert unlimited.status_code == 409 and "max_daily_loss" in unlimited.json()["message"]
    tightened = operator.patch(f"/api/bots/{bot.pk}", {"risk_limits": {"max_daily_loss": 100}}, format="json")
    assert tightened.status_code == 200 and tightened.json()["config_version"] == 2


def test_it_lists_bots_paginated_in_a_stable_order_with_filters(token_client: Any) -> None:
    for name in ("charlie", "alpha", "bravo"):
        BotFactory(name=name)
    Bot.objects.filter(name="bravo").update(stage=Bot.Stage.PAPER, killed=True)
    viewer = token_client("viewer")
    page = viewer.get("/api/bots/?limit=2").json()
    assert page["count"] == 3 and [b["name"] for b in page["results"]] == ["alpha", "bravo"]
    assert [b["name"] for b in viewer.get("/api/bots/?limit=2&offset=2").json()["results"]] == ["charlie"]
    assert [b["name"] for b in viewer.get("/api/bots/?stage=PAPER").json()["results"]] == ["bravo"]
    assert [b["name"] for b in viewer.get("/api/bots/?killed=false").json()["results"]] == ["alpha", "charlie"]
    assert set(_fields(viewer.get("/api/bots/?stage=SIDEWAYS"))) == {"stage"}


def test_it_shows_the_runner_status_and_the_kill_latch(token_client: Any) -> None:
    bot = BotFactory()
    Runner.objects.create(bot=bot, status=Runner.Status.RUNNING)
    body = token_client("viewer").get(f"/api/bots/{bot.pk}").json()
    assert body["runner_status"] == "RUNNING" and body["killed"] is False and body["config_version"] == 1
    listed = token_client("viewer", username="v2").get("/api/bots/").json()["results"][0]
    assert listed["runner_status"] == "RUNNING"


def test_roles_viewer_reads_operator_writes_anonymous_is_401(token_client: Any, api_client: Any) -> None:
    bot = BotFactory()
    viewer = token_client("viewer")
    assert viewer.get("/api/bots/").status_code == 200
    assert viewer.get(f"/api/bots/{bot.pk}").status_code == 200
    refused = viewer.post("/api/bots/", NEW_BOT, format="json")
    assert refused.status_code == 403 and refused.json()["error_code"] == "PERMISSION_DENIED"
    assert viewer.patch(f"/api/bots/{bot.pk}", {"name": "x"}, format="json").status_code == 403
    anonymous = api_client.get("/api/bots/")
    assert anonymous.status_code == 401 and anonymous.json()["error_code"] == "AUTHENTICATION_REQUIRED"
    assert api_client.post("/api/bots/", NEW_BOT, format="json").status_code == 401
    assert not Bot.objects.filter(name="MES trend").exists()


def test_an_unknown_bot_is_404_and_an_unknown_method_is_405(token_client: Any) -> None:
    operator = token_client("operator")
    for response in (
        operator.get("/api/bots/999999"),
        operator.patch("/api/bots/999999", {"name": "x"}, format="json"),
        operator.post("/api/bots/999999/promote", {"to_stage": "PAPER", "reason": "r"}, format="json"),
    ):
        assert response.status_code == 404 and response.json()["error_code"] == "NOT_FOUND"
    put = operator.put("/api/bots/", {}, format="json")
    assert put.status_code == 405 and put.json()["error_code"] == "METHOD_NOT_ALLOWED"
    assert {"GET", "POST"} <= {m.strip() for m in put["Allow"].split(",")}


def test_the_openapi_schema_documents_each_operation(token_client: Any) -> None:
    schema = token_client("viewer").get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = schema["paths"]
    assert {"get", "post"} <= set(paths["/api/bots"]) and {"get", "patch"} <= set(paths["/api/bots/{bot_id}"])
    assert "post" in paths["/api/bots/{bot_id}/promote"] and "post" in paths["/api/bots/starter-pack"]
