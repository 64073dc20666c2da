from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser

from apps.accounts.services import user_set_role
from apps.core.audit import audit_record
from apps.core.roles import Role


class Command(BaseCommand):
    help = (
        "First run: create the admin user and print its password once (TRADEOPS_ADMIN_PASSWORD, "
        "or a generated one). Later runs change nothing and say how to sign in."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default=os.environ.get("TRADEOPS_ADMIN_USERNAME", "admin"))

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        User = get_user_model()
        if User.objects.filter(username=username).exists():
            self.stdout.write(
                f"Sign in as '{username}' with the password printed on the first run "
                f"(reset it with: .venv/bin/python manage.py changepassword {username})."
            )
            return
        given = os.environ.get("TRADEOPS_ADMIN_PASSWORD")
        password = given or secrets.token_urlsafe(18)
        user = User.objects.create_superuser(username=username, email="", password=password)
        user_set_role(user=user, role=Role.ADMIN, actor_label="system:bootstrap")
        audit_record(
            action="user.create",
            actor_label="system:bootstrap",
            target=user,
            after={"username": username, "superuser": True},
        )
        if given:
            self.stdout.write(f"Created admin user '{username}' with the password from TRADEOPS_ADMIN_PASSWORD.")
        else:
            self.stdout.write(f"Created admin user '{username}'. Password (shown this once only): {password}")
