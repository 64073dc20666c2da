from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from apps.integrations import services


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored credential with the first key of CREDENTIALS_ENCRYPTION_KEY. "
        "Rotation: put the new key first (new,old), run this, then remove the old key."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        count = services.credentials_rotate_key()
        self.stdout.write(f"Re-encrypted {count} stored credential(s) with the current primary key.")
