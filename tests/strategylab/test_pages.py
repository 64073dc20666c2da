"""The Lab pages of the Observatory: the Lab page (experiments with status and progress, its poll,
the New experiment form through the service of POST /api/strategy-lab/experiments with its errors
in place, in words), Start and Cancel, and the roles: a viewer reads and sees no button, an action
by a viewer is refused, a user without a role sees nothing. Through Django's client against the
real database; the experiments' runs are driven as the backtests worker runs their jobs."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from apps.backtests.models import OPEN_STATUSES, Backtest
from apps.strategylab import services
from apps.strategylab.models import Experiment
from tests.strategylab.conftest import TEST, TRAIN, body, drive, store_bars

pytestmark = pytest.mark.django_db

LAB = "/lab/"
NEW = "/lab/new"
FORMAT = "%Y-%m-%dT%H:%M"


def client_for(user: Any, *, htmx: bool = False) -> Client:
    client = Client(headers={"HX-Request": "true"}) if htmx else Client()
    client.force_login(user)
    return client


def text(html: str) -> str:
    """The page's words without tags or entities, whitespace collapsed."""
    return unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)))


def section(html: str, element_id: str) -> str:
    """The words of the element with this id (up to its first closing tag of the same name)."""
    match = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"', html)
    assert match, f"no element #{element_id}"
    tag, begin = match.group(1), match.start()
    end = html.index(f"</{tag}>", begin)
    return text(html[begin:end]).strip()


def experiment(actor: Any, **overrides: Any) -> Experiment:
    return services.experiment_create(data=body(**overrides), actor=actor)


def form(**overrides: Any) -> dict[str, Any]:
    """The New experiment form as a browser posts it: trend following on MES 5m, fast period 3 or
    5 against slow period 8 to 12 by 4, the stored train and test days."""
    data: dict[str, Any] = {
        "name": "MES trend from the page",
        "strategy_key": "trend_following",
        "timeframe": "5m",
        "instruments": ["MES"],
        "space.trend_following.fast_period.values": "3, 5",
        "space.trend_following.slow_period.min": "8",
        "space.trend_following.slow_period.max": "12",
        "space.trend_following.slow_period.step": "4",
        "window_mode": "split",
        "train.start": TRAIN["start"][:16],
        "train.end": TRAIN["end"][:16],
        "test.start": TEST["start"][:16],
        "test.end": TEST["end"][:16],
        "objective": "net_pnl",
        "top_k": "3",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


# --- the Lab page ----------------------------------------------------------------------------------


def test_it_lists_experiments_with_status_and_a_progress_bar_while_one_runs(viewer: Any, operator: Any) -> None:
    draft = experiment(operator, name="Draft search")
    running = services.experiment_start(experiment=experiment(operator, name="Running search"), actor=operator)
    html = client_for(viewer).get(LAB).content.decode()
    assert "Draft search" in section(html, f"experiment-{draft.pk}")
    assert "Not started" in section(html, f"experiment-{draft.pk}")
    row = section(html, f"experiment-{running.pk}")
    assert "Running" in row and "0 %" in row and "searching the parameter space" in row
    assert f'aria-label="Experiment {running.pk} progress"' in html
    # It polls while one runs, and says so.
    assert 'id="experiment-table" hx-ext="morph" hx-get=' in html and "every 3s" in html


def test_a_viewer_sees_no_form_and_no_button(viewer: Any, operator: Any) -> None:
    created = experiment(operator)
    html = client_for(viewer).get(LAB).content.decode()
    assert "New experiment" not in html and 'data-action="start"' not in html and 'data-action="cancel"' not in html
    page = client_for(viewer).get(f"/lab/experiments/{created.pk}/").content.decode()
    assert 'data-action="start"' not in page and "An operator starts it." in page


def test_an_operator_sees_the_form_and_start_and_cancel(operator: Any) -> None:
    created = experiment(operator)
    html = client_for(operator).get(LAB).content.decode()
    assert 'id="new-experiment"' in html
    actions = section(html, f"experiment-{created.pk}-actions")
    assert "Start" in actions and "Cancel" in actions


def test_a_user_without_a_role_sees_nothing(operator: Any) -> None:
    created = experiment(operator)
    nobody = get_user_model().objects.create_user(username="nobody", password="x")
    assert client_for(nobody).get(LAB).status_code == 404
    assert client_for(nobody).get(f"/lab/experiments/{created.pk}/").status_code == 404


def test_the_poll_stops_once_no_experiment_runs(viewer: Any, operator: Any) -> None:
    created = experiment(operator)
    poll = client_for(viewer, htmx=True).get(LAB)
    assert poll.status_code == 286  # htmx stops polling: nothing can change without someone acting
    services.experiment_start(experiment=created, actor=operator)
    poll = client_for(viewer, htmx=True).get(LAB)
    assert poll.status_code == 200 and f'id="experiment-{created.pk}"' in poll.content.decode()


def test_the_form_creates_a_draft_and_goes_to_its_page(operator: Any) -> None:
    response = client_for(operator, htmx=True).post(NEW, form())
    created = Experiment.objects.get()
    assert response.status_code == 200 and response["HX-Redirect"] == f"/lab/experiments/{created.pk}/"
    assert (created.status, created.name, created.objective, created.top_k) == (
        "DRAFT", "MES trend from the page", "net_pnl", 3,
    )  # fmt: skip
    assert created.parameter_space == {"fast_period": [3, 5], "slow_period": {"min": 8, "max": 12, "step": 4}}
    assert created.grid == {"fast_period": [3, 5], "slow_period": [8, 12]}
    assert created.folds[0]["train"] == TRAIN and created.folds[0]["test"] == TEST
    # Without htmx: a plain redirect to the same page.
    plain = client_for(operator).post(NEW, form(name="again"))
    assert plain.status_code == 302 and plain["Location"].startswith("/lab/experiments/")


def test_walk_forward_from_the_form(operator: Any) -> None:
    response = client_for(operator, htmx=True).post(
        NEW,
        form(
            window_mode="walk_forward",
            **{
                "walk_forward.start": "2025-12-15T14:00",
                "walk_forward.end": "2025-12-17T14:00",
                "walk_forward.folds": "2",
                "walk_forward.test_fraction": "0.25",
            },
        ),
    )
    assert response.status_code == 200, text(response.content.decode())
    created = Experiment.objects.get()
    assert created.windows["walk_forward"]["folds"] == 2 and len(created.folds) == 2


def test_a_bad_form_says_each_problem_beside_its_input_and_creates_nothing(operator: Any) -> None:
    response = client_for(operator, htmx=True).post(
        NEW,
        form(
            **{
                "space.trend_following.fast_period.values": "3, 600",
                "space.trend_following.slow_period.step": "",
            }
        ),
    )
    assert response.status_code == 200
    html = response.content.decode()
    words = text(html)
    assert "Nothing was created" in words
    assert "Fast period 600 must be between 2 and 200." in words
    assert "Slow period a range needs min, max and step: step missing." in words
    assert not Experiment.objects.exists()
    # What was typed is kept.
    assert 'value="3, 600"' in html and 'name="space.trend_following.slow_period.min" value="8"' in html


def test_a_time_that_is_not_one_is_said_and_kept(operator: Any) -> None:
    response = client_for(operator, htmx=True).post(NEW, form(**{"test.end": "tomorrow"}))
    words = text(response.content.decode())
    assert "Out-of-sample end must be a date and time, e.g. 2025-12-15 14:00 (UTC)." in words
    assert 'value="tomorrow"' in response.content.decode()
    assert not Experiment.objects.exists()


def test_a_window_error_names_the_input_in_words(operator: Any) -> None:
    response = client_for(operator, htmx=True).post(NEW, form(**{"train.end": TEST["end"][:16]}))
    words = text(response.content.decode())
    assert "In-sample end must be at or before the out-of-sample start (2025-12-16T14:00:00Z)" in words
    assert "test.start" not in words
    assert not Experiment.objects.exists()


def test_too_many_runs_is_said_with_how_many(operator: Any) -> None:
    response = client_for(operator, htmx=True).post(NEW, form(max_runs="2"))
    words = text(response.content.decode())
    assert "4 in-sample runs (4 parameter combinations × 1 instrument(s) × 1 fold(s)) is more than" in words
    assert not Experiment.objects.exists()


def test_the_form_without_anything_says_what_is_missing(operator: Any) -> None:
    response = client_for(operator).post(NEW, {"window_mode": "split"})
    assert response.status_code == 400
    words = text(response.content.decode())
    for said in (
        "Name give the experiment a name.",
        "Strategy choose a strategy.",
        "Instruments tick at least one instrument.",
        "In-sample start choose a date and time (UTC).",
    ):
        assert said in words


def test_a_viewer_cannot_create_start_or_cancel(viewer: Any, operator: Any) -> None:
    created = experiment(operator)
    client = client_for(viewer, htmx=True)
    for url in (NEW, f"/lab/experiments/{created.pk}/start", f"/lab/experiments/{created.pk}/cancel"):
        response = client.post(url, form())
        assert response.status_code == 403, url
        assert "PERMISSION_DENIED" in response.content.decode()
    created.refresh_from_db()
    assert created.status == "DRAFT" and Experiment.objects.count() == 1


def test_start_then_cancel_from_the_page(operator: Any) -> None:
    created = experiment(operator)
    client = client_for(operator, htmx=True)
    started = client.post(f"/lab/experiments/{created.pk}/start")
    assert started.status_code == 200 and started["HX-Refresh"] == "true"
    created.refresh_from_db()
    assert created.status == "RUNNING" and Backtest.objects.filter(lab_run__experiment=created).count() == 4
    cancelled = client.post(f"/lab/experiments/{created.pk}/cancel")
    assert cancelled["HX-Refresh"] == "true"
    created.refresh_from_db()
    assert created.status == "CANCELLED"
    assert not Backtest.objects.filter(lab_run__experiment=created, status__in=OPEN_STATUSES).exists()
    page = client_for(operator).get(f"/lab/experiments/{created.pk}/").content.decode()
    assert "Cancelled" in section(page, "experiment-cancelled")
    assert 'data-action="cancel"' not in page and 'data-action="start"' not in page


def test_a_refused_start_is_said_in_place(operator: Any) -> None:
    created = services.experiment_start(experiment=experiment(operator), actor=operator)
    response = client_for(operator, htmx=True).post(f"/lab/experiments/{created.pk}/start")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<div class="experiment-actions" id="experiment-{created.pk}-actions"')
    refusal = text(html)
    assert "EXPERIMENT_STATE_CONFLICT" in refusal and "only a DRAFT experiment can be started" in refusal
    assert "Show this experiment as it is now" in refusal and "Cancel" in refusal
    plain = client_for(operator).post(f"/lab/experiments/{created.pk}/start")
    assert plain.status_code == 409


def test_a_finished_experiment_is_listed_as_finished_without_buttons(operator: Any) -> None:
    store_bars()
    created = services.experiment_start(experiment=experiment(operator), actor=operator)
    drive(created.pk)
    html = client_for(operator).get(LAB).content.decode()
    row = section(html, f"experiment-{created.pk}")
    assert "Finished" in row and "progress" not in row
    assert 'data-action="start"' not in html and 'data-action="cancel"' not in html


def test_a_walk_forward_error_is_said_beside_its_input(operator: Any) -> None:
    response = client_for(operator, htmx=True).post(
        NEW,
        form(
            window_mode="walk_forward",
            **{
                "walk_forward.start": "2025-12-17T14:00",
                "walk_forward.end": "2025-12-15T14:00",
                "walk_forward.folds": "1",
            },
        ),
    )
    html = response.content.decode()
    assert "Folds must be a whole number of folds from 2 to 20." in text(html)
    assert "Span end must be after start." in text(html)
    assert 'name="walk_forward.folds" value="1"' in html and 'id="id-lab-mode-walk-forward" checked' in html
    assert not Experiment.objects.exists()
