from __future__ import annotations

from django.db import models


class StoredCredential(models.Model):
    """One provider variable entered through TradeOps, encrypted at rest (MultiFernet). The value
    is write-only: nothing renders it; only its presence, source and time of change are shown."""

    provider = models.CharField(max_length=40)
    name = models.CharField(max_length=80, unique=True, help_text="The environment variable it stands for.")
    ciphertext = models.TextField(editable=False)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.CharField(max_length=150, blank=True)

    class Meta:
        ordering = ["provider", "name"]

    def __str__(self) -> str:
        return f"{self.name} (stored, encrypted)"


class IntegrationCheck(models.Model):
    """The newest verify (or, for infrastructure, probe) outcome of each provider. State, not
    telemetry: it is written before the verify answers, so the start gate, the status endpoints and
    the Connections card agree with the answer at once; the usage event of the same call (proof of
    use) may still be on its way through the background writer."""

    class Operation(models.TextChoices):
        VERIFY = "verify", "Verify"
        PROBE = "probe", "Infrastructure probe"

    provider = models.CharField(max_length=40, unique=True)
    operation = models.CharField(max_length=10, choices=Operation.choices)
    ok = models.BooleanField()
    checked_at = models.DateTimeField()
    latency_ms = models.FloatField(null=True, blank=True)
    error_code = models.CharField(max_length=60, blank=True)
    message = models.TextField(blank=True)
    trace_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["provider"]

    def __str__(self) -> str:
        return f"{self.provider} {self.operation} {'ok' if self.ok else self.error_code or 'failed'}"
