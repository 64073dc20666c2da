"""The strategy lab in a real browser: an experiment made from the Lab page's New experiment form (a
mistake first, said beside its input), started from its page, followed as its runs finish — the
progress bar moving, the page redrawn when the in-sample search has made its candidates and again
when it has finished — then its candidates, the heatmap's axes chosen and kept by a reload, and a
candidate graduated into a bot, landing on the bot's page where the LAB → PAPER gate reads the
evidence. An expired session on the page's poll goes to the sign-in page. Every test also fails on
a console error.

The runs' jobs go to the real broker (`real_celery`), where no worker takes them: the test runs
them itself, as the backtests worker would, so the page is seen while the experiment is open."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from playwright.sync_api import expect

from apps.backtests.models import OPEN_STATUSES, Backtest
from apps.bots.models import Bot
from apps.strategylab import services
from apps.strategylab.models import Candidate, Experiment
from tests.backtests.conftest import run_job
from tests.strategylab.conftest import TEST, TRAIN, body, store_bars

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stored_bars(settings: Any) -> int:
    settings.MARKET_DATA_RECENT_HOURS = 24 * 365 * 20  # the generated bars are final, however "recent"
    return store_bars()


@pytest.fixture
def jobs_wait(real_celery: Any) -> Iterator[None]:
    """The runs' messages wait in the broker (no worker here); the queues are emptied after."""
    with real_celery.connection_for_write() as conn:
        client = conn.default_channel.client
        client.delete("backtests", "celery")
        yield
        client.delete("backtests", "celery")


def _open_runs(experiment_id: int) -> list[int]:
    return list(
        Backtest.objects.filter(lab_run__experiment_id=experiment_id, status__in=OPEN_STATUSES)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _percent(experiment_id: int) -> str:
    return str(round(Experiment.objects.get(pk=experiment_id).progress * 100))


def test_an_experiment_from_the_form_runs_to_its_candidates_and_one_graduates_into_a_bot(
    page: Any, sign_in: Any, operator: Any, stored_bars: int, jobs_wait: None
) -> None:
    sign_in(page, operator, next_path="/lab/")
    page.click("#new-experiment > summary")
    page.fill("#id-lab-name", "MES trend in the browser")
    page.select_option("#id-lab-strategy", "trend_following")
    expect(page.locator("#lab-space fieldset[data-strategy=trend_following]")).to_be_visible()
    expect(page.locator("#lab-space fieldset[data-strategy=breakout]")).to_be_hidden()
    page.select_option("#id-lab-timeframe", "5m")
    page.check("#id-lab-instrument-mes")
    page.fill("#id-lab-trend-following-fast-period-values", "3, 600")  # a mistake first
    page.fill("#id-lab-trend-following-slow-period-min", "8")
    page.fill("#id-lab-trend-following-slow-period-max", "12")
    page.fill("#id-lab-trend-following-slow-period-step", "4")
    # Walk-forward hides the two windows; back to them.
    page.check("#id-lab-mode-walk-forward")
    expect(page.locator("#id-lab-train-start")).to_be_hidden()
    expect(page.locator("#id-lab-wf-folds")).to_be_visible()
    page.check("#id-lab-mode-split")
    expect(page.locator("#id-lab-wf-folds")).to_be_hidden()
    page.fill("#id-lab-train-start", TRAIN["start"][:16])
    page.fill("#id-lab-train-end", TRAIN["end"][:16])
    page.fill("#id-lab-test-start", TEST["start"][:16])
    page.fill("#id-lab-test-end", TEST["end"][:16])
    page.select_option("#id-lab-objective", "net_pnl")
    page.fill("#id-lab-top-k", "3")

    page.click("#experiment-create-form button[type=submit]")
    expect(page.locator("#new-experiment")).to_contain_text("Fast period 600 must be between 2 and 200.")
    assert page.input_value("#id-lab-trend-following-fast-period-values") == "3, 600"
    assert page.input_value("#id-lab-test-end") == TEST["end"][:16]
    expect(page.locator("#id-lab-wf-folds")).to_be_hidden()  # the choice is kept after the morph
    assert not Experiment.objects.exists()

    page.fill("#id-lab-trend-following-fast-period-values", "3, 5")
    page.click("#experiment-create-form button[type=submit]")
    page.wait_for_url("**/lab/experiments/*/")
    experiment = Experiment.objects.get()
    assert (experiment.status, experiment.grid) == ("DRAFT", {"fast_period": [3, 5], "slow_period": [8, 12]})
    expect(page.locator("#experiment-draft")).to_be_visible()

    # Start: the page is drawn again, running, its four in-sample runs queued.
    page.click(f"#experiment-{experiment.pk}-actions [data-action=start]")
    expect(page.locator("#experiment-status")).to_have_attribute("data-status", "RUNNING")
    expect(page.locator("#count-in_sample")).to_contain_text("0 of 4 runs done")
    expect(page.locator("#heatmap-table td[data-state=open]")).to_have_count(4)
    expect(page.locator(f"#experiment-{experiment.pk}-actions [data-action=cancel]")).to_be_visible()

    # Two runs finish: the page follows without a reload.
    runs = _open_runs(experiment.pk)
    for run in runs[:2]:
        run_job(run)
    expect(page.locator("#experiment-progress-bar")).to_have_attribute("value", _percent(experiment.pk), timeout=8_000)
    expect(page.locator("#count-in_sample")).to_contain_text("2 of 4 runs done")
    expect(page.locator("#heatmap-table td[data-state=figure]")).to_have_count(2, timeout=8_000)

    # The in-sample search ends: the page is redrawn with its candidates, re-run out of sample.
    for run in runs[2:]:
        run_job(run)
    expect(page.locator("#experiment-status")).to_contain_text("re-running the best sets", timeout=8_000)
    expect(page.locator("#candidate-table tbody tr")).to_have_count(3)
    for run in _open_runs(experiment.pk):
        run_job(run)
    expect(page.locator("#experiment-status")).to_have_attribute("data-status", "SUCCEEDED", timeout=8_000)
    expect(page.locator("#experiment-progress-bar")).to_have_attribute("value", "100")
    expect(page.locator(f"#experiment-{experiment.pk}-actions [data-action=cancel]")).to_have_count(0)
    expect(page.locator("#luck-dsr")).to_be_visible()
    best = Candidate.objects.get(experiment=experiment, rank=1)
    card = page.locator(f"#candidate-{best.pk}")
    (out_run,) = best.out_of_sample["runs"]
    expect(card.locator("a[data-window=out]")).to_have_attribute("href", f"/backtests/{out_run['backtest_id']}/")
    expect(card.locator("tr[data-figure=trades] td[data-window=out]")).to_have_text(f"{out_run['metrics']['trades']:,}")

    # Slow period across: fast period goes down; the URL keeps the choice through a reload.
    page.select_option("#heatmap-x", "slow_period")
    page.wait_for_url("**x=slow_period**")
    expect(page.locator("#heatmap-table")).to_have_attribute("data-y", "fast_period")
    page.reload()
    expect(page.locator("#heatmap-table")).to_have_attribute("data-x", "slow_period")
    expect(page.locator("#heatmap-table td[data-state=figure]")).to_have_count(4)

    # Graduate the best candidate: to the new bot's page, where the gate reads its evidence.
    card.locator("input[name=name]").fill("MES trend, graduated in the browser")
    card.locator("[data-action=graduate]").click()
    page.wait_for_url(re.compile(r"/bots/\d+/$"))
    bot = Bot.objects.get()
    assert page.url.endswith(f"/bots/{bot.pk}/")
    assert (bot.name, bot.stage, bot.parameters) == ("MES trend, graduated in the browser", "LAB", best.parameters)
    expect(page.locator("#backtest-evidence")).to_contain_text("Evidence for LAB → PAPER")
    best.refresh_from_db()
    (evidence,) = best.graduation_backtests
    expect(page.locator(f"#bot-backtest-{evidence}")).to_be_visible()


def test_an_expired_session_on_the_experiments_poll_goes_to_sign_in(
    page: Any, sign_in: Any, viewer: Any, operator: Any, jobs_wait: None
) -> None:
    experiment = services.experiment_start(
        experiment=services.experiment_create(data=body(), actor=operator), actor=operator
    )
    sign_in(page, viewer, next_path=f"/lab/experiments/{experiment.pk}/")
    expect(page.locator("#experiment-status")).to_have_attribute("data-status", "RUNNING")
    Session.objects.all().delete()
    page.wait_for_url(re.compile(r"/login/\?next=%2Flab%2Fexperiments%2F\d+%2F&signed_out=1$"), timeout=10_000)
    assert "stopped updating" in page.locator(".signed-out").inner_text()
    assert page.locator("header.topbar").count() == 1
