"""Texts of activity: /top (the leaderboards), /members (core and dormant members), usage and
refusals."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from services import activity as activity_service
from services.activity import (
    CORE_MAX,
    CORE_MIN,
    CORE_WINDOW_DAYS,
    DORMANT_DAYS,
    Member,
    Ranked,
)
from views.format import quote

NAME_CHARS = 40
LIST_BUDGET = 1600  # characters per list of names: two lists stay far below 4096


def top_usage() -> str:
    return _("Usage: {usage} (the last 7 days) or {usage30} (the last 30 days)").format(
        usage="<code>/top</code>", usage30="<code>/top 30</code>"
    )


def core_usage(*, html: bool = True) -> str:
    example = "/members core 5"
    return _(
        "The core threshold is a whole number of days from {low} to {high}, for example {example}."
    ).format(low=CORE_MIN, high=CORE_MAX, example=f"<code>{example}</code>" if html else example)


def members_usage() -> str:
    return _("Usage: {usage}, or {core} to set the core threshold").format(
        usage="<code>/members</code>", core="<code>/members core 5</code>"
    )


def no_groups() -> str:
    return _(
        "You don't run any group with me yet. Add me to your group and make me an admin, "
        "then send /members again."
    )


def not_admin() -> str:
    return _("Only the owner and administrators of a group can see its members.")


def _cut(name: str) -> str:
    name = " ".join(name.split())
    return quote(name if len(name) <= NAME_CHARS else name[: NAME_CHARS - 1] + "…")


def _ranking(title: str, rows: list[Ranked]) -> list[str]:
    lines = [f"<b>{title}</b>"]
    if not rows:
        lines.append(_("Nobody yet."))
    lines += [f"{i}. {_cut(r.name)} · {r.count}" for i, r in enumerate(rows, 1)]
    return lines


def top_text(board: activity_service.Leaderboard) -> str:
    lines = _ranking(
        ngettext(
            "Most active in the last {n} day", "Most active in the last {n} days", board.days
        ).format(n=board.days),
        board.active,
    )
    lines.append("")
    lines += _ranking(
        ngettext(
            "Top inviters in the last {n} day", "Top inviters in the last {n} days", board.days
        ).format(n=board.days),
        board.inviters,
    )
    lines += [
        "",
        _("Activity counts messages and sign-ups. Send /hideme to keep your name off this list."),
    ]
    return "\n".join(lines)


def _names(members: list[Member], *, with_days: bool) -> str:
    """Names, comma separated, within LIST_BUDGET characters; the rest as '… and N more'."""
    parts: list[str] = []
    used = 0
    for member in members:
        part = _cut(member.first_name)
        if with_days:
            part += f" ({member.days})"
            if member.events:
                part += " 🎟" + str(member.events)
        if used + len(part) + 2 > LIST_BUDGET:
            break
        parts.append(part)
        used += len(part) + 2
    text = ", ".join(parts)
    rest = len(members) - len(parts)
    if rest:
        text += " " + ngettext("… and {n} more", "… and {n} more", rest).format(n=rest)
    return text


def report_text(report: activity_service.MemberReport) -> str:
    lines = [
        _("<b>Members of {title}</b>").format(title=quote(report.group.title)),
        "",
        _("<b>Core members</b> (active on at least {n} of the last {window} days): {count}").format(
            n=report.core_min_days, window=CORE_WINDOW_DAYS, count=len(report.core)
        ),
    ]
    if report.core:
        lines.append(_names(report.core, with_days=True))
        if any(member.events for member in report.core):
            lines.append(_("(🎟 N: offline events attended, checked in)"))
    lines += [
        "",
        _("<b>Dormant members</b> (no activity in the last {days} days): {count}").format(
            days=DORMANT_DAYS, count=len(report.dormant)
        ),
    ]
    if report.dormant:
        lines.append(_names(report.dormant, with_days=False))
    lines += [
        "",
        _(
            "Activity: messages, sign-ups and confirmed orders. I know the members I have seen "
            "join or write since I became an admin."
        ),
    ]
    return "\n".join(lines)
