"""Integrations: provider HTTP and the encrypted credential store. Provider keys themselves are
NOT settings: they are resolved at call time from the environment, then the store."""

from __future__ import annotations

from config.env import env

# Every outbound provider call has a timeout; a provider that hangs is an error, never a wait.
INTEGRATIONS_HTTP_TIMEOUT_SECONDS = env.float("INTEGRATIONS_HTTP_TIMEOUT_SECONDS", default=10.0)
# A verify or real call older than this no longer counts as "connected".
INTEGRATIONS_CONNECTED_FRESH_SECONDS = env.int("INTEGRATIONS_CONNECTED_FRESH_SECONDS", default=24 * 3600)
# Fernet key(s) for the credential store, newest first (see apps/integrations/crypto.py).
CREDENTIALS_ENCRYPTION_KEY: list[str] = env.list("CREDENTIALS_ENCRYPTION_KEY", default=[])
# Proof-of-use rows: "background" (a per-process writer thread; callers never wait on the
# database) or "sync" (inline; the test suite).
INTEGRATIONS_USAGE_WRITES = env.str("INTEGRATIONS_USAGE_WRITES", default="background")
# The status endpoints answer from a snapshot at most this old (shared through Redis); 0 disables.
STATUS_SNAPSHOT_SECONDS = env.float("STATUS_SNAPSHOT_SECONDS", default=1.0)
