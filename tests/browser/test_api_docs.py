"""/api/docs/ on a machine without internet: Swagger UI, its assets and favicon are served by
TradeOps itself (drf-spectacular-sidecar); every request the page makes stays on loopback."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.django_db(transaction=True)

LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def test_the_api_docs_render_every_operation_with_no_network(page: Any, sign_in: Any, viewer: Any) -> None:
    left_loopback: list[str] = []

    def only_loopback(route: Any) -> None:
        url = route.request.url
        host = urlsplit(url).hostname or ""
        if urlsplit(url).scheme in ("http", "https", "ws", "wss") and host not in LOOPBACK:
            left_loopback.append(url)
            route.abort("internetdisconnected")
        else:
            route.continue_()

    page.context.route("**/*", only_loopback)
    sign_in(page, viewer)
    response = page.goto("/api/docs/")
    assert response is not None and response.status == 200
    page.wait_for_selector(".opblock", timeout=20_000)
    page.wait_for_load_state("networkidle")
    assert page.locator(".opblock").count() > 20  # every operation of the API, not an empty shell
    assert page.locator(".info .title").inner_text().startswith("TradeOps API")
    assert page.locator(".opblock-summary-path", has_text="/api/health").count() >= 1
    assert left_loopback == [], f"requests left this machine: {left_loopback}"
