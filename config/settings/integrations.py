"""Integrations: provider HTTP and the encrypted credential store. Provider keys themselves are
NOT settings: they are resolved at call time from the environment, then the store."""

from __future__ import annotations

from config.env import env, env_bool

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
# The network path of every provider call (apps/integrations/http.py). Unset: direct, certifi's CAs,
# and the process environment is ignored (HTTP(S)_PROXY, SSL_CERT_FILE, .netrc).
# INTEGRATIONS_PROXY_URL: http://[user:pass@]host:port; every provider call goes through it (https by CONNECT).
# INTEGRATIONS_CA_BUNDLE: a PEM file (or a c_rehash'd directory) of CAs to trust INSTEAD of the default
#   ones, e.g. a TLS-inspecting firewall's CA plus the public roots.
# INTEGRATIONS_TRUST_ENV: true takes the proxy and CAs from the environment as curl would (HTTPS_PROXY,
#   NO_PROXY, SSL_CERT_FILE, SSL_CERT_DIR); the two settings above still win when set.
# A bundle that cannot be loaded or a malformed proxy URL stops startup (check integrations.E001) and every
# call (INTEGRATION_NETWORK_CONFIG_INVALID); nothing is sent around it.
INTEGRATIONS_PROXY_URL = env.str("INTEGRATIONS_PROXY_URL", default="")
INTEGRATIONS_CA_BUNDLE = env.str("INTEGRATIONS_CA_BUNDLE", default="")
INTEGRATIONS_TRUST_ENV = env_bool("INTEGRATIONS_TRUST_ENV", default=False)
# SMS for CRITICAL alerts (apps/integrations/alert_sms.py), through Twilio when it is configured.
# ALERT_SMS_TO: comma-separated E.164 numbers (+15551234567,+447700900123). Empty: CRITICAL alerts are
# stored and shown, and each says on the Alerts page that SMS is not configured.
ALERT_SMS_TO: list[str] = [n.strip() for n in env.list("ALERT_SMS_TO", default=[]) if n.strip()]
# At most this many alerts are texted per window; the others wait (THROTTLED), they are not dropped.
ALERT_SMS_MAX_PER_WINDOW = env.int("ALERT_SMS_MAX_PER_WINDOW", default=5)
ALERT_SMS_WINDOW_SECONDS = env.int("ALERT_SMS_WINDOW_SECONDS", default=600)
# A failed send is retried, at most this many attempts in all, after 1, 2, 4, ... × the base delay.
ALERT_SMS_MAX_ATTEMPTS = env.int("ALERT_SMS_MAX_ATTEMPTS", default=3)
ALERT_SMS_RETRY_SECONDS = env.int("ALERT_SMS_RETRY_SECONDS", default=60)
# A claim older than this whose sender never reported back: it may or may not have gone (UNKNOWN).
ALERT_SMS_SENDING_STALE_SECONDS = env.int("ALERT_SMS_SENDING_STALE_SECONDS", default=300)
