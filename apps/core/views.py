from __future__ import annotations

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from apps.core import legacy
from apps.core.context import ensure_trace_id
from apps.core.errors import error_body

logger = logging.getLogger("tradeops.legacy")


@csrf_exempt  # any method, any caller: the answer is always 410 and nothing is done
def legacy_function_retired(request: HttpRequest, name: str) -> JsonResponse:
    entry = legacy.lookup(name)
    trace_id = ensure_trace_id()
    logger.warning(
        "[EDGE_CALL_BLOCKED] function=%s method=%s path=%s trace_id=%s",
        name,
        request.method,
        request.path,
        trace_id,
        extra={"function": name, "classification": entry.classification.value},
    )
    fix = f"Call {entry.replacement} on TradeOps instead." if entry.replacement else entry.note or "Remove the call."
    body = error_body(
        status=410,
        error_code="EDGE_FUNCTION_RETIRED",
        message=f"The legacy function {name!r} is retired; TradeOps is the only control plane.",
        suggested_fix=fix,
        function=name,
        replacement=entry.replacement,
        note=entry.note or None,
    )
    # replacement is part of the contract even when there is none: say null, don't omit it.
    body.setdefault("replacement", None)
    return JsonResponse(body, status=410)
