"""Verify, in the browser: the card it was pressed on shows the outcome and every figure it changed
(connected, last verified, proof of use, the page's summary) without a reload."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _usage_rows_written_behind(settings: Any) -> Any:
    """The production writer: a verify's proof-of-use row is stored by a background thread."""
    from apps.telemetry import usage_writer

    settings.INTEGRATIONS_USAGE_WRITES = "background"
    yield
    assert usage_writer.flush(timeout=20)


def test_verify_updates_its_card_and_the_summary(page: Any, sign_in: Any, operator: Any, provider_stub: Any) -> None:
    provider_stub("databento")
    sign_in(page, operator, next_path="/connections/")
    card = page.locator("#card-databento")
    assert "configured · not connected" in card.inner_text()
    assert "never" in card.locator("dl.facts dd").first.inner_text()
    summary_before = page.locator("#connections-summary").inner_text()

    card.get_by_role("button", name="Verify").click()
    page.locator("#card-databento .result.ok").wait_for()

    text = page.locator("#card-databento").inner_text()
    assert "Verify: ok in" in text
    assert "connected" in page.locator("#card-databento .pill-ok").inner_text()
    assert "not connected" not in text and "INTEGRATION_NOT_CONNECTED" not in text
    assert "never" not in page.locator("#card-databento dl.facts dd").first.inner_text()
    assert "1 call" in page.locator("#card-databento dl.facts").inner_text()
    assert page.locator("#connections-summary").inner_text() != summary_before

    # A reload shows the same figures: the card was current, not a message beside stale ones.
    page.reload()
    assert "connected" in page.locator("#card-databento .pill-ok").inner_text()
    assert "1 call" in page.locator("#card-databento dl.facts").inner_text()


def test_start_right_after_verify_in_the_browser_starts(
    page: Any, sign_in: Any, operator: Any, provider_stub: Any
) -> None:
    from apps.bots.models import Bot
    from apps.telemetry.services import heartbeat_record
    from tests.bots.factories import BotFactory

    provider_stub("databento")
    heartbeat_record(component="beat", instance="b")
    heartbeat_record(component="worker", instance="w")
    bot = BotFactory(stage=Bot.Stage.PAPER, name="verify then start")
    sign_in(page, operator, next_path="/connections/")
    page.locator("#card-databento").get_by_role("button", name="Verify").click()
    page.locator("#card-databento .result.ok").wait_for()

    page.goto(f"/bots/{bot.pk}/")
    page.get_by_role("button", name="Start", exact=True).click()
    page.get_by_text("Started: the runner is").wait_for()
    assert "INTEGRATION_NOT_CONNECTED" not in page.locator("#bot-actions").inner_text()
