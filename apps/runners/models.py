from __future__ import annotations

from django.db import models


class Runner(models.Model):
    """The runtime of one bot. `generation` is a fencing token: it increases on every start, and a
    worker acting for a runner must present the generation it was started with (a stale worker of
    a restarted runner can never act)."""

    class Status(models.TextChoices):
        STOPPED = "STOPPED", "Stopped"
        STARTING = "STARTING", "Starting"
        RUNNING = "RUNNING", "Running"
        STOPPING = "STOPPING", "Stopping"
        FAILED = "FAILED", "Failed"

    class Mode(models.TextChoices):
        SIM = "SIM", "Simulated"
        LIVE = "LIVE", "Live"

    bot = models.OneToOneField("bots.Bot", on_delete=models.PROTECT, related_name="runner")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STOPPED)
    mode = models.CharField(max_length=4, choices=Mode.choices, default=Mode.SIM)
    generation = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    last_tick_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["bot__name"]
        indexes = [models.Index(fields=["status"])]

    def __str__(self) -> str:
        return f"runner of {self.bot_id} ({self.status}, gen {self.generation})"


class Job(models.Model):
    """The truth for every background job. Celery carries only the id; a worker claims the row
    (SELECT … FOR UPDATE SKIP LOCKED), sets a lease and commits before working."""

    class Status(models.TextChoices):
        QUEUED = "QUEUED", "Queued"
        RUNNING = "RUNNING", "Running (leased)"
        SUCCEEDED = "SUCCEEDED", "Succeeded"
        FAILED = "FAILED", "Failed (will retry)"
        DEAD = "DEAD", "Dead-lettered"
        CANCELLED = "CANCELLED", "Cancelled"

    type = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    available_at = models.DateTimeField(help_text="Not claimable before this (retry back-off).")
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    leased_by = models.CharField(max_length=200, blank=True)
    idempotency_key = models.CharField(max_length=200, null=True, blank=True, unique=True)
    runner = models.ForeignKey(Runner, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    payload = models.JSONField(default=dict, blank=True)
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)
    trace_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The claim: due queued jobs, oldest first.
            models.Index(fields=["status", "available_at"], name="job_claimable"),
            # The watchdog: running jobs whose lease expired.
            models.Index(fields=["status", "lease_expires_at"], name="job_leases"),
            models.Index(fields=["type", "-created_at"], name="job_type_created"),
        ]

    def __str__(self) -> str:
        return f"job {self.pk} {self.type} {self.status}"
