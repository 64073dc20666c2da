from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from apps.core.context import get_trace_id
from apps.core.roles import user_role


def trace_id(request: HttpRequest) -> dict[str, Any]:
    role = user_role(getattr(request, "user", None))
    return {"trace_id": get_trace_id(), "user_role": role.group_name if role else None}
