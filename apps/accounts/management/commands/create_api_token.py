from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.accounts.services import api_token_create
from apps.core.roles import ROLE_NAMES, Role


class Command(BaseCommand):
    help = "Create USERNAME if needed, give it ROLE, and print a new API token (shown this once only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=ROLE_NAMES)
        parser.add_argument("--name", default="", help="A label for the token, e.g. the client using it.")

    def handle(self, *args: Any, username: str, role: str, name: str, **options: Any) -> None:
        _, token = api_token_create(username=username, role=Role.from_name(role), name=name)
        self.stderr.write(f"Token for {username} ({role}). It is not stored and will not be shown again:")
        self.stdout.write(token)
