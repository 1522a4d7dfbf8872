"""Texts and keyboards of protection from spam: the /settings card, the challenge message,
the answers to taps, /modlog and /allow."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __
from aiogram.utils.i18n import ngettext

from models import Group, ModSettings
from services.moderation import ChallengeView, LogLine
from services.timezones import to_local
from views.format import cut, quote

TEXT_LIMIT = 4096

EMOJI_NAMES = {
    "apple": __("apple"),
    "banana": __("banana"),
    "grapes": __("grapes"),
    "cherries": __("cherries"),
    "lemon": __("lemon"),
    "carrot": __("carrot"),
    "cat": __("cat"),
    "dog": __("dog"),
    "fish": __("fish"),
    "rocket": __("rocket"),
    "umbrella": __("umbrella"),
    "gift": __("gift"),
}


def on_off(value: bool) -> str:
    return _("on") if value else _("off")


def _rights_lines(row: ModSettings) -> list[str]:
    lines = [
        "",
        _(
            "I need two administrator rights for these rules: <b>Ban users</b> (to restrict "
            "newcomers until they pass the challenge and to mute floods) and <b>Delete "
            "messages</b> (to delete links, join messages and challenges)."
        ),
    ]
    if row.bot_can_restrict is False or (row.bot_can_restrict is None):
        lines.append(
            "⚠️ "
            + _(
                "I may not ban users here: new members are not restricted and floods are not muted."
            )
        )
    if row.bot_can_delete is False or (row.bot_can_delete is None):
        lines.append(
            "⚠️ "
            + _(
                "I may not delete messages here: links from newcomers and join messages stay, "
                "and challenges are not removed."
            )
        )
    return lines


def settings_text(group: Group, row: ModSettings, allowed: int) -> str:
    lines = [
        _("<b>Protection from spam in {title}</b>").format(title=quote(group.title)),
        _("Every rule is off until you turn it on. Administrators are always exempt."),
        "",
        "🧩 "
        + _("Challenge for new members: {value}").format(value=on_off(row.challenge))
        + "\n"
        + _(
            "A member who joins cannot write until they tap, within {minutes} minutes, the "
            "emoji my message names. A wrong tap or no tap keeps them restricted (undo in "
            "/modlog)."
        ).format(minutes=row.challenge_minutes),
        "🔗 "
        + (
            ngettext(
                "Links from newcomers: deleted during their first {n} day",
                "Links from newcomers: deleted during their first {n} days",
                row.link_days,
            ).format(n=row.link_days)
            if row.link_days
            else _("Links from newcomers: allowed")
        )
        + "\n"
        + _(
            "Links, invite links, @mentions and forwarded channel posts from members who "
            "joined recently are deleted (photos count by their caption; images are not "
            "scanned for QR codes)."
        ),
        "🌊 "
        + (
            _(
                "Flood limit: more than {count} messages in {seconds} seconds mutes for "
                "{minutes} minutes"
            ).format(count=row.flood_count, seconds=row.flood_seconds, minutes=row.mute_minutes)
            if row.flood_count
            else _("Flood limit: off")
        ),
        "👋 "
        + _("Delete join messages: {value}").format(value=on_off(row.delete_joins))
        + "\n"
        + _("Spam often lives in the names of accounts that join."),
        "",
        ngettext(
            "Allow-list: {n} member. In the group, reply to a member with /allow (or "
            "/allow @name), /unallow to remove.",
            "Allow-list: {n} members. In the group, reply to a member with /allow (or "
            "/allow @name), /unallow to remove.",
            allowed,
        ).format(n=allowed),
        _("Every action is logged: /modlog."),
    ]
    if row.challenge or row.link_days or row.flood_count or row.delete_joins:
        lines += _rights_lines(row)

    return "\n".join(lines)


def settings_labels() -> dict[str, str]:
    """The card's buttons: action → label."""
    return {
        "chal": "🧩 " + _("Challenge"),
        "link": "🔗 " + _("Links"),
        "flood": "🌊 " + _("Flood"),
        "joins": "👋 " + _("Join messages"),
        "back": _("« Settings"),
        "open": "🛡 " + _("Protection from spam"),
    }


# ---------------------------------------------------------------- the challenge


def challenge_text(view: ChallengeView) -> str:
    mention = f'<a href="tg://user?id={view.member_id}">{quote(view.member_name)}</a>'
    return _(
        "Welcome, {member}! To write here, tap the <b>{name}</b> within {minutes} minutes."
    ).format(member=mention, name=EMOJI_NAMES[view.answer_name], minutes=view.minutes)


def answer_text(outcome: str) -> str:
    if outcome == "passed":
        return _("Welcome! You can write now.")
    if outcome == "failed":
        return _("That was not it. You stay restricted; the group's admins can let you in.")
    if outcome == "not_yours":
        return _("This challenge is for someone else.")
    return _("This challenge is over.")


# ---------------------------------------------------------------- /modlog


def kind_text(kind: str) -> str:
    return {
        "link": _("link"),
        "invite": _("invite link"),
        "mention": _("@mention"),
        "forward": _("forwarded channel post"),
        "flood": _("flood"),
        "joins": _("join message"),
        "challenge": _("challenge"),
    }.get(kind, kind)


def action_text(action: str) -> str:
    return {
        "delete": _("message deleted"),
        "mute": _("muted"),
        "restrict": _("restricted until the challenge"),
        "pass": _("passed"),
        "fail": _("failed, stays restricted"),
        "undo": _("let in again by an admin"),
    }.get(action, action)


def log_text(groups: list[tuple[Group, list[LogLine]]]) -> tuple[str, list[tuple[int, int, str]]]:
    """The log and its Undo buttons: (group id, action id, label)."""
    if not groups:
        return _("Nothing logged yet in the groups you run."), []
    parts: list[str] = [_("<b>Moderation log</b> (newest first)")]
    undo: list[tuple[int, int, str]] = []
    for group, lines in groups:
        parts += ["", "<b>" + quote(group.title) + "</b>"]
        if not lines:
            parts.append(_("Nothing yet."))
        for line in lines:
            at = to_local(line.at, group.timezone).strftime("%m-%d %H:%M")
            entry = f"{at} · {quote(line.member_name)} · {kind_text(line.kind)}: "
            entry += action_text(line.action)
            if line.until is not None and line.action == "mute":
                until = to_local(line.until, group.timezone).strftime("%H:%M")
                entry += " " + _("until {time}").format(time=until)
            if line.undone:
                entry += " " + _("(undone)")
            parts.append(entry)
            if line.undoable and len(undo) < 20:
                label = _("Undo: let {name} write").format(name=line.member_name)
                undo.append((group.id, line.id, label[:60]))
    text = cut("\n".join(parts), TEXT_LIMIT)
    return text, undo


def undo_answer(done: bool) -> str:
    return _("Done: they can write again.") if done else _("This was undone already.")


# ---------------------------------------------------------------- /allow


def allow_usage() -> str:
    return _(
        "Reply to a member's message with /allow, or send /allow @username or /allow "
        "followed by their numeric id. /unallow removes them."
    )


def allow_unknown() -> str:
    return _("I don't know that member yet: reply to one of their messages with /allow.")


def allow_done(allowed: bool, changed: bool) -> str:
    if allowed:
        return (
            _("Added to the allow-list: my rules do not act on them.")
            if changed
            else _("They are on the allow-list already.")
        )
    return _("Removed from the allow-list.") if changed else _("They were not on the allow-list.")


def admins_only() -> str:
    return _("Only the owner and administrators of this group can do this.")
