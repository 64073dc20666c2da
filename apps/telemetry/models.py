from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """Who did what to which thing, when, from where, under which trace. Append-only: the model
    refuses updates and deletes, and a database trigger (migration 0002) refuses them from SQL."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    # No FK constraint: deleting a user must never rewrite or block the audit trail.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_label = models.CharField(max_length=150, help_text="Username at the time, or system:<component>.")
    action = models.CharField(max_length=100, db_index=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    trace_id = models.CharField(max_length=64, db_index=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["target_type", "target_id", "-created_at"])]

    def __str__(self) -> str:
        target = f"{self.target_type}:{self.target_id}"
        return f"{self.created_at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action} {target}"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None and not self._state.adding:
            raise PermissionError("audit events are append-only")
        super().save(*args, **kwargs)  # type: ignore[arg-type]

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise PermissionError("audit events are append-only")


class ComponentHeartbeat(models.Model):
    """The latest sign of life of one process: a Celery worker, beat, or the queue probe.
    One row per (component, instance), upserted; /api/system/status reads these."""

    class Component(models.TextChoices):
        WORKER = "worker", "Celery worker"
        BEAT = "beat", "Celery beat"
        QUEUE = "queue", "Queue probe (beat → broker → worker)"

    component = models.CharField(max_length=20, choices=Component.choices)
    instance = models.CharField(max_length=200, help_text="Celery node name or host:pid.")
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    stopped_at = models.DateTimeField(null=True, blank=True, help_text="Set on a clean shutdown.")
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["component", "instance"], name="heartbeat_unique_component_instance")
        ]
        ordering = ["component", "instance"]

    def __str__(self) -> str:
        return f"{self.component}:{self.instance} @ {self.last_seen_at:%H:%M:%S}"


class IntegrationUsageEvent(models.Model):
    """Proof of use: one row per call to an external provider, success or failure (SPEC §1.4)."""

    class Status(models.TextChoices):
        OK = "ok", "ok"
        ERROR = "error", "error"

    provider = models.CharField(max_length=40)
    operation = models.CharField(max_length=60)
    status = models.CharField(max_length=10, choices=Status.choices)
    latency_ms = models.FloatField(null=True, blank=True)
    # A plain id, not a FK: bots live in a higher app, and events must outlive a deleted bot.
    bot_id = models.BigIntegerField(null=True, blank=True)
    trace_id = models.CharField(max_length=64)
    error_code = models.CharField(max_length=60, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The Connections tab and status: latest per provider, counts per provider over 24 h.
            models.Index(fields=["provider", "-created_at"], name="usage_provider_created"),
            models.Index(fields=["provider", "operation", "-created_at"], name="usage_provider_op"),
            models.Index(fields=["bot_id", "-created_at"], name="usage_bot_created"),
        ]

    def __str__(self) -> str:
        return f"{self.provider}.{self.operation} {self.status} {self.latency_ms} ms"


class IntegrationUsageRollup(models.Model):
    """Usage events counted per provider in 5-minute and in 1-hour buckets, kept by a database
    trigger on IntegrationUsageEvent inserts (migration 0007). A 24 h count then reads ≤ 24 hourly
    rows, ≤ 11 five-minute rows and ≤ 5 minutes of raw events per provider, whatever the volume.
    Derived data: never written by application code."""

    FINE_SECONDS = 300
    COARSE_SECONDS = 3600

    provider = models.CharField(max_length=40)
    granularity = models.PositiveIntegerField(help_text="Bucket width in seconds (300 or 3600).")
    bucket_start = models.DateTimeField()
    calls = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            # INCLUDE calls: the 24 h sum is an index-only scan.
            models.UniqueConstraint(
                fields=["provider", "granularity", "bucket_start"],
                include=["calls"],
                name="usage_rollup_unique_bucket",
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider} {self.granularity}s {self.bucket_start:%Y-%m-%d %H:%M} {self.calls}"


class DecisionTrace(models.Model):
    """Why a bot traded or did not (SPEC §1.3): exactly one per tick. Each pipeline stage that ran
    is recorded in `stages` (name, outcome, reason code, latency); a stage that stopped the tick
    names itself in `stopped_at` with its `reason_code`. `fingerprint` digests the inputs (bars,
    parameters, code version) so the tick can be replayed and compared. Written once, by
    the tick that it explains; it outlives the bot (plain ids, not foreign keys)."""

    class Outcome(models.TextChoices):
        TRADE = "TRADE", "Traded"
        NO_TRADE = "NO_TRADE", "Did not trade"

    bot_id = models.BigIntegerField()
    runner_id = models.BigIntegerField(null=True, blank=True)
    job_id = models.BigIntegerField(null=True, blank=True, help_text="The tick job this trace closed.")
    generation = models.PositiveIntegerField(help_text="The runner generation the tick ran under.")
    mode = models.CharField(max_length=4, help_text="SIM or LIVE.")
    bar_ts = models.DateTimeField(help_text="The close of the bar the tick decided on (UTC).")
    replay = models.BooleanField(default=False, help_text="A forced tick with as_of (SIM only).")
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    stopped_at = models.CharField(max_length=20, blank=True, help_text="The stage that stopped the tick.")
    reason_code = models.CharField(max_length=60, blank=True)
    message = models.TextField(blank=True)
    decision = models.JSONField(null=True, blank=True, help_text="action, reasons, features, stop.")
    risk = models.JSONField(null=True, blank=True, help_text="Every pre-trade check with its result.")
    stages = models.JSONField(default=list)
    order = models.JSONField(null=True, blank=True, help_text="The order and fills the tick produced.")
    config_version = models.PositiveIntegerField()
    fingerprint = models.CharField(max_length=64, blank=True)
    inputs = models.JSONField(default=dict, help_text="Bars window, parameters, code version.")
    latency_ms = models.FloatField()
    trace_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A runner ticks once per bar (SPEC §6); replays are extra and marked.
            models.UniqueConstraint(
                fields=["runner_id", "bar_ts"], condition=models.Q(replay=False), name="trace_one_per_runner_bar"
            ),
        ]
        indexes = [
            models.Index(fields=["bot_id", "-created_at"], name="trace_bot_created"),
            models.Index(fields=["bot_id", "outcome", "-created_at"], name="trace_bot_outcome"),
        ]

    def __str__(self) -> str:
        why = f" at {self.stopped_at}: {self.reason_code}" if self.outcome == self.Outcome.NO_TRADE else ""
        return f"bot {self.bot_id} {self.bar_ts:%Y-%m-%d %H:%M} {self.outcome}{why}"


class Alert(models.Model):
    """Something a person must see (SPEC §11): raised by any app through
    apps.telemetry.services.alert_raise, listed and acknowledged with a note on the Alerts page and
    /api/alerts. A CRITICAL alert is also an outbox row for SMS: apps.integrations.alert_sms picks
    it up (sms_* fields), claims it with a conditional UPDATE and sends it once."""

    class Severity(models.TextChoices):
        INFO = "INFO", "Info"
        WARNING = "WARNING", "Warning"
        CRITICAL = "CRITICAL", "Critical"

    class Status(models.TextChoices):
        OPEN = "OPEN", "Open"
        ACKED = "ACKED", "Acknowledged"

    class SmsStatus(models.TextChoices):
        NOT_APPLICABLE = "NOT_APPLICABLE", "Not sent by SMS (not critical)"
        PENDING = "PENDING", "Waiting to be sent"
        THROTTLED = "THROTTLED", "Waiting: too many SMS sent recently"
        SENDING = "SENDING", "Being sent"
        RETRYING = "RETRYING", "Send failed, will retry"
        SENT = "SENT", "Sent"
        FAILED = "FAILED", "Send failed, no more retries"
        NOT_CONFIGURED = "NOT_CONFIGURED", "Not sent: SMS is not configured"
        UNKNOWN = "UNKNOWN", "Unknown: the sender stopped mid-send"

    severity = models.CharField(max_length=8, choices=Severity.choices)
    code = models.CharField(max_length=60)
    # A plain id, not a FK: bots live in a higher app, and alerts must outlive a deleted bot.
    bot_id = models.BigIntegerField(null=True, blank=True)
    message = models.TextField()
    suggested_fix = models.TextField(blank=True)
    trace_id = models.CharField(max_length=64)
    dedupe_key = models.CharField(
        max_length=200, help_text="The condition raised; at most one OPEN alert per key (repeats count)."
    )
    created_at = models.DateTimeField(db_index=True)
    last_seen_at = models.DateTimeField()
    repeat_count = models.PositiveIntegerField(default=1, help_text="How many times the condition was raised.")
    status = models.CharField(max_length=5, choices=Status.choices, default=Status.OPEN)
    acked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    acked_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)
    sms_status = models.CharField(max_length=16, choices=SmsStatus.choices, default=SmsStatus.NOT_APPLICABLE)
    sms_error = models.TextField(blank=True)
    sms_attempts = models.PositiveSmallIntegerField(default=0)
    sms_next_attempt_at = models.DateTimeField(null=True, blank=True)
    sms_claimed_at = models.DateTimeField(null=True, blank=True)
    sms_sent_at = models.DateTimeField(null=True, blank=True)
    sms_sent_to = models.JSONField(default=list, blank=True, help_text="Numbers already sent to (not resent).")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dedupe_key"], condition=models.Q(status="OPEN"), name="alert_one_open_per_dedupe_key"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="alert_status_created"),
            models.Index(
                fields=["sms_next_attempt_at"],
                condition=models.Q(sms_status__in=["PENDING", "THROTTLED", "RETRYING", "SENDING"]),
                name="alert_sms_outbox",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.severity} {self.code} ({self.status})"
