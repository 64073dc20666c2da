"""Benchmark settings: the local configuration on its own database (tradeops_bench), quiet logs."""

from __future__ import annotations

from config.settings.local import *  # noqa: F403
from config.settings.local import DATABASES, LOGGING

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DATABASES["default"]["NAME"] = "tradeops_bench"
ROOT_URLCONF = "bench.urls"
LOGGING["root"]["level"] = "WARNING"
