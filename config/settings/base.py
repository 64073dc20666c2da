"""Every setting is declared here; local/test/production differ only in a few overrides and,
in production, through the environment."""

from __future__ import annotations

from config import embedded
from config.env import BASE_DIR, env, env_bool

# GENERAL
# ------------------------------------------------------------------------------
DEBUG = env_bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
ALLOWED_HOSTS: list[str] = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = False
USE_TZ = True
VAR_DIR = embedded.var_dir()

# DATABASES
# https://docs.djangoproject.com/en/5.2/ref/settings/#databases
# ------------------------------------------------------------------------------
# DATABASE_URL wins; unset, the embedded PostgreSQL under var/ (config/embedded.py).
DATABASES = {"default": env.db("DATABASE_URL") if env.str("DATABASE_URL", default="") else embedded.postgres_settings()}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# REDIS
# ------------------------------------------------------------------------------
# REDIS_URL wins; unset, the embedded redis-server under var/ (unix socket).
REDIS_URL = env.str("REDIS_URL", default="") or embedded.redis_url()
CELERY_BROKER_URL = embedded.celery_broker_url(REDIS_URL)

# URLS
# ------------------------------------------------------------------------------
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

# APPS
# ------------------------------------------------------------------------------
DJANGO_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.admin",
]
THIRD_PARTY_APPS = [
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files: /api/docs/ works offline
    "django_htmx",
    "template_partials",
    "django_celery_beat",
]
LOCAL_APPS = [
    "apps.core",
    "apps.telemetry",
    "apps.accounts",
    "apps.integrations",
    "apps.market",
    "apps.trading",
    "apps.backtests",
    "apps.bots",
    "apps.strategylab",
    "apps.runners",
]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

# AUTHENTICATION
# ------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# MIDDLEWARE
# ------------------------------------------------------------------------------
MIDDLEWARE = [
    # First: every response, including errors raised by later middleware, carries X-Trace-Id.
    "apps.core.middleware.TraceIdMiddleware",
    "apps.core.middleware.ApiErrorEnvelopeMiddleware",
    # Outside /api/: htmx failures become an error fragment, signed-out htmx requests HX-Redirect to
    # sign-in, empty error responses become TradeOps pages (apps/core/pages.py).
    "apps.core.middleware.ObservatoryErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]
# Request bodies above this are refused with 413 before anything reads them.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)

# STATIC
# ------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# TEMPLATES
# ------------------------------------------------------------------------------
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.core.context_processors.trace_id",
                "apps.telemetry.context_processors.open_alerts",
            ],
        },
    }
]

# SECURITY
# ------------------------------------------------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from hx-headers, rendered server-side
CSRF_FAILURE_VIEW = "apps.core.views.csrf_failure"  # a TradeOps page / fragment / envelope, not Django's
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# ADMIN
# ------------------------------------------------------------------------------
ADMIN_URL = env.str("DJANGO_ADMIN_URL", default="admin/")

# TRADEOPS
# ------------------------------------------------------------------------------
# A worker or beat heartbeat older than this means the component is not alive.
HEARTBEAT_INTERVAL_SECONDS = env.int("HEARTBEAT_INTERVAL_SECONDS", default=15)
HEARTBEAT_STALE_AFTER_SECONDS = env.int("HEARTBEAT_STALE_AFTER_SECONDS", default=60)
# GET /metrics (apps/runners/metrics.py): the bearer token Prometheus sends; unset, the endpoint is off.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# The "recent" series (ticks, tick latency, provider calls) cover this many seconds.
METRICS_WINDOW_SECONDS = env.int("METRICS_WINDOW_SECONDS", default=300)

from config.settings.backtests import *  # noqa: E402,F403
from config.settings.celery import *  # noqa: E402,F403
from config.settings.drf import *  # noqa: E402,F403
from config.settings.integrations import *  # noqa: E402,F403
from config.settings.logging import *  # noqa: E402,F403
from config.settings.market import *  # noqa: E402,F403
from config.settings.strategylab import *  # noqa: E402,F403
from config.settings.trading import *  # noqa: E402,F403
