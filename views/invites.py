"""Texts of invite links (/invite, /invites): the member's link, why there is none, the
notice to the group's admins, and who invited whom."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from models import Group
from services.timezones import to_local
from views.format import cut, quote, tg_len

TEXT_LIMIT = 4096


def link_text(group: Group, link: str) -> str:
    return "\n".join(
        [
            _("Your personal invite link to {title}:").format(title=quote(group.title)),
            link,
            "",
            _(
                "Send it to friends. Everyone who joins through it for the first time is "
                "credited to you (people who were in the group before do not count)."
            ),
        ]
    )


def _why(reason: str, title: str) -> str:
    if reason == "not_admin":
        return _("I am not an administrator of {title}.").format(title=title)
    return _(
        "I am an administrator of {title}, but without the “Invite users via link” right."
    ).format(title=title)


def _fix(reason: str, title: str, bot_name: str) -> str:
    if reason == "not_admin":
        return _(
            "What to change: make {bot} an administrator of {title} with the "
            "“Invite users via link” right."
        ).format(bot=bot_name, title=title)
    return _(
        "What to change: in {title}, edit the administrator rights of {bot} and turn on "
        "“Invite users via link”."
    ).format(bot=bot_name, title=title)


def member_refusal(reason: str, title: str, bot_name: str, told: bool) -> str:
    lines = [
        _("I can't create an invite link for you yet.") + " " + _why(reason, title),
        _fix(reason, title, bot_name),
        _("I have told the group's admins.")
        if told
        else _("Please pass this on to the group's owner."),
    ]
    return "\n".join(lines)


def admin_notice(reason: str, title: str, bot_name: str) -> str:
    return "\n".join(
        [
            _(
                "A member of {title} asked me for a personal invite link, but I can't create one."
            ).format(title=title)
            + " "
            + _why(reason, title),
            _fix(reason, title, bot_name),
        ]
    )


def not_in_group() -> str:
    return _("You are not in that group, or I am no longer in it.")


def report(group: Group, total: int, top, recent) -> str:
    title = quote(group.title)
    if total == 0:
        return _(
            "Nobody has joined {title} through a personal invite link yet. "
            "Members get theirs with /invite."
        ).format(title=title)
    head = [
        "<b>" + _("Invites to {title}").format(title=title) + "</b>",
        ngettext(
            "{n} member joined through a personal invite link.",
            "{n} members joined through personal invite links.",
            total,
        ).format(n=total),
        "",
        "<b>" + _("Top inviters") + "</b>",
    ]
    head += [f"{i}. {quote(cut(t.name, 32))} · {t.count}" for i, t in enumerate(top, start=1)]
    head += ["", "<b>" + _("Recent joins") + "</b>"]
    lines = [
        "• "
        + _("{member} ← {inviter} ({date})").format(
            member=quote(cut(r.member_name, 32)),
            inviter=quote(cut(r.inviter_name, 32)),
            date=to_local(r.joined_at, group.timezone).strftime("%Y-%m-%d"),
        )
        for r in recent
    ]
    while lines and tg_len("\n".join(head + lines)) > TEXT_LIMIT:
        lines.pop()
    return "\n".join(head + lines)
