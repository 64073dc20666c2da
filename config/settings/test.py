"""The test suite: real PostgreSQL and Redis (embedded or from the URLs), fast hashing."""

from __future__ import annotations

from config.settings.base import *  # noqa: F403
from config.settings.base import embedded, env

SECRET_KEY = "test-only-not-a-secret-" + "x" * 40
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Unit tests of services run tasks inline; the tests of workers and beat start real processes
# against the real broker and switch this off (tests/conftest.py: `real_celery`).
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# The embedded Redis may be shared with a running `make run` (database 0): tests use database 15.
if not env.str("REDIS_URL", default=""):
    REDIS_URL = embedded.redis_url(db=15)
    CELERY_BROKER_URL = embedded.celery_broker_url(REDIS_URL)

# A fixed, test-only key-encryption key, and short provider timeouts (the stubs' "timeout" mode
# sleeps longer than this).
CREDENTIALS_ENCRYPTION_KEY = ["9ODPLn7ptPxlQoJf5V6uT9pXxP5n8Ejm0y6d3C0VvQo="]
INTEGRATIONS_HTTP_TIMEOUT_SECONDS = 0.5
INTEGRATIONS_USAGE_WRITES = "sync"
STATUS_SNAPSHOT_SECONDS = 0  # tests that change state and read it back; snapshots have their own test

# Static files come from the source folders (finders); no collected copy exists in tests.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
