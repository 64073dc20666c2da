"""The matrix on the Observatory's Backtests pages: the New matrix form (through the service of
POST /api/backtests/matrix, errors in place in words), a matrix's page (progress over its runs,
counts, Cancel, the ranked runs, the skipped combinations, the heatmap over two parameters chosen
in the URL), and the Backtests list's links and filter to a matrix. Through Django's client against
the real database; the small matrix here runs the real engine over stored bars (Celery is eager)."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from html import unescape
from typing import Any

import pytest
from django.test import Client

from apps.backtests import presentation, services
from apps.backtests.models import Backtest, BacktestMatrix, Status
from apps.core.errors import error_body
from tests.backtests.factories import DAY_END, DAY_START, StrategyBacktestFactory, store_walk
from tests.bots.factories import BotFactory

pytestmark = pytest.mark.django_db

LIST = "/backtests/"
NEW = "/backtests/matrix/new"
FORMAT = "%Y-%m-%dT%H:%M"
MIDDLE = DAY_START + timedelta(hours=12)


def _client(user: Any, *, htmx: bool = False) -> Client:
    client = Client(headers={"HX-Request": "true"}) if htmx else Client()
    client.force_login(user)
    return client


def _form(**overrides: Any) -> dict[str, Any]:
    """The New matrix form as a browser posts it: trend following on MES 1m, fast period 3 or 10
    against slow period 8 or 12 (10 against 8 breaks the strategy's rule), over the two halves of
    the stored day."""
    data: dict[str, Any] = {
        "source": "strategy",
        "strategy_key": "trend_following",
        "timeframe": "1m",
        "grid.trend_following.fast_period": "3, 10",
        "grid.trend_following.slow_period": "8,12",
        "grid.trend_following.atr_period": "5",
        "grid.trend_following.stop_atr_multiple": "1",
        "instruments": ["MES"],
        "windows.0.start": DAY_START.strftime(FORMAT),
        "windows.0.end": MIDDLE.strftime(FORMAT),
        "windows.1.start": MIDDLE.strftime(FORMAT),
        "windows.1.end": DAY_END.strftime(FORMAT),
        "windows.2.start": "",
        "windows.2.end": "",
        "objective": "expectancy",
        "fill_model.slippage_ticks": "",
        "fill_model.commission_per_contract": "",
        "initial_capital": "",
    }
    data.update(overrides)
    return data


def _text(html: str) -> str:
    """The page's words without tags or entities, whitespace collapsed."""
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def _section(html: str, element_id: str) -> str:
    match = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"', html)
    assert match, f"no element #{element_id}"
    tag, begin = match.group(1), match.start()
    end = html.index(f"</{tag}>", begin)
    return _text(html[begin:end])


def _cells(html: str) -> dict[tuple[str, str | None], dict[str, str]]:
    """The heatmap's cells by (x value, y value): their state and text."""
    out = {}
    for m in re.finditer(
        r'<td class="heat-cell[^"]*" data-x="([^"]+)"(?: data-y="([^"]+)")? data-state="(\w+)"[^>]*>([^<]*)</td>', html
    ):
        out[(m.group(1), m.group(2))] = {"state": m.group(3), "text": m.group(4)}
    return out


def _queued_matrix(operator: Any, **overrides: Any) -> BacktestMatrix:
    """A matrix created through the service and left QUEUED (its jobs are published on a commit
    that a test's transaction never makes)."""
    body = {
        "strategy_key": "trend_following",
        "parameters": {"atr_period": 5, "stop_atr_multiple": 1.0},
        "instrument": "MES",
        "timeframe": "1m",
        "grid": {"fast_period": [3, 5], "slow_period": [8, 12]},
        "windows": [{"start": DAY_START.isoformat(), "end": MIDDLE.isoformat()}],
        **overrides,
    }
    return services.matrix_create(data=body, actor=operator)


@pytest.fixture
def stored_day(settings: Any) -> int:
    settings.MARKET_DATA_RECENT_HOURS = 24 * 365 * 20  # the generated bars are final, however "recent"
    return store_walk(seed=23, start=DAY_START - timedelta(hours=3), end=DAY_END)


# --- roles -----------------------------------------------------------------------------------------


def test_a_viewer_reads_matrices_without_forms_or_buttons(viewer: Any, operator: Any) -> None:
    matrix = _queued_matrix(operator)
    html = _client(viewer).get(LIST).content.decode()
    assert f'id="matrix-{matrix.pk}"' in _section(html, "recent-matrices") or f'id="matrix-{matrix.pk}"' in html
    assert 'id="new-matrix"' not in html and "Run matrix" not in html
    page = _client(viewer).get(f"/backtests/matrix/{matrix.pk}/").content.decode()
    assert 'id="matrix-progress-bar"' in page and "Cancel matrix" not in page


def test_a_viewer_can_neither_create_nor_cancel_a_matrix(viewer: Any, operator: Any) -> None:
    matrix = _queued_matrix(operator)
    client = _client(viewer)
    assert client.post(NEW, _form()).status_code == 403
    assert client.post(f"/backtests/matrix/{matrix.pk}/cancel").status_code == 403
    assert BacktestMatrix.objects.count() == 1
    assert set(Backtest.objects.values_list("status", flat=True)) == {Status.QUEUED}


def test_a_user_without_a_role_gets_404_and_an_unknown_matrix_is_404(stranger: Any, viewer: Any, operator: Any) -> None:
    matrix = _queued_matrix(operator)
    assert _client(stranger).get(f"/backtests/matrix/{matrix.pk}/").status_code == 404
    assert _client(viewer).get("/backtests/matrix/999999/").status_code == 404


def test_an_operator_gets_the_new_matrix_form_in_words(operator: Any) -> None:
    html = _client(operator).get(LIST).content.decode()
    form = _section(html, "new-matrix")
    assert "Run matrix" in form
    # One grid input per catalogue parameter of every strategy, labelled, its base value shown.
    assert 'name="grid.mean_reversion.entry_zscore"' in html and 'name="grid.breakout.lookback_bars"' in html
    assert re.search(r'name="grid.trend_following.fast_period" value="" placeholder="20"', html)
    assert "Stop ATR multiple" in form
    # The objectives in words, with which way is better.
    assert "Expectancy — net per trade, highest first" in form
    assert "Max drawdown — deepest fall of the equity from a peak, lowest first" in form
    assert "max_drawdown" not in form and "fast_period" not in form


# --- the form's errors -----------------------------------------------------------------------------


def test_the_form_names_every_bad_field_in_place_and_keeps_what_was_typed(operator: Any) -> None:
    data = _form(
        instruments=[],
        **{
            "grid.trend_following.fast_period": "3, 500",
            "grid.trend_following.stop_atr_multiple": "1, lots",
            "windows.1.end": DAY_START.strftime(FORMAT),  # before its start
            "windows.2.start": DAY_START.strftime(FORMAT),  # a half-filled row
            "initial_capital": "0",
        },
    )
    response = _client(operator, htmx=True).post(NEW, data)
    assert response.status_code == 200  # htmx swaps only a 2xx: the form comes back with its errors
    html = response.content.decode()
    text = _text(html)
    assert "Nothing was started" in text
    assert "Instruments tick at least one instrument." in text
    assert "Fast period 500 must be between 2 and 200." in text
    assert "Stop ATR multiple 'lots' must be a number (float)." in text
    assert "Window 2 end must be after start." in text
    assert "Window 3 end choose a date and time (UTC)." in text
    assert "Initial capital must be a positive amount of USD" in text
    assert 'value="3, 500"' in html and 'value="1, lots"' in html  # what was typed stays
    assert "fast_period" not in text and "stop_atr_multiple" not in text  # no field names in the words
    assert not BacktestMatrix.objects.exists() and not Backtest.objects.exists()


def test_more_than_10000_runs_says_how_many_it_would_be(operator: Any) -> None:
    data = _form(
        **{
            "grid.trend_following.fast_period": ", ".join(str(v) for v in range(2, 102)),
            "grid.trend_following.slow_period": ", ".join(str(v) for v in range(200, 301)),
        }
    )
    text = _text(_client(operator, htmx=True).post(NEW, data).content.decode())
    assert "Grid: 20,200 runs (10,100 parameter combinations × 1 instrument(s) × 2 window(s))" in text
    assert "a matrix may have at most 10,000." in text
    assert not Backtest.objects.exists()


def test_a_grid_the_strategy_refuses_entirely_is_said_in_its_words(operator: Any) -> None:
    data = _form(**{"grid.trend_following.fast_period": "30", "grid.trend_following.slow_period": "20"})
    text = _text(_client(operator, htmx=True).post(NEW, data).content.decode())
    assert "every combination breaks a rule of Trend following: fast period must be smaller than slow period." in text


def test_the_form_without_htmx_answers_400_with_the_page(operator: Any) -> None:
    response = _client(operator).post(NEW, _form(strategy_key=""))
    assert response.status_code == 400
    assert "Strategy choose a strategy." in _text(response.content.decode())
    assert not BacktestMatrix.objects.exists()


def test_a_bots_matrix_from_the_form_varies_the_bots_configuration(operator: Any) -> None:
    bot = BotFactory(name="Grid bot", timeframe="1m")
    data = _form(
        source="bot",
        bot_id=str(bot.pk),
        strategy_key="",
        instruments=[],  # none ticked: the bot's own
        **{
            "grid.trend_following.fast_period": "",
            "grid.trend_following.slow_period": "",
            "grid.trend_following.atr_period": "",
            "grid.trend_following.stop_atr_multiple": "1.5, 3",
            "grid.breakout.lookback_bars": "10, 20",  # another strategy's inputs are not read
        },
    )
    response = _client(operator, htmx=True).post(NEW, data)
    matrix = BacktestMatrix.objects.get()
    assert response["HX-Redirect"] == f"/backtests/matrix/{matrix.pk}/"
    assert matrix.grid == {"stop_atr_multiple": [1.5, 3.0]} and matrix.instruments == ["MES"]
    runs = Backtest.objects.filter(matrix=matrix).order_by("id")
    assert [r.parameters for r in runs] == [{**bot.parameters, "stop_atr_multiple": v} for v in (1.5, 3.0)] * 2
    assert {(r.bot_id, r.config_version, r.created_by_id) for r in runs} == {(bot.pk, bot.config_version, operator.pk)}
    # The form lists the bot with its strategy and its values (the grid's base, shown as placeholders).
    html = _client(operator).get(LIST).content.decode()
    assert re.search(
        rf'<option value="{bot.pk}" data-strategy="trend_following" data-parameters="[^"]*fast_period', html
    )


# --- a real matrix, run to the end -----------------------------------------------------------------


def test_a_matrix_from_the_form_runs_and_its_page_ranks_the_runs_and_maps_them(
    operator: Any, stored_day: int, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):  # the jobs are published on commit, run eagerly
        response = _client(operator, htmx=True).post(NEW, _form())
    matrix = BacktestMatrix.objects.get()
    assert response.status_code == 200 and response["HX-Redirect"] == f"/backtests/matrix/{matrix.pk}/"
    runs = list(Backtest.objects.filter(matrix=matrix))
    assert len(runs) == matrix.runs == 6  # 3 allowed combinations × 2 windows; (10, 8) skipped
    assert {r.status for r in runs} == {Status.SUCCEEDED}, [r.error for r in runs]
    matrix.refresh_from_db()
    assert matrix.status == Status.SUCCEEDED and matrix.progress == 1.0

    html = _client(operator).get(f"/backtests/matrix/{matrix.pk}/").content.decode()
    assert 'hx-trigger="every 2s"' not in html and "Cancel matrix" not in html  # finished: no poll, no cancel
    assert _section(html, "count-succeeded").startswith(" 6 finished")
    # Ranked by expectancy, best first, nulls last; each row links its backtest's page.
    ranked = sorted(runs, key=lambda r: (r.metrics["expectancy"] is None, -Decimal(r.metrics["expectancy"] or 0), r.pk))
    order = [int(m) for m in re.findall(r'<tr id="run-(\d+)" data-status="SUCCEEDED">', html)]
    assert order == [r.pk for r in ranked]
    best = ranked[0]
    row = _section(html, f"run-{best.pk}")
    assert row.split()[0] == "1"
    assert f"{best.parameters['fast_period']} {best.parameters['slow_period']} MES" in row
    assert presentation.objective_value("expectancy", best.metrics["expectancy"]) in row
    assert f'href="/backtests/{best.pk}/"' in html
    # The combination the strategy refused, in words.
    skipped = _section(html, "matrix-skipped")
    assert "1 combination of the grid was not run" in skipped
    assert "Fast period 10, Slow period 8 — fast period must be smaller than slow period." in skipped

    # The heatmap: fast period across, slow period down; each cell the best of its two windows.
    cells = _cells(html)
    assert set(cells) == {(f, s) for f in ("3", "10") for s in ("8", "12")}
    assert cells[("10", "8")] == {"state": "skipped", "text": "skipped"}
    for fast, slow in (("3", "8"), ("3", "12"), ("10", "12")):
        pair = [r for r in runs if (r.parameters["fast_period"], r.parameters["slow_period"]) == (int(fast), int(slow))]
        figures = [Decimal(r.metrics["expectancy"]) for r in pair if r.metrics["expectancy"] is not None]
        if figures:
            assert cells[(fast, slow)] == {
                "state": "figure",
                "text": presentation.objective_value("expectancy", max(figures)),
            }
        else:
            assert cells[(fast, slow)]["state"] == "unknown"

    # Axes chosen by the operator are read from the URL (a refresh keeps them): slow across, one row.
    swapped = _client(operator).get(f"/backtests/matrix/{matrix.pk}/?x=slow_period&y=none&cell=mean").content.decode()
    assert 'id="heatmap-table" data-x="slow_period" data-y="none"' in swapped
    assert set(_cells(swapped)) == {("8", None), ("12", None)}
    assert re.search(r'<option value="slow_period" selected>Slow period</option>', swapped)
    assert re.search(r'<option value="mean" selected>', swapped)

    # The Backtests list: each run links its matrix, the list filters to it, the matrix is listed.
    other = StrategyBacktestFactory(finished=True)
    listing = _client(operator).get(f"{LIST}?matrix={matrix.pk}").content.decode()
    listed = {int(pk) for pk in re.findall(r'<tr id="backtest-(\d+)"', listing)}
    assert listed == {r.pk for r in runs} and other.pk not in listed
    assert f'run of <a href="/backtests/matrix/{matrix.pk}/">matrix #{matrix.pk}</a>' in listing
    assert f"The runs of matrix #{matrix.pk}" in _text(listing)
    recent = _section(listing, f"matrix-{matrix.pk}")
    assert "Finished" in recent and "Fast period, Slow period" in recent and "6 with a result" in recent
    # And a run's own page names its matrix.
    page = _client(operator).get(f"/backtests/{best.pk}/").content.decode()
    assert f'href="/backtests/matrix/{matrix.pk}/" id="backtest-matrix"' in page


def test_the_heatmap_ignores_axes_the_matrix_does_not_vary_and_says_so(operator: Any) -> None:
    matrix = _queued_matrix(operator)
    html = _client(operator).get(f"/backtests/matrix/{matrix.pk}/?x=atr_period&y=fast_period").content.decode()
    assert "Ignored: ATR period is not a parameter this matrix varies." in _text(html)
    assert 'data-x="slow_period" data-y="fast_period"' in html  # the valid choice stays; across is the other
    same = _client(operator).get(f"/backtests/matrix/{matrix.pk}/?x=fast_period&y=fast_period").content.decode()
    assert "Ignored: Fast period is already across, so it cannot also be down." in _text(same)
    assert 'data-x="fast_period" data-y="slow_period"' in same
    # Nothing has finished yet: every cell says so.
    assert {c["state"] for c in _cells(html).values()} == {"open"}


# --- a running matrix: progress, counts, cancel --------------------------------------------------


def test_a_running_matrix_shows_its_progress_and_counts_and_an_operator_can_cancel_it(operator: Any) -> None:
    matrix = _queued_matrix(operator)
    runs = list(Backtest.objects.filter(matrix=matrix).order_by("id"))
    Backtest.objects.filter(pk=runs[0].pk).update(status=Status.RUNNING, progress=0.5)
    client = _client(operator)
    html = client.get(f"/backtests/matrix/{matrix.pk}/").content.decode()
    assert 'id="matrix-progress-bar"' in html and 'value="12"' in html  # 0.5 of 4 runs
    assert 'hx-trigger="every 2s"' in html and "Cancel matrix" in html
    counts = "0 finished with a result · 1 running · 3 queued · 0 failed · 0 cancelled"
    assert _section(html, "matrix-counts").split() == counts.split(" ")

    # The poll answers the progress; when runs finished since the last one it tells the heatmap
    # and the ranking to refresh (matrix-changed).
    poll = _client(operator, htmx=True)
    quiet = poll.get(f"/backtests/matrix/{matrix.pk}/?part=live&finished=0")
    assert quiet.status_code == 200 and "HX-Trigger" not in quiet
    envelope = error_body(status=409, error_code="DATA_UNAVAILABLE", message="MES 1m: 30 bar(s) are missing.")
    Backtest.objects.filter(pk=runs[1].pk).update(status=Status.FAILED, error=envelope)
    moved = poll.get(f"/backtests/matrix/{matrix.pk}/?part=live&finished=0")
    assert "matrix-changed" in moved["HX-Trigger"] and 'value="38"' in moved.content.decode()
    assert 'id="matrix-finished" name="finished" value="1"' in moved.content.decode()
    results = poll.get(f"/backtests/matrix/{matrix.pk}/?part=results").content.decode()
    assert "DATA_UNAVAILABLE MES 1m: 30 bar(s) are missing." in _text(_section(results, f"run-{runs[1].pk}"))

    answer = _client(operator, htmx=True).post(f"/backtests/matrix/{matrix.pk}/cancel")
    assert answer["HX-Refresh"] == "true"
    matrix.refresh_from_db()
    assert matrix.status == Status.CANCELLED
    assert sorted(Backtest.objects.filter(matrix=matrix).values_list("status", flat=True)) == [
        "CANCELLED",
        "CANCELLED",
        "CANCELLED",
        "FAILED",
    ]
    page = client.get(f"/backtests/matrix/{matrix.pk}/").content.decode()
    assert 'id="matrix-cancelled"' in page and "Cancel matrix" not in page and 'hx-trigger="every 2s"' not in page
    # The poll of a page opened before: the matrix has finished, so the page reloads whole.
    assert poll.get(f"/backtests/matrix/{matrix.pk}/?part=live&finished=1")["HX-Refresh"] == "true"


def test_cancelling_a_finished_matrix_is_refused_in_place(operator: Any) -> None:
    matrix = _queued_matrix(operator, grid={"fast_period": [3]})
    Backtest.objects.filter(matrix=matrix).update(status=Status.CANCELLED)
    services.matrix_refresh(matrix_id=matrix.pk)
    html = _client(operator).get(f"/backtests/matrix/{matrix.pk}/").content.decode()
    assert "The grid gives every parameter one value, so there is nothing to map" in _text(html)
    assert 'id="heatmap-axes"' not in html and "none had finished, so nothing is ranked" in _text(html)
    answer = _client(operator, htmx=True).post(f"/backtests/matrix/{matrix.pk}/cancel")
    assert answer.status_code == 200
    text = _text(answer.content.decode())
    assert "BACKTEST_NOT_CANCELLABLE" in text and "Show this matrix as it is now" in text
    assert _client(operator).post(f"/backtests/matrix/{matrix.pk}/cancel").status_code == 409


def test_the_ranked_runs_come_a_page_at_a_time(viewer: Any, operator: Any) -> None:
    matrix = _queued_matrix(operator, grid={"fast_period": list(range(2, 8)), "slow_period": list(range(20, 30))})
    assert matrix.runs == 60
    client = _client(viewer)
    first = client.get(f"/backtests/matrix/{matrix.pk}/?x=slow_period").content.decode()
    assert first.count('<tr id="run-') == 50 and "Runs 1 to 50 of 60" in _text(first)
    assert f'href="/backtests/matrix/{matrix.pk}/?x=slow_period&amp;page=2#results"' in first
    second = client.get(f"/backtests/matrix/{matrix.pk}/?x=slow_period&page=2").content.decode()
    assert second.count('<tr id="run-') == 10 and "Runs 51 to 60 of 60" in _text(second)
    assert 'id="results-next"' not in second
    assert f'href="/backtests/matrix/{matrix.pk}/?x=slow_period#results"' in second


def test_the_recent_matrices_poll_only_while_one_is_open(viewer: Any, operator: Any) -> None:
    matrix = _queued_matrix(operator)
    client = _client(viewer, htmx=True)
    busy = client.get(f"{LIST}?part=matrices")
    assert busy.status_code == 200 and "every 3s" in busy.content.decode() and "<h1>" not in busy.content.decode()
    services.matrix_cancel(matrix=matrix, actor=operator)
    quiet = client.get(f"{LIST}?part=matrices")
    assert quiet.status_code == 286 and "every 3s" not in quiet.content.decode()
    assert "Cancelled" in _section(quiet.content.decode(), f"matrix-{matrix.pk}")


# --- the pure pieces -------------------------------------------------------------------------------


def test_the_heatmap_scales_from_worst_to_best_in_the_objective_s_direction() -> None:
    cells = [
        {
            "x": "5",
            "y": "20",
            "runs": 2,
            "open": 0,
            "succeeded": 2,
            "known": 2,
            "best": Decimal(100),
            "mean": Decimal(40),
        },
        {"x": "5", "y": "30", "runs": 1, "open": 1, "succeeded": 0, "known": 0, "best": None, "mean": None},
        {"x": "8", "y": "20", "runs": 1, "open": 0, "succeeded": 0, "known": 0, "best": None, "mean": None},
        {
            "x": "8",
            "y": "30",
            "runs": 1,
            "open": 0,
            "succeeded": 1,
            "known": 1,
            "best": Decimal(300),
            "mean": Decimal(300),
        },
    ]
    heat = presentation.heatmap(
        objective="max_drawdown", lowest_first=True, x_values=[5, 8], y_values=[20, 30], cells=cells
    )
    (a, b), (c, d) = (r["cells"] for r in heat["rows"])
    assert (a["state"], b["state"], c["state"], d["state"]) == ("figure", "none", "open", "figure")
    # A drawdown: the lowest is the best (green, hue 120), the highest the worst (red, hue 0).
    assert a["share"] == 1 and a["style"].startswith("background: hsl(120,")
    assert d["share"] == 0 and d["style"].startswith("background: hsl(0,")
    assert (heat["best"], heat["worst"]) == ("100.00 USD", "300.00 USD")
    assert a["why"] == "The best run of 2 finished runs; mean 40.00 USD"
    # 1.5 and "1.5" are one value; an absent pair was skipped by the strategy's rules.
    one = presentation.heatmap(
        objective="expectancy",
        lowest_first=False,
        x_values=[1.5, 3.0],
        y_values=None,
        cells=[{"x": "1.5", "runs": 1, "open": 0, "succeeded": 1, "known": 1, "best": Decimal("2.5"), "mean": None}],
    )
    assert [(c["x"], c["state"]) for c in one["rows"][0]["cells"]] == [("1.5", "figure"), ("3", "skipped")]
    assert presentation.heatmap(
        objective="expectancy", lowest_first=False, x_values=list(range(60)), y_values=list(range(60)), cells=[]
    )["too_big"]


def test_the_service_s_errors_go_back_to_the_form_row_they_came_from() -> None:
    from apps.backtests import forms

    fields = {
        "windows": {"1": {"end": ["must be after start."]}},
        "grid": {"fast_period": ["500 must be between 2 and 200."]},
        "instrument": ["must be one of: MES, MNQ."],
        "instruments": ["'XYZ' is not an instrument (MES, MNQ)."],
    }
    found = forms.matrix_field_errors(
        fields, strategy_key="trend_following", parameter_names=["fast_period"], window_rows=[0, 3]
    )
    assert found == {
        "windows.3.end": ["must be after start."],  # the second window sent was the form's fourth row
        "grid.trend_following.fast_period": ["500 must be between 2 and 200."],
        "instruments": ["'XYZ' is not an instrument (MES, MNQ)."],
    }
