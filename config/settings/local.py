"""Development on one machine: `make run` and `python manage.py ...`."""

from __future__ import annotations

from config.settings.base import *  # noqa: F403
from config.settings.base import VAR_DIR, env_bool

# Off unless asked for (DJANGO_DEBUG=true): Django's debug pages list every URL and setting.
DEBUG = env_bool("DJANGO_DEBUG", default=False)
# A per-checkout key generated into var/ on first use: never committed, never shared.
_key_file = VAR_DIR / "secret_key"
if not SECRET_KEY:  # noqa: F405
    if not _key_file.exists():
        import secrets

        VAR_DIR.mkdir(parents=True, exist_ok=True)
        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()

# The credential store's key-encryption key: generated into var/ for this development checkout
# only (never committed). Production must set CREDENTIALS_ENCRYPTION_KEY.
_kek_file = VAR_DIR / "credentials.key"
if not CREDENTIALS_ENCRYPTION_KEY:  # noqa: F405
    if not _kek_file.exists():
        from cryptography.fernet import Fernet

        VAR_DIR.mkdir(parents=True, exist_ok=True)
        _kek_file.write_text(Fernet.generate_key().decode())
        _kek_file.chmod(0o600)
    CREDENTIALS_ENCRYPTION_KEY = [_kek_file.read_text().strip()]

# Serve static files straight from the source folders (no collectstatic step in development), with
# DEBUG on or off: WhiteNoise finds them through the finders (scanned once at start-up unless DEBUG).
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
