"""The backtest matrix in a real browser: a matrix made from the Backtests page's New matrix form
(a mistake first, said in place), its page following the runs as they finish — the progress bar,
the counts, the ranking and the heatmap filling in — then the whole result, the heatmap's axes
chosen by the operator and kept by a reload. Every test also fails on a console error.

The runs' jobs go to the real broker (`real_celery`), where no worker takes them: the test runs
them itself, a few at a time, as the backtests worker would, so the page is seen while the matrix
is still open."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from apps.backtests.models import Backtest, BacktestMatrix, Status
from tests.backtests.conftest import run_job
from tests.backtests.factories import DAY_END, DAY_START, store_walk

pytestmark = pytest.mark.django_db(transaction=True)

FORMAT = "%Y-%m-%dT%H:%M"
MIDDLE = DAY_START + timedelta(hours=12)


@pytest.fixture
def stored_day(settings: Any) -> int:
    settings.MARKET_DATA_RECENT_HOURS = 24 * 365 * 20  # the generated bars are final, however "recent"
    return store_walk(seed=5, start=DAY_START - timedelta(hours=3), end=DAY_END)


@pytest.fixture
def jobs_wait(real_celery: Any) -> Iterator[None]:
    """The runs' messages wait in the broker (no worker here); the queues are emptied after."""
    with real_celery.connection_for_write() as conn:
        client = conn.default_channel.client
        client.delete("backtests", "celery")
        yield
        client.delete("backtests", "celery")


def test_a_matrix_from_the_form_fills_in_as_its_runs_finish_and_keeps_the_chosen_axes(
    page: Any, sign_in: Any, operator: Any, stored_day: int, jobs_wait: None
) -> None:
    sign_in(page, operator, next_path="/backtests/")
    page.click("#new-matrix > summary")
    page.check("#id-mx-source-strategy")
    expect(page.locator("#new-matrix fieldset[data-source=bot]")).to_be_hidden()
    page.select_option("#id-mx-strategy", "trend_following")
    expect(page.locator("#matrix-grid fieldset[data-strategy=trend_following]")).to_be_visible()
    expect(page.locator("#matrix-grid fieldset[data-strategy=breakout]")).to_be_hidden()
    expect(page.locator("#id-mx-trend-following-fast-period")).to_have_attribute("placeholder", "20")
    page.select_option("#id-mx-timeframe", "1m")
    page.fill("#id-mx-trend-following-fast-period", "3, 600")  # a mistake first
    page.fill("#id-mx-trend-following-slow-period", "8, 12")
    page.fill("#id-mx-trend-following-atr-period", "5")
    page.fill("#id-mx-trend-following-stop-atr-multiple", "1")
    page.check("#id-mx-instrument-mes")
    page.fill("#id-mx-window-0-start", DAY_START.strftime(FORMAT))
    page.fill("#id-mx-window-0-end", MIDDLE.strftime(FORMAT))
    page.fill("#id-mx-window-1-start", MIDDLE.strftime(FORMAT))
    page.fill("#id-mx-window-1-end", DAY_END.strftime(FORMAT))
    page.click("#new-matrix [data-add-window]")  # a third row, left empty: ignored
    expect(page.locator("#id-mx-window-2-start")).to_have_attribute("name", "windows.2.start")
    page.select_option("#id-mx-objective", "net_pnl")

    page.click("#matrix-create-form button[type=submit]")
    expect(page.locator("#new-matrix")).to_contain_text("Fast period 600 must be between 2 and 200.")
    assert page.input_value("#id-mx-trend-following-fast-period") == "3, 600"
    assert page.input_value("#id-mx-window-1-end") == DAY_END.strftime(FORMAT)
    expect(page.locator("#matrix-grid fieldset[data-strategy=breakout]")).to_be_hidden()
    assert not BacktestMatrix.objects.exists()

    page.fill("#id-mx-trend-following-fast-period", "3, 5")
    page.click("#matrix-create-form button[type=submit]")
    page.wait_for_url("**/backtests/matrix/*/")
    matrix = BacktestMatrix.objects.get()
    assert page.url.endswith(f"/backtests/matrix/{matrix.pk}/")
    assert (matrix.runs, matrix.objective, len(matrix.windows)) == (8, "net_pnl", 2)
    expect(page.locator("#matrix-progress-bar")).to_have_attribute("value", "0")
    expect(page.locator("#count-queued")).to_contain_text("8 queued")
    expect(page.locator("#matrix-cancel")).to_be_visible()
    expect(page.locator("#heatmap-table td[data-state=open]")).to_have_count(4)

    # Half the runs finish: the page follows them without a reload.
    runs = list(Backtest.objects.filter(matrix=matrix).order_by("id"))
    for run in runs[:4]:
        run_job(run.pk)
    expect(page.locator("#matrix-progress-bar")).to_have_attribute("value", "50", timeout=8_000)
    expect(page.locator("#count-succeeded")).to_contain_text("4 finished")
    expect(page.locator("#matrix-result-table tr[data-status=SUCCEEDED]")).to_have_count(4, timeout=8_000)
    expect(page.locator("#heatmap-table td[data-state=figure]")).not_to_have_count(0)

    # The rest finish: the page is drawn whole, without Cancel or polling.
    for run in runs[4:]:
        run_job(run.pk)
    expect(page.locator("#matrix-cancel")).to_have_count(0, timeout=8_000)
    assert set(Backtest.objects.filter(matrix=matrix).values_list("status", flat=True)) == {Status.SUCCEEDED}
    rows = page.locator("#matrix-result-table tbody tr")
    expect(rows).to_have_count(8)
    # Ranked by net PnL: its column is the objective's, not repeated.
    expect(page.locator("#matrix-result-table thead th", has_text="Net PnL")).to_have_count(1)
    assert [rows.nth(i).locator("td").first.inner_text() for i in range(8)] == [str(i) for i in range(1, 9)]
    expect(page.locator("#heatmap-table td[data-state=figure]")).to_have_count(4)
    expect(page.locator("#heatmap-table")).to_have_attribute("data-x", "fast_period")
    best = Backtest.objects.get(pk=int(rows.first.get_attribute("id").removeprefix("run-")))
    expect(rows.first).to_contain_text(f"#{best.pk}")

    # Slow period across: fast period, which was across, goes down; the URL keeps the choice.
    page.select_option("#heatmap-x", "slow_period")
    page.wait_for_url("**x=slow_period**")
    expect(page.locator("#heatmap-table")).to_have_attribute("data-x", "slow_period")
    expect(page.locator("#heatmap-table")).to_have_attribute("data-y", "fast_period")
    page.select_option("#heatmap-cell", "mean")
    page.wait_for_url("**cell=mean**")
    page.reload()
    expect(page.locator("#heatmap-table")).to_have_attribute("data-x", "slow_period")
    assert page.input_value("#heatmap-cell") == "mean"
    expect(page.locator("#heatmap-ignored")).to_have_count(0)

    # A run's row leads to its backtest's page, which leads back to the matrix.
    page.click(f"#run-{best.pk} a[href='/backtests/{best.pk}/']")
    page.wait_for_url(f"**/backtests/{best.pk}/")
    page.click("#backtest-matrix")
    page.wait_for_url(f"**/backtests/matrix/{matrix.pk}/")


def test_cancel_stops_an_open_matrix_from_its_page(page: Any, sign_in: Any, operator: Any, jobs_wait: None) -> None:
    from apps.backtests import services

    matrix = services.matrix_create(
        data={
            "strategy_key": "breakout",
            "instrument": "MES",
            "timeframe": "1m",
            "grid": {"lookback_bars": [10, 20, 30]},
            "windows": [{"start": DAY_START.isoformat(), "end": MIDDLE.isoformat()}],
        },
        actor=operator,
    )
    sign_in(page, operator, next_path=f"/backtests/matrix/{matrix.pk}/")
    expect(page.locator("#count-queued")).to_contain_text("3 queued")
    # One parameter varies: the heatmap is one row over it.
    expect(page.locator("#heatmap-table")).to_have_attribute("data-y", "none")
    page.click("#matrix-cancel")
    expect(page.locator("#matrix-cancelled")).to_be_visible()
    expect(page.locator("#matrix-cancel")).to_have_count(0)
    expect(page.locator("#count-cancelled")).to_contain_text("3 cancelled")
    assert BacktestMatrix.objects.get(pk=matrix.pk).status == Status.CANCELLED
