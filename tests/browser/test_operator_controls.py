"""Issue 9 in a real browser: refreshes keep what the operator opened, typed or selected; the
header's Kill-all; creating and editing a bot from its pages; the proof-of-use popout; the audit
table at 800 px. Every test also fails on a console error (the `page` fixture)."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.bots import services as bot_services
from apps.bots.models import Bot
from apps.core.audit import audit_record
from apps.runners.models import Runner
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _refresh(page: Any, event: str, url_part: str) -> None:
    """Fire the event the live regions listen to (as an action elsewhere does) and wait for the
    refresh it causes — instead of waiting out the 10 s poll."""
    with page.expect_response(lambda r: url_part in r.url and r.request.headers.get("hx-request") == "true"):
        page.evaluate(f"htmx.trigger(document.body, '{event}')")
    page.wait_for_load_state("networkidle")


def test_the_overview_keeps_an_opened_warnings_list_across_a_refresh(page: Any, sign_in: Any, viewer: Any) -> None:
    sign_in(page, viewer)
    warnings = page.locator("#overview-warnings")
    warnings.locator("summary").click()
    assert warnings.evaluate("d => d.open")

    # Something changes meanwhile: a bot starts running. The refresh shows it, the list stays open.
    bot = BotFactory(name="Desk newcomer")
    Runner.objects.create(bot=bot, status=Runner.Status.RUNNING, generation=1, last_tick_at=timezone.now())
    _refresh(page, "bots-changed", "/")
    assert page.locator(f"#desk-bot-{bot.pk}").is_visible()
    assert warnings.evaluate("d => d.open"), "the refresh collapsed the warnings the operator opened"

    # And the periodic poll itself (every 10 s) keeps it too.
    with page.expect_response(lambda r: r.request.headers.get("hx-request") == "true", timeout=15_000):
        pass
    page.wait_for_load_state("networkidle")
    assert warnings.evaluate("d => d.open")


def test_a_refused_action_keeps_the_typed_reason_and_a_refresh_keeps_unsent_edits(
    page: Any, sign_in: Any, operator: Any
) -> None:
    bot = BotFactory()  # LAB: promotion to PAPER is refused (no promotable backtest)
    sign_in(page, operator, next_path=f"/bots/{bot.pk}/")
    page.fill("#kill-reason", "half-typed kill reason")  # typed, not sent
    page.select_option("#trading-state", "HALTED")  # chosen, not sent
    page.fill("#promote-reason", "the lab results look good")
    page.click("#stage form[hx-post$='/promote'] button[type=submit]")
    page.locator("#bot-actions .refusal").wait_for()
    assert "PROMOTION_GATE_FAILED" in page.locator("#bot-actions .refusal").inner_text()
    assert page.input_value("#promote-reason") == "the lab results look good"
    assert page.input_value("#kill-reason") == "half-typed kill reason"
    assert page.input_value("#trading-state") == "HALTED"

    # Bots change elsewhere (kill-all in another tab): the panel refreshes, the unsent edits stay.
    _refresh(page, "bots-changed", "part=actions")
    assert page.input_value("#kill-reason") == "half-typed kill reason"
    assert page.input_value("#trading-state") == "HALTED"
    assert Bot.objects.get(pk=bot.pk).stage == Bot.Stage.LAB


def test_the_trading_state_select_follows_the_state_it_set(page: Any, sign_in: Any, operator: Any) -> None:
    bot = BotFactory()
    sign_in(page, operator, next_path=f"/bots/{bot.pk}/")
    assert page.input_value("#trading-state") == "ACTIVE"
    page.select_option("#trading-state", "REDUCING")
    page.fill("#trading-state-reason", "thin market")
    page.click("#venue form[hx-post$='/trading-state'] button[type=submit]")
    page.locator("#bot-actions .banner-ok").wait_for()
    assert page.input_value("#trading-state") == "REDUCING"
    assert page.input_value("#trading-state-reason") == ""  # done: the reason is not left to resend
    page.reload()
    assert page.input_value("#trading-state") == "REDUCING"


def test_kill_all_from_the_header_with_a_reason_and_confirmation_kills_the_bots(
    page: Any, sign_in: Any, operator: Any
) -> None:
    bot_services.bot_starter_pack(actor=operator)
    count = Bot.objects.count()
    sign_in(page, operator)
    page.click("#kill-all > summary")
    page.fill("#kill-all-reason", "exchange outage")
    page.click("#kill-all-form button[type=submit]")  # not confirmed: the browser does not send it
    page.wait_for_timeout(300)
    assert not Bot.objects.filter(killed=True).exists()

    page.check("#kill-all-confirm")
    page.click("#kill-all-form button[type=submit]")
    page.locator("#kill-all-outcome .banner-ok").wait_for()
    assert f"Killed {count} bots" in page.locator("#kill-all-outcome").inner_text()
    assert Bot.objects.filter(killed=True).count() == count
    assert set(Bot.objects.values_list("kill_reason", flat=True)) == {"exchange outage"}


def test_kill_all_refreshes_the_bot_page_it_was_pressed_on(page: Any, sign_in: Any, operator: Any) -> None:
    bot = BotFactory()
    sign_in(page, operator, next_path=f"/bots/{bot.pk}/")
    assert page.locator("#runner button:has-text('Start')").is_enabled()
    page.click("#kill-all > summary")
    page.fill("#kill-all-reason", "drill")
    page.check("#kill-all-confirm")
    with page.expect_response(lambda r: "part=actions" in r.url):
        page.click("#kill-all-form button[type=submit]")
    page.wait_for_load_state("networkidle")
    assert page.locator("#runner button:has-text('Start')").is_disabled()
    assert "Start is off: this bot is killed." in page.locator("#runner").inner_text()
    assert page.locator("#bot-status .banner-blocked").inner_text().startswith("KILLED")


def test_create_and_edit_a_bot_from_the_pages(page: Any, sign_in: Any, operator: Any) -> None:
    sign_in(page, operator, next_path="/bots/")
    page.click("#new-bot > summary")
    page.fill("#id-new-name", "Browser MES")
    page.select_option("#id-new-strategy", "trend_following")
    page.select_option("#id-new-instrument", "MES")
    page.fill("#id-new-risk_limits\\.max_daily_loss", "-1")
    page.click("#bot-create-form button[type=submit]")
    error = page.locator("#new-bot .field-error")
    error.first.wait_for()
    assert "Max daily loss must be a positive number." in error.first.inner_text()
    assert page.input_value("#id-new-name") == "Browser MES"  # what was typed stays
    assert not Bot.objects.filter(name="Browser MES").exists()

    page.fill("#id-new-risk_limits\\.max_daily_loss", "300")
    page.click("#bot-create-form button[type=submit]")
    page.locator("#new-bot .banner-ok").wait_for()
    bot = Bot.objects.get(name="Browser MES")
    page.locator(f"#bot-{bot.pk}").wait_for()  # the table refreshed with the new bot

    page.click(f"#new-bot .banner-ok a[href='/bots/{bot.pk}/']")
    page.wait_for_load_state("networkidle")
    page.fill("#id-parameters\\.fast_period", "70")  # not below slow_period (50)
    page.fill("#id-config-reason", "faster entries")
    page.click("#bot-config-form button[type=submit]")
    page.locator("#bot-config .field-error").first.wait_for()
    assert "Fast period must be smaller than slow_period." in page.locator("#bot-config").inner_text()
    assert page.input_value("#id-parameters\\.fast_period") == "70"

    page.fill("#id-parameters\\.fast_period", "10")
    page.fill("#id-risk_limits\\.max_orders_per_day", "40")
    page.click("#bot-config-form button[type=submit]")
    page.locator("#bot-config .banner-ok").wait_for()
    assert "Saved as config v2." in page.locator("#bot-config").inner_text()
    bot.refresh_from_db()
    assert bot.config_version == 2 and bot.parameters["fast_period"] == 10
    assert bot.risk_limits == {"max_daily_loss": 300.0, "max_orders_per_day": 40}
    expect(page.locator("#audit-trail")).to_contain_text("bot.update")  # the live region refreshed


def test_the_proof_of_use_popout_closes_on_escape_and_on_a_click_outside(page: Any, sign_in: Any, viewer: Any) -> None:
    sign_in(page, viewer, next_path="/connections/")
    opener = page.locator("#card-databento a[hx-get]")
    opener.click()
    dialog = page.locator("#modal .modal")
    dialog.wait_for()
    page.keyboard.press("Escape")
    dialog.wait_for(state="detached")

    opener.click()
    dialog.wait_for()
    page.locator("#modal .modal-body").click()  # inside the card: stays
    assert dialog.is_visible()
    page.mouse.click(5, 400)  # the backdrop, outside the card
    dialog.wait_for(state="detached")

    opener.click()
    page.locator("#modal [data-modal-close]").click()
    dialog.wait_for(state="detached")


def test_the_audit_table_fits_an_800_px_window(page: Any, sign_in: Any, operator: Any) -> None:
    bot = BotFactory()
    for i in range(6):
        audit_record(
            action="runner.start_refused",
            actor=operator,
            target=bot,
            reason="a long reason " * 12,
            after={
                "error_code": "INTEGRATION_KEY_MISSING_WITH_A_LONG_CODE",
                "message": f"refusal {i}: " + "DATABENTO_API_KEY_IS_NOT_SET_ANYWHERE_" * 4,
                "missing_env_vars": ["DATABENTO_API_KEY", "POLYGON_API_KEY"],
            },
        )
    page.set_viewport_size({"width": 800, "height": 900})
    sign_in(page, operator, next_path=f"/bots/{bot.pk}/")
    assert page.locator("#audit-trail tbody tr").count() == 6
    for path in (f"/bots/{bot.pk}/", "/", "/bots/", "/connections/", "/connections/keys-needed/", "/runners/"):
        page.goto(path)
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways by {overflow} px at 800 px"


def test_kill_all_is_one_switch_shown_in_the_header_until_a_person_releases_it(
    page: Any, sign_in: Any, operator: Any
) -> None:
    killed = BotFactory(name="killed by kill-all")
    sign_in(page, operator)
    assert page.locator("#kill-all-badge").inner_text() == ""
    page.click("#kill-all > summary")
    page.fill("#kill-all-reason", "exchange outage")
    page.check("#kill-all-confirm")
    page.click("#kill-all-form button[type=submit]")
    page.locator("#kill-all-outcome .banner-ok").wait_for()
    assert "Kill-all is engaged" in page.locator("#kill-all-outcome").inner_text()
    assert page.locator("#kill-all-badge").inner_text() == "Kill-all engaged"  # the header, without a reload

    # A bot created after kill-all cannot start: the refusal says why and where to release it.
    later = BotFactory(name="created afterwards")
    page.goto(f"/bots/{later.pk}/")
    assert page.locator("#kill-all-badge").inner_text() == "Kill-all engaged"
    page.get_by_role("button", name="Start", exact=True).click()
    refusal = page.locator("#bot-actions .refusal, #bot-actions [role=alert]").first
    refusal.wait_for()
    assert "BOT_KILLED" in page.locator("#bot-actions").inner_text()
    assert "Release kill-all" in page.locator("#bot-actions").inner_text()

    page.click("#kill-all > summary")
    page.click("#kill-all-release-form button[type=submit]")  # no reason: the browser does not send it
    page.wait_for_timeout(300)
    assert page.locator("#kill-all-badge").inner_text() == "Kill-all engaged"
    page.fill("#kill-all-release-reason", "exchange back, checked positions")
    page.click("#kill-all-release-form button[type=submit]")
    page.locator("#kill-all-release-outcome .banner-ok").wait_for()
    outcome = page.locator("#kill-all-release-outcome").inner_text()
    assert "Kill-all is released" in outcome and "1 bot is still killed" in outcome and killed.name in outcome
    assert page.locator("#kill-all-badge").inner_text() == ""
    killed.refresh_from_db()
    assert killed.killed  # release does not unkill: each bot needs its own unkill
