"""The canonical integrations registry (SPEC §5), in code. Names here are part of the contract.

Every provider's base URL can be overridden with `<PROVIDER>_BASE_URL` (tests point it at a stub
on loopback). `client` is the dotted path of its ProviderClient, imported lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apps.integrations.base import ProviderClient


class Category(StrEnum):
    MARKET_DATA = "market_data"
    BROKER = "broker"
    AI = "ai"
    NOTIFICATIONS = "notifications"
    INFRA = "infra"


CATEGORY_LABELS = {
    Category.MARKET_DATA: "Market data",
    Category.BROKER: "Brokers",
    Category.AI: "AI",
    Category.NOTIFICATIONS: "Notifications",
    Category.INFRA: "Infrastructure",
}


@dataclass(frozen=True)
class ProviderSpec:
    provider: str
    label: str
    category: Category
    required_env_vars: tuple[str, ...]
    optional_env_vars: tuple[str, ...]
    supports_verify: bool
    docs_url: str
    used_for: str
    client: str
    default_base_url: str = ""
    # What each variable unlocks, for the Keys Needed checklist.
    var_help: dict[str, str] = field(default_factory=dict)

    @property
    def base_url_var(self) -> str:
        return f"{self.provider.upper()}_BASE_URL"

    @property
    def all_env_vars(self) -> tuple[str, ...]:
        return self.required_env_vars + self.optional_env_vars

    @property
    def optional(self) -> bool:
        """Missing, it is a warning, not a blocker (SPEC §5: AI and Twilio)."""
        return self.category in (Category.AI, Category.NOTIFICATIONS)

    def client_class(self) -> type[ProviderClient]:
        return _import(self.client)


@cache
def _import(dotted: str) -> type[ProviderClient]:
    module, _, name = dotted.rpartition(".")
    return getattr(import_module(module), name)


def _ai(provider: str, label: str, key: str, docs: str, base: str) -> ProviderSpec:
    return ProviderSpec(
        provider=provider,
        label=label,
        category=Category.AI,
        required_env_vars=(key,),
        optional_env_vars=(f"{provider.upper()}_MODEL", f"{provider.upper()}_BASE_URL"),
        supports_verify=True,
        docs_url=docs,
        used_for="narrative explanations of traces and lab reviews (never inside the tick decision)",
        client=f"apps.integrations.{provider}.client.{label.replace(' ', '')}Client",
        default_base_url=base,
        var_help={
            key: f"{label} narratives of decision traces and lab reviews",
            f"{provider.upper()}_MODEL": f"the {label} model to use (a sensible default otherwise)",
        },
    )


PROVIDERS: dict[str, ProviderSpec] = {
    spec.provider: spec
    for spec in (
        ProviderSpec(
            provider="databento",
            label="Databento",
            category=Category.MARKET_DATA,
            required_env_vars=("DATABENTO_API_KEY",),
            optional_env_vars=("DATABENTO_DATASET", "DATABENTO_BASE_URL"),
            supports_verify=True,
            docs_url="https://databento.com/docs/api-reference-historical",
            used_for="historical + recent bars for CME futures",
            client="apps.integrations.databento.client.DatabentoClient",
            default_base_url="https://hist.databento.com",
            var_help={
                "DATABENTO_API_KEY": "real CME futures bars for every bot's ticks and backtests",
                "DATABENTO_DATASET": "the dataset to read (default GLBX.MDP3, CME Globex)",
            },
        ),
        ProviderSpec(
            provider="polygon",
            label="Polygon (Massive)",
            category=Category.MARKET_DATA,
            required_env_vars=("POLYGON_API_KEY",),
            optional_env_vars=("POLYGON_BASE_URL",),
            supports_verify=True,
            docs_url="https://massive.com/docs/rest/quickstart",
            used_for="bars for the symbols it covers",
            client="apps.integrations.polygon.client.PolygonClient",
            default_base_url="https://api.massive.com",
            var_help={"POLYGON_API_KEY": "bars from Polygon/Massive for the symbols it covers"},
        ),
        ProviderSpec(
            provider="tradovate",
            label="Tradovate",
            category=Category.BROKER,
            required_env_vars=(
                "TRADOVATE_USERNAME",
                "TRADOVATE_PASSWORD",
                "TRADOVATE_APP_ID",
                "TRADOVATE_CID",
                "TRADOVATE_SECRET",
            ),
            optional_env_vars=(
                "TRADOVATE_ENV",
                "TRADOVATE_APP_VERSION",
                "TRADOVATE_DEVICE_ID",
                "TRADOVATE_BASE_URL",
            ),
            supports_verify=True,
            docs_url="https://partner.tradovate.com/api/rest-api-endpoints/authentication/access-token-request",
            used_for="live orders",
            client="apps.integrations.tradovate.client.TradovateClient",
            default_base_url="https://demo.tradovateapi.com/v1",
            var_help={
                "TRADOVATE_USERNAME": "live orders on Tradovate (the account's login name)",
                "TRADOVATE_PASSWORD": "live orders on Tradovate",
                "TRADOVATE_APP_ID": "the API application id registered with Tradovate",
                "TRADOVATE_CID": "the API key id (cid)",
                "TRADOVATE_SECRET": "the API key secret (sec)",
                "TRADOVATE_ENV": "demo (default) or live",
                "TRADOVATE_APP_VERSION": "the app version sent at sign-in (default 1.0)",
                "TRADOVATE_DEVICE_ID": "a stable device id (a UUID) sent at sign-in",
            },
        ),
        ProviderSpec(
            provider="ironbeam",
            label="Ironbeam",
            category=Category.BROKER,
            required_env_vars=("IRONBEAM_USERNAME", "IRONBEAM_PASSWORD", "IRONBEAM_API_KEY"),
            optional_env_vars=("IRONBEAM_ENV", "IRONBEAM_BASE_URL"),
            supports_verify=True,
            docs_url="https://docs.ironbeamapi.com/",
            used_for="live orders",
            client="apps.integrations.ironbeam.client.IronbeamClient",
            default_base_url="https://demo.ironbeamapi.com/v2",
            var_help={
                "IRONBEAM_USERNAME": "live orders on Ironbeam (the account id)",
                "IRONBEAM_PASSWORD": "live orders on Ironbeam",
                "IRONBEAM_API_KEY": "the Ironbeam API key",
                "IRONBEAM_ENV": "demo (default) or live",
            },
        ),
        _ai(
            "openai",
            "OpenAI",
            "OPENAI_API_KEY",
            "https://platform.openai.com/docs/api-reference/models/list",
            "https://api.openai.com/v1",
        ),
        _ai(
            "anthropic",
            "Anthropic",
            "ANTHROPIC_API_KEY",
            "https://docs.anthropic.com/en/api/models-list",
            "https://api.anthropic.com",
        ),
        _ai(
            "gemini",
            "Gemini",
            "GEMINI_API_KEY",
            "https://ai.google.dev/api/models",
            "https://generativelanguage.googleapis.com",
        ),
        _ai(
            "groq",
            "Groq",
            "GROQ_API_KEY",
            "https://console.groq.com/docs/models",
            "https://api.groq.com/openai/v1",
        ),
        _ai(
            "openrouter",
            "OpenRouter",
            "OPENROUTER_API_KEY",
            "https://openrouter.ai/docs/api/api-reference/api-keys/get-current-key",
            "https://openrouter.ai/api/v1",
        ),
        ProviderSpec(
            provider="twilio",
            label="Twilio",
            category=Category.NOTIFICATIONS,
            required_env_vars=("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM_NUMBER"),
            optional_env_vars=("TWILIO_BASE_URL",),
            supports_verify=True,
            docs_url="https://www.twilio.com/docs/iam/api/account",
            used_for="SMS alerts, SMS 2FA codes",
            client="apps.integrations.twilio.client.TwilioClient",
            default_base_url="https://api.twilio.com",
            var_help={
                "TWILIO_ACCOUNT_SID": "SMS alerts and SMS sign-in codes (the AC… account SID)",
                "TWILIO_AUTH_TOKEN": "SMS alerts and SMS sign-in codes",
                "TWILIO_FROM_NUMBER": "the Twilio number SMS are sent from (E.164)",
            },
        ),
        ProviderSpec(
            provider="redis",
            label="Redis",
            category=Category.INFRA,
            required_env_vars=("REDIS_URL",),
            optional_env_vars=(),
            supports_verify=True,
            docs_url="https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html",
            used_for="Celery broker, locks",
            client="apps.integrations.infra.RedisProbe",
            var_help={"REDIS_URL": "the task broker (the embedded Redis under var/ when unset)"},
        ),
        ProviderSpec(
            provider="postgres",
            label="PostgreSQL",
            category=Category.INFRA,
            required_env_vars=("DATABASE_URL",),
            optional_env_vars=(),
            supports_verify=True,
            docs_url="https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNSTRING",
            used_for="the source of truth",
            client="apps.integrations.infra.PostgresProbe",
            var_help={"DATABASE_URL": "the source of truth (the embedded PostgreSQL under var/ when unset)"},
        ),
    )
}

# Variables that have an embedded default in development: present even when unset.
EMBEDDED_DEFAULTS = frozenset({"REDIS_URL", "DATABASE_URL"})


def get(provider: str) -> ProviderSpec | None:
    return PROVIDERS.get(provider)


def all_env_vars() -> list[str]:
    return [name for spec in PROVIDERS.values() for name in spec.all_env_vars]
