"""The global kill latch for every page's header (templates/core/kill_all_control.html): read here,
in the highest app, so the header can show it without a context processor reaching up from core."""

from __future__ import annotations

from django import template

from apps.trading import kill_switch

register = template.Library()


@register.simple_tag
def kill_all_state() -> kill_switch.KillAllState | None:
    """The latch as committed now; None when it cannot be read (the page then says it is unknown)."""
    try:
        return kill_switch.kill_all_state()
    except Exception:  # the database is down: the error pages render without it
        return None
