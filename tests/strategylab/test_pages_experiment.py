"""An experiment's page: its progress (polled while it runs, the heatmap told to refresh as runs
finish, the page reloaded when a phase ends), the runs that failed named with their backtests, the
ranked candidates with their in-sample and out-of-sample figures side by side, verdicts, warnings
and both backtests; how likely the winner is luck, with its inputs; the heatmap over the axes
chosen in the URL (kept on refresh); the AI review (409 without a key, linking to Connections);
Graduate, which lands on the new bot's page where the LAB → PAPER gate reads the evidence."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime
from html import unescape
from typing import Any

import numpy as np
import pytest

from apps.backtests import presentation as bt_presentation
from apps.backtests.models import Backtest
from apps.bots.models import Bot
from apps.strategylab import services, stats
from apps.strategylab.models import Candidate, Experiment
from tests.backtests.conftest import run_job
from tests.bots.factories import BotFactory
from tests.strategylab.conftest import TEST, body, drive, store_bars, store_trend_after
from tests.strategylab.test_pages import client_for, section, text
from tests.stubs.ai import REPLY_TEXT

pytestmark = pytest.mark.django_db


def page_of(experiment_id: int) -> str:
    return f"/lab/experiments/{experiment_id}/"


def started(actor: Any, **overrides: Any) -> Experiment:
    created = services.experiment_create(data=body(**overrides), actor=actor)
    return services.experiment_start(experiment=created, actor=actor)


@pytest.fixture
def finished(operator: Any) -> Experiment:
    store_bars()
    experiment = drive(started(operator).pk)
    assert experiment.status == "SUCCEEDED", experiment.error
    return experiment


def _cells(html: str) -> dict[tuple[str, str | None], str]:
    """The heatmap's cells by (x value, y value): their state."""
    cells = {}
    for m in re.finditer(r'<td class="heat-cell[^"]*" data-x="([^"]+)"(?: data-y="([^"]+)")? data-state="(\w+)"', html):
        cells[(m.group(1), m.group(2))] = m.group(3)
    return cells


def test_a_running_experiment_shows_its_progress_and_polls(viewer: Any, operator: Any) -> None:
    store_bars()
    experiment = started(operator)
    html = client_for(viewer).get(page_of(experiment.pk)).content.decode()
    progress = section(html, "experiment-progress")
    assert "Running" in progress and "searching the parameter space on the in-sample bars" in progress
    assert "In sample: 0 of 4 runs done" in progress and "Out of sample: none yet" in progress
    assert 'hx-trigger="every 2s"' in html
    assert "Candidates appear once the in-sample search has finished" in text(html)
    # The heatmap waits for its runs: every cell "not finished yet".
    assert set(_cells(html).values()) == {"open"} and len(_cells(html)) == 4

    poll = client_for(viewer, htmx=True)
    live = poll.get(page_of(experiment.pk), {"part": "live", "finished": "0", "phase": "IN_SAMPLE"})
    assert live.status_code == 200 and "HX-Trigger" not in live
    runs = list(Backtest.objects.filter(lab_run__experiment=experiment).order_by("pk"))
    run_job(runs[0].pk)
    live = poll.get(page_of(experiment.pk), {"part": "live", "finished": "0", "phase": "IN_SAMPLE"})
    assert "matrix-changed" in json.loads(live["HX-Trigger"])  # the heatmap refreshes itself
    assert "In sample: 1 of 4 runs done" in text(live.content.decode())
    heat = poll.get(page_of(experiment.pk), {"part": "heatmap"})
    assert "figure" in _cells(heat.content.decode()).values()
    for run in runs[1:]:
        run_job(run.pk)
    # The in-sample phase ended (its candidates were made): the page reloads to draw them.
    live = poll.get(page_of(experiment.pk), {"part": "live", "finished": "1", "phase": "IN_SAMPLE"})
    assert live["HX-Refresh"] == "true"
    drive(experiment.pk)
    live = poll.get(page_of(experiment.pk), {"part": "live", "finished": "7", "phase": "OUT_OF_SAMPLE"})
    assert live["HX-Refresh"] == "true"  # finished: drawn whole, and no more polling
    assert 'hx-trigger="every 2s"' not in client_for(viewer).get(page_of(experiment.pk)).content.decode()


def test_the_candidates_show_both_windows_side_by_side_with_verdicts_warnings_and_backtests(
    viewer: Any, finished: Experiment
) -> None:
    html = client_for(viewer).get(page_of(finished.pk)).content.decode()
    assert "Finished" in section(html, "experiment-status")
    candidates = list(Candidate.objects.filter(experiment=finished).order_by("rank"))
    assert [c.rank for c in candidates] == [1, 2, 3]
    for candidate in candidates:
        card = html[html.index(f'id="candidate-{candidate.pk}"') :]
        card = card[: card.index("</article>")]
        words = text(card)
        assert f"Rank {candidate.rank}" in words
        (ins,) = candidate.in_sample["runs"]
        (outs,) = candidate.out_of_sample["runs"]
        assert f'href="/backtests/{ins["backtest_id"]}/" data-window="in"' in card
        assert f'href="/backtests/{outs["backtest_id"]}/" data-window="out"' in card
        # Each figure, in sample against out of sample, as the backtests' pages write it.
        for key, run in (("net_pnl", ins), ("net_pnl", outs)):
            assert bt_presentation.money(run["metrics"][key]) in words
        assert f"{outs['metrics']['trades']:,}" in words
        verdict = bt_presentation.VERDICT_WORDS[candidate.verdict][0]
        assert verdict in words
        for warning in candidate.overfit_warnings:
            assert warning["message"] in words
    # The ranking table: the objective out of sample, best first.
    table = section(html, "candidate-table")
    first = bt_presentation.objective_value("net_pnl", candidates[0].out_of_sample["objective"])
    assert first in table


def test_a_figure_that_could_not_be_computed_is_said_not_shown_as_zero(viewer: Any, finished: Experiment) -> None:
    candidate = Candidate.objects.filter(experiment=finished).order_by("rank").first()
    runs = candidate.out_of_sample["runs"]
    runs[0]["metrics"] = {**runs[0]["metrics"], "profit_factor": None, "unknown": {"profit_factor": "no losing trade"}}
    Candidate.objects.filter(pk=candidate.pk).update(out_of_sample={**candidate.out_of_sample, "runs": runs})
    html = client_for(viewer).get(page_of(finished.pk)).content.decode()
    card = html[html.index(f'id="candidate-{candidate.pk}"') :]
    row = card[card.index('data-figure="profit_factor"') :]
    row = row[: row.index("</tr>")]
    assert "no losing trade" in text(row) and "0.00" not in row


def _inputs(html: str, block: str) -> dict[str, str]:
    """The inputs listed under one luck statistic: {key: value as shown}."""
    part = html[html.index(f'id="{block}"') :]
    part = part[: part.index("</details>")]
    return {m.group(1): unescape(m.group(2)) for m in re.finditer(r'data-input="(\w+)">([^<]*)<', part)}


def test_the_luck_statistics_are_said_with_their_inputs(viewer: Any, finished: Experiment) -> None:
    dsr = finished.luck["deflated_sharpe"]
    # Four tries of a random walk: the winner's edge is no better than the best of four no-skill tries.
    assert dsr["likely_luck"] and dsr["probability"] < 0.01
    html = client_for(viewer).get(page_of(finished.pk)).content.decode()
    said = section(html, "luck")
    assert "How likely the winner is luck" in said
    assert "Likely luck" in section(html, "luck-dsr-verdict")
    assert section(html, "luck-dsr-probability") == "0.0 %"
    assert "below 95.0 % it is called likely luck" in text(html)
    inputs = _inputs(html, "luck-dsr")
    assert inputs["trials"] == "4" and inputs["observations"] == "2" and inputs["threshold"] == "95.0 %"
    assert inputs["expected_max_sharpe"] == f"{dsr['expected_max_sharpe']:,.2f}"
    # One train/test split: no PBO, and why.
    assert section(html, "luck-pbo-reason") == (
        "Not computed: PBO is computed over walk-forward folds; this experiment has one train/test split."
    )


def test_walk_forward_gives_the_probability_of_overfitting_with_its_inputs(viewer: Any, operator: Any) -> None:
    store_bars()
    experiment = started(
        operator,
        train=None,
        test=None,
        walk_forward={"folds": 2, "start": "2025-12-15T14:00:00Z", "end": "2025-12-17T14:00:00Z"},
    )
    experiment = drive(experiment.pk)
    assert experiment.status == "SUCCEEDED", experiment.error
    client = client_for(viewer)
    html = client.get(page_of(experiment.pk)).content.decode()
    # Two days cannot be cut into 16 blocks: said, with the inputs it had.
    assert "fewer than the 16 blocks" in section(html, "luck-pbo-reason")
    assert _inputs(html, "luck-pbo")["slices"] == "16" and _inputs(html, "luck-pbo")["periods"] == "3"
    # Both folds' figures, side by side.
    candidate = Candidate.objects.filter(experiment=experiment, rank=1).get()
    card = html[html.index(f'id="candidate-{candidate.pk}"') :]
    card = card[: card.index("</article>")]
    assert 'data-fold="1"' in card and 'data-fold="2"' in card and "Fold 2" in text(card)

    # A longer history (its result as the lab stores it): the probability and its inputs.
    rng = np.random.default_rng(3)
    result = stats.pbo(rng.normal(0, 1, size=(64, 6)), slices=8)
    assert result.probability is not None
    luck = {**experiment.luck, "pbo": dataclasses.asdict(result), "pbo_reason": None}
    Experiment.objects.filter(pk=experiment.pk).update(luck=luck)
    html = client.get(page_of(experiment.pk)).content.decode()
    assert section(html, "luck-pbo-probability") == f"{result.probability * 100:.1f} %"
    inputs = _inputs(html, "luck-pbo")
    assert inputs["combinations"] == "70" and inputs["slices"] == "8" and inputs["trials"] == "6"
    assert ("More often than not" in section(html, "luck-pbo")) is (result.probability > 0.5)


def test_the_heatmap_axes_come_from_the_url_and_a_bad_one_is_said(viewer: Any, finished: Experiment) -> None:
    client = client_for(viewer)
    html = client.get(page_of(finished.pk)).content.decode()
    assert 'id="heatmap-table" data-x="fast_period" data-y="slow_period"' in html
    assert len([s for s in _cells(html).values() if s == "figure"]) == 4
    swapped = client.get(page_of(finished.pk), {"x": "slow_period", "y": "none", "cell": "mean"}).content.decode()
    assert 'data-x="slow_period" data-y="none"' in swapped
    assert '<option value="mean" selected>' in swapped
    # The poll's URLs keep the choice (a refresh keeps what was opened).
    running = started(finished.created_by)
    polled = client.get(page_of(running.pk), {"x": "slow_period"}).content.decode()
    assert f'hx-get="/lab/experiments/{running.pk}/?x=slow_period&amp;part=live"' in polled
    bad = client.get(page_of(finished.pk), {"x": "atr_period"}).content.decode()
    assert "Ignored: ATR period is not a parameter this experiment varies." in text(section(bad, "heatmap-ignored"))


def test_failed_runs_are_named_with_their_backtests(viewer: Any, operator: Any) -> None:
    store_bars()
    experiment = started(operator)
    broken = Backtest.objects.filter(lab_run__experiment=experiment).order_by("pk").first()
    Backtest.objects.filter(pk=broken.pk).update(instrument="MNQ")  # its bars are missing: DATA_UNAVAILABLE
    experiment = drive(experiment.pk)
    html = client_for(viewer).get(page_of(experiment.pk)).content.decode()
    failures = section(html, "experiment-failures")
    assert "1 run failed" in failures
    row = section(html, f"failure-{broken.pk}")
    assert "DATA_UNAVAILABLE" in row and "In sample" in row
    assert f'href="/backtests/{broken.pk}/"' in html


def test_a_failed_experiment_says_why_nothing_was_ranked(viewer: Any, operator: Any) -> None:
    experiment = drive(started(operator).pk)  # no bars stored: every run fails
    assert experiment.status == "FAILED"
    html = client_for(viewer).get(page_of(experiment.pk)).content.decode()
    banner = section(html, "experiment-failed")
    assert "EXPERIMENT_NOTHING_RANKED" in banner and experiment.error["trace_id"] in banner
    assert "4 runs failed" in section(html, "experiment-failures")
    assert "No candidate" in section(html, "no-candidates")


# --- the review --------------------------------------------------------------------------------------


def test_review_without_an_ai_key_says_so_and_links_to_connections(operator: Any, finished: Experiment) -> None:
    response = client_for(operator, htmx=True).post(f"/lab/experiments/{finished.pk}/review")
    html = response.content.decode()
    assert response.status_code == 200 and html.lstrip().startswith('<section class="card" id="review"')
    assert "INTEGRATION_KEY_MISSING" in html and 'href="/connections/' in html
    assert "ANTHROPIC_API_KEY" in html
    finished.refresh_from_db()
    assert finished.reviewed_at is None
    assert client_for(operator).post(f"/lab/experiments/{finished.pk}/review").status_code == 409


def test_review_with_a_provider_shows_the_text_provider_model_and_time(
    operator: Any, viewer: Any, finished: Experiment, provider_stub: Any
) -> None:
    provider_stub("anthropic")
    response = client_for(operator, htmx=True).post(f"/lab/experiments/{finished.pk}/review")
    assert response.status_code == 200
    assert REPLY_TEXT.split("\n")[0] in text(response.content.decode())
    page = client_for(viewer).get(page_of(finished.pk)).content.decode()
    source = section(page, "review-source")
    finished.refresh_from_db()
    assert "anthropic" in source and finished.review_model in source
    assert finished.reviewed_at.strftime("%Y-%m-%d %H:%M") in source
    assert 'id="review-button"' not in page  # a viewer reads it, asks for none


def test_a_viewer_cannot_ask_for_a_review_or_graduate(viewer: Any, finished: Experiment) -> None:
    candidate = Candidate.objects.filter(experiment=finished, rank=1).get()
    client = client_for(viewer, htmx=True)
    assert client.post(f"/lab/experiments/{finished.pk}/review").status_code == 403
    assert client.post(f"/lab/candidates/{candidate.pk}/graduate", {"into": "new"}).status_code == 403
    page = client_for(viewer).get(page_of(finished.pk)).content.decode()
    assert 'data-action="graduate"' not in page
    assert not Bot.objects.exists()


# --- graduate ----------------------------------------------------------------------------------------


@pytest.fixture
def promotable(settings: Any, operator: Any) -> Experiment:
    settings.BACKTEST_CLASSIFICATION = {**settings.BACKTEST_CLASSIFICATION, "min_trades": 1, "min_trading_days": 1}
    settings.BACKTEST_GATE_MIN_TRADING_DAYS = 1
    store_trend_after(datetime.fromisoformat(TEST["start"].replace("Z", "+00:00")))
    experiment = drive(started(operator).pk)
    assert experiment.status == "SUCCEEDED", experiment.error
    return experiment


def test_graduate_lands_on_the_new_bots_page_where_the_gate_reads_the_evidence(
    operator: Any, promotable: Experiment
) -> None:
    best = Candidate.objects.get(experiment=promotable, rank=1)
    assert best.verdict == "PROMOTABLE"
    page = client_for(operator).get(page_of(promotable.pk)).content.decode()
    assert f'hx-post="/lab/candidates/{best.pk}/graduate"' in page
    response = client_for(operator, htmx=True).post(
        f"/lab/candidates/{best.pk}/graduate", {"into": "new", "name": "MES trend from the lab page"}
    )
    bot = Bot.objects.get()
    assert response["HX-Redirect"] == f"/bots/{bot.pk}/"
    assert (bot.name, bot.stage, bot.parameters) == ("MES trend from the lab page", "LAB", best.parameters)
    best.refresh_from_db()
    (evidence,) = best.graduation_backtests
    # The bot's page: the gate waits for its evidence, then reads it.
    bot_page = client_for(operator).get(f"/bots/{bot.pk}/").content.decode()
    assert "not there yet" in section(bot_page, "backtest-evidence")
    run_job(evidence)
    bot_page = client_for(operator).get(f"/bots/{bot.pk}/").content.decode()
    assert "Evidence for LAB → PAPER: there." in section(bot_page, "backtest-evidence")
    # The experiment's page says where the candidate went.
    page = client_for(operator).get(page_of(promotable.pk)).content.decode()
    graduated = section(page, f"candidate-{best.pk}-graduated")
    assert "MES trend from the lab page" in graduated and f"backtest #{evidence}" in graduated


def test_graduate_into_an_existing_bot_makes_a_new_config_version(operator: Any, finished: Experiment) -> None:
    bot = BotFactory(strategy_key="trend_following", instrument="MES", timeframe="5m")
    other = BotFactory(strategy_key="breakout", instrument="MES", timeframe="5m")
    best = Candidate.objects.get(experiment=finished, rank=1)
    page = client_for(operator).get(page_of(finished.pk)).content.decode()
    form = page[page.index(f'id="graduate-{best.pk}"') :]
    form = form[: form.index("</form>")]
    assert f'<option value="{bot.pk}">' in form and f'<option value="{other.pk}">' not in form
    before = bot.config_version
    response = client_for(operator).post(f"/lab/candidates/{best.pk}/graduate", {"into": "bot", "bot_id": bot.pk})
    assert response.status_code == 302 and response["Location"] == f"/bots/{bot.pk}/"
    bot.refresh_from_db()
    assert bot.config_version == before + 1 and bot.parameters == best.parameters


def test_a_refused_graduation_is_said_in_place(operator: Any, finished: Experiment) -> None:
    best = Candidate.objects.get(experiment=finished, rank=1)
    other = BotFactory(strategy_key="breakout", instrument="MES", timeframe="5m")
    client = client_for(operator, htmx=True)
    response = client.post(f"/lab/candidates/{best.pk}/graduate", {"into": "bot", "bot_id": other.pk})
    html = response.content.decode()
    assert html.lstrip().startswith(f'<div class="graduate" id="graduate-{best.pk}"')
    assert "VALIDATION_ERROR" in html and "Graduate into a new bot instead" in text(html)
    missing = client.post(f"/lab/candidates/{best.pk}/graduate", {"into": "bot"})
    assert "Choose the bot that gets a new config version" in text(missing.content.decode())
    assert Bot.objects.count() == 1  # only the other one


def test_a_candidate_not_yet_ranked_out_of_sample_cannot_be_graduated(operator: Any) -> None:
    store_bars()
    experiment = started(operator)
    for run in Backtest.objects.filter(lab_run__experiment=experiment).order_by("pk"):
        run_job(run.pk)  # the in-sample runs only: the candidates exist, their out-of-sample runs wait
    experiment.refresh_from_db()
    assert experiment.phase == "OUT_OF_SAMPLE"
    candidate = Candidate.objects.filter(experiment=experiment).order_by("in_sample_rank").first()
    page = client_for(operator).get(page_of(experiment.pk)).content.decode()
    assert f'id="candidate-{candidate.pk}"' in page and 'data-action="graduate"' not in page
    assert "re-running the best sets on the out-of-sample bars" in section(page, "experiment-status")
    response = client_for(operator, htmx=True).post(f"/lab/candidates/{candidate.pk}/graduate", {"into": "new"})
    assert "CANDIDATE_NOT_GRADUABLE" in response.content.decode()
    assert not Bot.objects.exists()
