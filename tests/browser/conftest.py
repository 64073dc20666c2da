"""Browser tests: the Observatory as operators use it, in Debian's chromium driven by Playwright.

Playwright's own browser download cannot work here (no internet), so the tests launch the system's
chromium (`TRADEOPS_CHROMIUM`, else `chromium` on PATH). Without it every test here is skipped, and
the run's summary says so in one plain line (tests/conftest.py) instead of passing silently.

Each test gets a fresh browser context (no cookies) and a `page` that records console errors and
uncaught page errors: a test fails on any it did not declare with `page_errors.expect(...)`.
The live server runs the app in a thread of this process, against the test database
(`transactional_db`), with the production-like `DEBUG = False` of the test settings.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
BROWSER_SKIP_REASON = "chromium is not installed (apt-get install chromium, or set TRADEOPS_CHROMIUM)"


def chromium_path() -> str | None:
    explicit = os.environ.get("TRADEOPS_CHROMIUM", "")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if chromium_path() is not None:
        return
    skip = pytest.mark.skip(reason=BROWSER_SKIP_REASON)
    for item in items:
        if "tests/browser/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    if path is None:
        pytest.skip(BROWSER_SKIP_REASON)
    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make between
    # browser steps are still plain synchronous calls, so Django's async guard is lifted meanwhile.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
            try:
                yield launched
            finally:
                launched.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@dataclass
class PageErrors:
    """Console errors and uncaught exceptions a page produced, minus the ones a test expects
    (a 409 answered to an htmx request is logged by chromium as a failed resource load)."""

    seen: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect(self, pattern: str) -> None:
        self.expected.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [text for text in self.seen if not any(p.search(text) for p in self.expected)]


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()


@pytest.fixture
def page(browser: Any, live_server: Any, page_errors: PageErrors) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    new_page = context.new_page()
    new_page.on("console", lambda msg: page_errors.seen.append(msg.text) if msg.type == "error" else None)
    new_page.on("pageerror", lambda exc: page_errors.seen.append(f"uncaught: {exc}"))
    try:
        yield new_page
    finally:
        context.close()
    unexpected = page_errors.unexpected()
    assert not unexpected, f"the page logged errors: {unexpected}"


PASSWORD = "correct horse battery staple 42"


@pytest.fixture
def sign_in(live_server: Any) -> Any:
    """sign_in(page, user) → signs in through the real form, as a person does."""

    def do(page: Any, user: Any, next_path: str = "/") -> None:
        user.set_password(PASSWORD)
        user.save(update_fields=["password"])
        page.goto(f"/login/?next={next_path}")
        page.fill("input[name=username]", user.get_username())
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_load_state("networkidle")

    return do
