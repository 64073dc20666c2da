from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.integrations import selectors


class Command(BaseCommand):
    help = "The Keys Needed checklist from the registry; with --env-template, a .env template (no values)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--env-template", action="store_true", help="Print a .env template instead.")

    def handle(self, *args: Any, env_template: bool, **options: Any) -> None:
        groups = selectors.keys_needed()
        if env_template:
            self.stdout.write("# TradeOps .env template, generated from the integrations registry.")
            self.stdout.write("# Fill in what you have; leave the rest empty. Never commit the filled file.")
            for group in groups:
                self.stdout.write(f"\n# --- {group['label']} ---")
                for var in group["variables"]:
                    need = "required" if var["required"] else "optional"
                    self.stdout.write(f"# {var['provider']} ({need}): {var['what_it_unlocks']}")
                    self.stdout.write(f"{var['name']}=")
            return
        for group in groups:
            self.stdout.write(self.style.MIGRATE_HEADING(group["label"]))
            for var in group["variables"]:
                mark = "✔" if var["present"] else ("✘" if var["required"] else "·")
                source = f"[{var['source']}]" if var["source"] else "[missing]"
                need = "required" if var["required"] else "optional"
                self.stdout.write(f"  {mark} {var['name']:<28} {source:<11} {need:<8} {var['what_it_unlocks']}")
