"""Texts of polls (services.polls): the owner's /poll and /polls, the results sent at closing,
the "Start a deal" buttons' labels and the refusals. HTML."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from models import Group, Poll
from services import polls
from services.errors import DomainError
from services.polls import Results
from views.format import cut, echo, post_time, quote, tg_len

__all__ = [
    "created_text",
    "deal_label",
    "groups_text",
    "list_text",
    "poll_error_text",
    "results_text",
    "titled_note",
    "usage_text",
]

MAX_TEXT = 4096
LABEL_MAX = 40  # an option in a button's label
TITLE_MAX = 40  # a group's title in a list of groups
GROUPS_SHOWN = 5  # groups named under the results


def _titles(groups: list[Group], shown: int | None = None) -> str:
    names = [quote(cut(g.title, TITLE_MAX)) for g in groups[:shown]]
    if shown is not None and len(groups) > shown:
        names.append(_("…and {n} more").format(n=len(groups) - shown))
    return ", ".join(names)


def usage_text() -> str:
    return _(
        "Ask your groups a question (their numbers in the list below):\n"
        "<code>/poll 1,2 3d Which fruit next week? | Mangoes | Lychees | Durian</code>\n"
        "<code>/poll 1 until tomorrow 20:00 anon multi Pickup days? | Sat | Sun</code>\n"
        "The poll closes after a duration (<code>30m</code>, <code>2h</code>, <code>3d</code>, "
        "up to {days} days) or at a time in the first group's timezone. <code>anon</code>: "
        "votes are anonymous; <code>multi</code>: several answers. A question of at most "
        "{question} characters, then 2 to 10 options separated by <code>|</code> (or one per "
        "line). /polls shows your polls and their votes."
    ).format(days=polls.MAX_DAYS, question=polls.MAX_QUESTION)


def groups_text(groups: list[Group]) -> str:
    lines = [usage_text(), ""]
    for number, group in enumerate(groups, start=1):
        lines.append(f"{number}. <b>{quote(group.title)}</b>")
    if not groups:
        lines.append(_("You do not run any group yet."))
    return "\n".join(lines)


def _kind(poll: Poll) -> str:
    anonymity = _("anonymous") if poll.anonymous else _("votes visible to you")
    answers = _("several answers") if poll.multiple else _("one answer")
    return f"{anonymity}, {answers}"


def created_text(poll: Poll, groups: list[Group], language: str) -> str:
    where = "<b>" + _titles(groups) + "</b>"
    return _("Poll P{id} is on its way to {groups} ({kind}). It closes {when}.").format(
        id=poll.id,
        groups=where,
        kind=_kind(poll),
        when=post_time(poll.closes_at, groups[0].timezone, language),
    )


def _figures(found: Results) -> list[str]:
    total = sum(found.counts)
    lines = []
    top = set(found.top)
    for index, (option, count) in enumerate(zip(found.options, found.counts, strict=True)):
        share = f" ({round(100 * count / total)}%)" if total else ""
        mark = "🏆 " if index in top else ""
        lines.append(f"  {mark}{quote(option)}: <b>{count}</b>{share}")
    lines.append("  " + ngettext("{n} voter", "{n} voters", found.voters).format(n=found.voters))
    return lines


def _head(found: Results, language: str) -> str:
    poll = found.poll
    tz = found.groups[0].timezone if found.groups else "UTC"
    if poll.status == "open":
        state = _("open until {when}").format(when=post_time(poll.closes_at, tz, language))
    else:
        state = _("closed {when}").format(
            when=post_time(poll.closed_at or poll.closes_at, tz, language)
        )
    return f"<b>P{poll.id}</b> {quote(poll.question)} · {state}"


def results_text(found: Results, language: str) -> str:
    """The owner's message when the poll closes."""
    lines = [
        _("📊 Poll P{id} has closed.").format(id=found.poll.id),
        "",
        "<b>" + quote(found.poll.question) + "</b>",
        *_figures(found),
    ]
    if found.groups:
        groups = _titles(found.groups, GROUPS_SHOWN)
        lines.append(_("Asked in: {groups}").format(groups=groups))
    if found.top:
        lines += ["", _("Start a deal from the winning option with a button below.")]
    return "\n".join(lines)  # within 4096: a question of 300, 10 options of 100, 5 titles


def list_text(listed: list[Results], language: str) -> str:
    """/polls: the owner's latest polls with their figures."""
    if not listed:
        return _("You have not created any poll yet.") + "\n\n" + usage_text()
    text = _("Your polls (the latest first):")
    for found in listed:  # whole polls only, within Telegram's 4096 (the rest: "…")
        block = "\n".join(["", _head(found, language), *_figures(found)])
        if tg_len(text + block + "\n…") > MAX_TEXT:
            return text + "\n…"
        text += "\n" + block
    return text


def deal_label(option: str) -> str:
    return _("Start a deal: {option}").format(option=cut(option, LABEL_MAX))


def titled_note(poll: Poll, title: str) -> str:
    """Above the first step of /newdeal started from a poll's option."""
    return _("Deal title from poll P{id}: <b>{title}</b>").format(id=poll.id, title=quote(title))


def poll_error_text(err: DomainError) -> str | None:
    """The sentence for a refusal of polls (None: not one of them)."""
    if isinstance(err, polls.PollNotFound):
        return _("That poll does not exist.")
    if not isinstance(err, polls.BadPoll):
        return None
    what = {
        "usage": usage_text(),
        "groups": _("“{value}” is not a list of your groups' numbers (such as 1 or 1,3)."),
        "time": _(
            "“{value}” is not a closing time ahead: a duration such as 30m, 2h, 3d (up to "
            "{days} days) or until a time such as <code>until tomorrow 20:00</code>."
        ),
        "question": _("A poll needs a question of 1 to {question} characters."),
        "options": _("A poll needs 2 to 10 options, separated by | (you gave {value})."),
        "option": _("An option is at most {option} characters: “{value}” is longer."),
        "duplicate": _("Two options are the same: make each one different."),
    }.get(err.what, usage_text())
    return what.format(
        value=echo(err.value),
        days=polls.MAX_DAYS,
        question=polls.MAX_QUESTION,
        option=polls.MAX_OPTION,
    )
