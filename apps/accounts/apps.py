from __future__ import annotations

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from apps.accounts import (  # noqa: F401
            schema,  # registers the token scheme with drf-spectacular
            signals,  # audits sign-in success and failure
        )
