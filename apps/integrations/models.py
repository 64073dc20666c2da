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
