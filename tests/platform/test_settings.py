"""Production refuses to start half-configured and is clean under `check --deploy`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

ROOT = Path(__file__).resolve().parents[2]


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_") and k not in PRODUCTION_ENV}
    base["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    base.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120
    )


PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": "a-long-random-production-secret-" + "Zq8#" * 12,
    "DJANGO_ALLOWED_HOSTS": "tradeops.example.com",
    "DATABASE_URL": "postgres://tradeops@db.example.com:5432/tradeops",
    "REDIS_URL": "redis://redis.example.com:6379/0",
}


@pytest.mark.parametrize("missing", list(PRODUCTION_ENV))
def test_production_refuses_to_start_without(missing: str) -> None:
    env = dict(PRODUCTION_ENV)
    del env[missing]
    result = _manage("check", **env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and missing in result.stderr


def test_production_is_clean_under_check_deploy() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_secret_file_variables_are_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-a-file-" + "s" * 50)
    result = _manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        **{**PRODUCTION_ENV, "DJANGO_SECRET_KEY": ""},
        DJANGO_SECRET_KEY_FILE=str(secret),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == secret.read_text()


@pytest.mark.parametrize(("raw", "expected"), [("true", True), ("0", False), ("YES", True), ("off", False)])
def test_booleans_parse(monkeypatch: pytest.MonkeyPatch, raw: str, expected: bool) -> None:
    from config.env import env_bool

    monkeypatch.setenv("TRADEOPS_TEST_FLAG", raw)
    assert env_bool("TRADEOPS_TEST_FLAG", default=not expected) is expected


def test_junk_booleans_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from config.env import env_bool

    monkeypatch.setenv("TRADEOPS_TEST_FLAG", "ture")
    with pytest.raises(ImproperlyConfigured, match="TRADEOPS_TEST_FLAG"):
        env_bool("TRADEOPS_TEST_FLAG", default=False)


def _local_debug(**env: str) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    base.update(DJANGO_SETTINGS_MODULE="config.settings.local", **env)
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)",
        ],
        cwd=ROOT,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_make_run_s_settings_have_debug_off_unless_asked_for() -> None:
    assert _local_debug() == "False"
    assert _local_debug(DJANGO_DEBUG="true") == "True"
