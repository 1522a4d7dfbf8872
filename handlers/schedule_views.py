"""Texts and keyboards of /schedule (handlers.schedule): the wizard's steps, the preview,
the list of posts and the edit menu. No state, no database."""

from __future__ import annotations

from datetime import datetime
from html import escape

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import ScheduleCB, ScheduleItemCB
from handlers.common import quote
from handlers.wizard import button, nav_row
from models import Deal, Group
from services.calendar import Listed
from services.parsing import ParseError
from services.post_draft import PostDraft
from views.deal_texts import local_time, parse_error_text


def _b(text: str, step: str, action: str, value: str = "") -> InlineKeyboardButton:
    return button(text, ScheduleCB, step, action, value)


def _item(text: str, action: str, post_id: int = 0) -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=text, callback_data=ScheduleItemCB(action=action, post_id=post_id).pack()
    )


def _markup(rows: list[list[InlineKeyboardButton]]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=rows)


def weekday_names() -> list[str]:
    return [_("Mon"), _("Tue"), _("Wed"), _("Thu"), _("Fri"), _("Sat"), _("Sun")]


def schedule_error_text(err: ParseError) -> str:
    d = err.detail
    reason = err.reason
    if reason == "post_empty":
        return _("The post is empty. Send a text, for example <code>Fresh mangoes today!</code>")
    if reason == "post_too_long":
        return _(
            "That post is {length} characters long; Telegram allows at most {max}. "
            "Shorten it, or split it into two posts."
        ).format(length=d.get("length"), max=d.get("max"))
    if reason == "caption_too_long":
        return _(
            "A photo's caption can have at most {max} characters; this one has {length}. "
            "Shorten it, or send the text without the photo (up to 4096)."
        ).format(length=d.get("length"), max=d.get("max"))
    if reason == "clock_format":
        return _("Send the time as HH:MM, for example <code>09:00</code> or <code>18:30</code>.")
    if reason == "clock_invalid":
        return _(
            "That time does not exist: hours go from 00 to 23 and minutes from 00 to 59. "
            "For example <code>09:00</code>."
        )
    if reason == "cron_seconds":
        return _(
            "Cron expressions with seconds are not supported: use five fields (minute hour "
            "day month weekday), for example <code>0 9 * * 1-5</code>."
        )
    if reason == "cron_format":
        return _(
            "That is not a cron expression I understand. Use five fields (minute hour day "
            "month weekday), for example <code>0 9 * * 1-5</code> (09:00 on weekdays)."
        )
    if reason == "cron_never":
        return _(
            "That cron expression never fires (for example, February has no 30th). "
            "Try <code>0 9 1 * *</code> (09:00 on the 1st of each month)."
        )
    if reason == "cron_too_often":
        return _(
            "That would post more often than once every {minutes} minutes, which floods the "
            "group. Choose a slower schedule, for example <code>0 */2 * * *</code> (every two "
            "hours)."
        ).format(minutes=d.get("minutes", 5))
    if reason == "weekdays_empty":
        return _("Choose at least one day of the week, then tap Done.")
    if reason == "deal_unknown":
        return _(
            "That is not one of your deals. Send a deal code like <code>D12</code>, or tap "
            "No button."
        )
    if reason == "groups_empty":
        return _("Choose at least one group, then tap Done.")
    if reason == "groups_not_yours":
        return _("You can only choose groups you administer. Choose them again, then tap Done.")
    return parse_error_text(err)


def not_an_owner() -> str:
    return _(
        "Only owners and administrators of a group can schedule posts. Add me to your group "
        "and make me an administrator, then send /schedule again."
    )


def cancelled() -> str:
    return _("Cancelled; nothing was saved.")


def use_buttons() -> str:
    return _("Please use the buttons above, or /cancel.")


def not_your_group() -> str:
    return _("You do not administer that group.")


def post_gone() -> str:
    return _("That post no longer exists.")


def describe(kind: str, at_time: str | None, weekdays: str | None, cron: str | None) -> str:
    if kind == "daily":
        return _("daily at {time}").format(time=at_time)
    if kind == "weekly":
        names = weekday_names()
        days = ", ".join(names[int(d)] for d in (weekdays or "").split(",") if d)
        return _("every {days} at {time}").format(days=days, time=at_time)
    if kind == "cron":
        return _("cron {expr}").format(expr=f"<code>{quote(cron)}</code>")
    return _("once")


# ---------------------------------------------------------------- the wizard's steps


def groups_step(draft: PostDraft, owned: list[Group]) -> tuple[str, InlineKeyboardMarkup]:
    chosen = set(draft.group_ids)
    rows = [
        [_b(("✅ " if g.id in chosen else "▫️ ") + g.title, "groups", "toggle", str(g.id))]
        for g in owned
    ]
    rows.append([_b(_("Done"), "groups", "done")])
    rows.append(nav_row(ScheduleCB, "groups", back=False))
    if draft.edit is not None:
        text = _("Post #{id}: which groups get it? Tap to choose, then Done.").format(id=draft.edit)
    else:
        text = _("New scheduled post. Which groups get it? Tap to choose, then Done.")
    return text, _markup(rows)


def content_step() -> tuple[str, InlineKeyboardMarkup]:
    text = _(
        "Send the post: a text (up to 4096 characters), or a photo with a caption (up to "
        "1024 characters)."
    )
    return text, _markup([nav_row(ScheduleCB, "content")])


def button_step(deals: list[Deal]) -> tuple[str, InlineKeyboardMarkup]:
    rows = [[_b(f"{d.code} · {d.title}"[:60], "button", "deal", str(d.id))] for d in deals]
    rows.append([_b(_("No button"), "button", "nodeal")])
    rows.append(nav_row(ScheduleCB, "button"))
    text = _(
        "Add a button that opens one of your deals? Tap a deal or send its code (for "
        "example <code>D12</code>), or tap No button."
    )
    return text, _markup(rows)


def kind_step(draft: PostDraft) -> tuple[str, InlineKeyboardMarkup]:
    rows = [
        [_b(_("Once"), "kind", "kind", "once"), _b(_("Daily"), "kind", "kind", "daily")],
        [
            _b(_("Weekly"), "kind", "kind", "weekly"),
            _b(_("Cron expression"), "kind", "kind", "cron"),
        ],
        nav_row(ScheduleCB, "kind"),
    ]
    text = _("When should it be posted?")
    if draft.edit is not None:
        text = _("Post #{id}: new schedule.").format(id=draft.edit) + "\n" + text
    return text, _markup(rows)


def days_step(draft: PostDraft) -> tuple[str, InlineKeyboardMarkup]:
    chosen = set(draft.weekdays or [])
    names = weekday_names()
    row = [_b(("✅" if i in chosen else "") + names[i], "days", "day", str(i)) for i in range(7)]
    rows = [row[:4], row[4:], [_b(_("Done"), "days", "done")], nav_row(ScheduleCB, "days")]
    return _("On which days of the week? Tap to choose, then Done."), _markup(rows)


def when_step(draft: PostDraft, zone: str) -> tuple[str, InlineKeyboardMarkup]:
    if draft.kind == "once":
        text = _(
            "When? Send the local time in {zone}, for example <code>2026-12-01 20:00</code> "
            "or <code>tomorrow 09:00</code>."
        ).format(zone=zone)
    elif draft.kind == "cron":
        text = _(
            "Send a cron expression with five fields (minute hour day month weekday), in "
            "each group's local time, for example <code>0 9 * * 1-5</code> (09:00 on "
            "weekdays). At most one post every 5 minutes."
        )
    else:
        text = _(
            "At what time? Send HH:MM in each group's local time, for example <code>09:00</code>."
        )
    return text, _markup([nav_row(ScheduleCB, "when")])


def post_view(
    draft: PostDraft, bot_username: str | None
) -> tuple[str, InlineKeyboardMarkup | None]:
    """The post as the groups will see it: its text and its button to a deal."""
    markup = None
    if draft.deal_id:
        link = f"https://t.me/{bot_username}?start=deal_{draft.deal_id}"
        label = "🛒 " + _("Open deal D{id}").format(id=draft.deal_id)
        markup = _markup([[InlineKeyboardButton(text=label, url=link)]])
    return escape(draft.text or "", quote=False), markup


def preview_step(
    draft: PostDraft, groups: list[Group], runs: list[tuple[Group, datetime]]
) -> tuple[str, InlineKeyboardMarkup]:
    spec = draft.spec()
    lines = [
        "<b>" + _("Preview") + "</b>",
        _("Groups: {groups}").format(groups=", ".join(quote(g.title) for g in groups)),
        _("Schedule: {schedule}").format(
            schedule=describe(spec.kind, spec.at_time, spec.weekdays, spec.cron)
        ),
    ]
    for group, moment in runs:
        lines.append(
            _("Next run in {group}: {when}").format(
                group=quote(group.title), when=local_time(moment, group.timezone)
            )
        )
    rows = [[_b("💾 " + _("Save"), "preview", "save")], nav_row(ScheduleCB, "preview")]
    return "\n".join(lines), _markup(rows)


def saved(post_id: int) -> str:
    return _("Scheduled as post #{id}. /schedule list shows your posts.").format(id=post_id)


# ---------------------------------------------------------------- the list and the edits


def post_list(items: list[Listed]) -> tuple[str, InlineKeyboardMarkup]:
    new_row = [_item("➕ " + _("New post"), "new")]
    if not items:
        text = _("You have no scheduled posts. Send /schedule to create one.")
        return text, _markup([new_row])
    lines = ["<b>" + _("Your scheduled posts") + "</b>"]
    rows = []
    for item in items:
        post = item.post
        head = f"#{post.id} · " + describe(post.kind, post.at_time, post.weekdays, post.cron)
        if post.paused:
            head += " · ⏸ " + _("paused")
        if item.next_run is not None:
            group, moment = item.next_run
            head += " · " + _("next: {when}").format(when=local_time(moment, group.timezone))
        elif not post.paused:
            head += " · " + _("done")
        snippet = (post.text or _("(photo)")).strip().splitlines()[0] if post.text else _("(photo)")
        lines.append(head)
        lines.append(
            "   " + quote(snippet[:60]) + " → " + ", ".join(quote(g.title) for g in item.groups)
        )
        toggle = (
            _item("▶ " + _("Resume") + f" #{post.id}", "resume", post.id)
            if post.paused
            else _item("⏸ " + _("Pause") + f" #{post.id}", "pause", post.id)
        )
        rows.append(
            [
                toggle,
                _item("✏️ " + _("Edit") + f" #{post.id}", "edit", post.id),
                _item("🗑 " + _("Delete") + f" #{post.id}", "delete", post.id),
            ]
        )
    rows.append(new_row)
    return "\n".join(lines), _markup(rows)


def edit_menu(post_id: int) -> tuple[str, InlineKeyboardMarkup]:
    rows = [
        [
            _item("📝 " + _("Text"), "etext", post_id),
            _item("🕒 " + _("Schedule"), "etime", post_id),
            _item("👥 " + _("Groups"), "egroups", post_id),
        ],
        [_item("« " + _("Back"), "list", post_id)],
    ]
    return _("Post #{id}: what do you want to change?").format(id=post_id), _markup(rows)


def edit_text_prompt(post_id: int) -> str:
    return _("Send the new text for post #{id}.").format(id=post_id)


def text_updated(post_id: int) -> str:
    return _("Text of post #{id} updated.").format(id=post_id)


def schedule_updated() -> str:
    return _("Schedule of post #{id} updated.")


def groups_updated() -> str:
    return _("Groups of post #{id} updated.")


def runs_text(
    note: str, post_id: int, schedule: str, runs: list[tuple[Group, datetime | None]], paused: bool
) -> str:
    """After an edit: the post's schedule and its next run in each group."""
    lines = [note.format(id=post_id), _("Schedule: {schedule}").format(schedule=schedule)]
    for group, moment in runs:
        when = local_time(moment, group.timezone) if moment is not None else _("none")
        lines.append(_("Next run in {group}: {when}").format(group=quote(group.title), when=when))
    if paused:
        lines.append("⏸ " + _("paused"))
    return "\n".join(lines)
