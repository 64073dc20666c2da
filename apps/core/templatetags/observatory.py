"""Template filters that turn API words into operator words on the Observatory's pages.

Refusals and status items carry a `suggested_fix` that is also API text (SPEC §2 envelopes), so it
names endpoints: `POST /api/bots/{id}/unkill`. An API client should read that; an operator at a page
should get a link to the place that does it. `page_fix` rewrites such text for a page — the bot's
real id instead of `{id}`, the bot page's control instead of the endpoint, a link to Connections,
the Backtests page's New backtest for `POST /api/backtests`, a backtest's page for "backtest 41" —
without changing the API's contract."""

from __future__ import annotations

import re
from typing import Any

from django import template
from django.urls import reverse
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# A bot-page control for each bot endpoint an API fix may name, and its anchor on the bot page.
_BOT_CONTROLS = {
    "unkill": ("Unkill", "kill-switch"),
    "kill": ("Kill", "kill-switch"),
    "promote": ("Promote", "stage"),
    "demote": ("Demote", "stage"),
    "reconcile": ("Reconcile now", "venue"),
    "trading-state": ("Trading state", "venue"),
    "start": ("Start", "runner"),
    "stop": ("Stop", "runner"),
    "restart": ("Restart", "runner"),
}
_BOT_ENDPOINT = re.compile(r"\(?\b(?:POST|GET|PATCH) /api/bots/(\d+|\{id\})(?:/([a-z-]+))?/?\)?")
_RUNNER_STOP = re.compile(r"\(?\bPOST /api/runners/(?:\{id\}/)?stop\)?")
_BOTS_COLLECTION = re.compile(r"\b(POST|GET) /api/bots/?(?=[\s.,;)]|$)")
_KILL_ALL_RELEASE = re.compile(r"\(?\bPOST /api/system/kill-all/release\)?")
_CONNECTIONS = re.compile(r"\b(?:on )?the Connections page\b")
# The integrations' own fix texts: "… on the databento card in Connections (admin) …".
_IN_CONNECTIONS = re.compile(r"\bin Connections\b")
# "the Backtests page", alone or followed by its API equivalent ("…, or POST /api/backtests with
# {…}"), or the endpoint alone: a link to the Backtests page's New backtest form.
_BACKTEST_CREATE = r"\(?\bPOST /api/backtests\b(?!/)(?: with \{[^}]*\})?\)?"
_BACKTEST_ID = re.compile(r"\b([Bb]acktest) (\d{1,12})\b")
_BACKTESTS = re.compile(
    rf"(?P<page>\bthe Backtests page\b)(?P<api>,? or {_BACKTEST_CREATE})?|(?P<endpoint>{_BACKTEST_CREATE})"
)
_GATES = re.compile(r"every gate with passed=false in `gates`")
_CODE = re.compile(r"`([^`]+)`")


def _bot_link(bot_id: str | None, action: str | None, *, bracketed: bool) -> str:
    label, anchor = _BOT_CONTROLS.get(action or "", ("", ""))
    if bot_id is None:
        link = format_html('<a href="{}">the bot\'s page</a>', reverse("bot-pages:list"))
    else:
        url = reverse("bot-page:detail", args=[int(bot_id)])
        link = (
            format_html('<a href="{}#{}">{}</a> on the bot\'s page', url, anchor, label)
            if label
            else format_html('<a href="{}">the bot\'s page</a>', url)
        )
    return f"({link})" if bracketed else link


@register.filter(is_safe=True)
def page_fix(text: Any, bot_id: Any = None) -> SafeString:
    """The text, escaped, with endpoint names replaced by links to the page control that does it."""
    if text is None or text == "":
        return mark_safe("")
    known = str(bot_id) if bot_id not in (None, "") else None
    html = str(conditional_escape(str(text)))
    html = _GATES.sub("every failed gate in the table above", html)

    def bracketed(match: re.Match[str]) -> bool:
        return match.group(0).startswith("(") and match.group(0).endswith(")")

    def bot(match: re.Match[str]) -> str:
        raw_id, action = match.group(1), match.group(2)
        the_id = known if raw_id == "{id}" else raw_id
        return _bot_link(the_id, action, bracketed=bracketed(match))

    html = _BOT_ENDPOINT.sub(bot, html)
    html = _KILL_ALL_RELEASE.sub(
        lambda m: (
            ("(" if bracketed(m) else "")
            + "Release kill-all, in the header's Kill-all menu"
            + (")" if bracketed(m) else "")
        ),
        html,
    )
    html = _RUNNER_STOP.sub(lambda m: _bot_link(known, "stop", bracketed=bracketed(m)), html)
    html = _BOTS_COLLECTION.sub(
        lambda m: format_html(
            '<a href="{}">{}</a>',
            reverse("bot-pages:list") + ("#new-bot" if m.group(1) == "POST" else ""),
            "New bot on the Bots page" if m.group(1) == "POST" else "the Bots page",
        ),
        html,
    )
    new_backtest = reverse("backtest-pages:list") + (f"?run_bot={int(known)}" if known and known.isdigit() else "")

    def backtests(match: re.Match[str]) -> str:
        if match.group("page"):
            url = f"{new_backtest}#new-backtest" if match.group("api") else reverse("backtest-pages:list")
            return format_html('the <a href="{}">Backtests page</a>', url)
        link = format_html('<a href="{}#new-backtest">New backtest on the Backtests page</a>', new_backtest)
        return f"({link})" if bracketed(match) else link

    html = _BACKTESTS.sub(backtests, html)
    html = _BACKTEST_ID.sub(
        lambda m: format_html(
            '{} <a href="{}">{}</a>', m.group(1), reverse("backtest-pages:detail", args=[int(m.group(2))]), m.group(2)
        ),
        html,
    )
    html = _CONNECTIONS.sub(
        lambda m: format_html('on the <a href="{}">Connections page</a>', reverse("connections:list")), html
    )
    html = _IN_CONNECTIONS.sub(
        lambda m: format_html('in <a href="{}">Connections</a>', reverse("connections:list")), html
    )
    html = _CODE.sub(r"<code>\1</code>", html)
    return mark_safe(html)  # built from escaped text and format_html pieces


_ACRONYMS = {"atr": "ATR", "usd": "USD", "pnl": "PnL", "id": "id"}


@register.filter
def field_label(name: Any) -> str:
    """A parameter or limit name as words for a form label: max_orders_per_day → Max orders per day,
    stop_atr_multiple → Stop ATR multiple (the name itself stays in the API and the field's id)."""
    words = [_ACRONYMS.get(w, w) for w in str(name).split("_") if w]
    if not words:
        return ""
    first = words[0] if words[0] in _ACRONYMS.values() else words[0].capitalize()
    return " ".join([first, *words[1:]])
