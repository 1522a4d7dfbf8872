"""Texts and keyboards of the /newdeal wizard (handlers.deal_wizard): each step's prompt
(with the value it already has), the preview and the buttons. No state, no database."""

from __future__ import annotations

from datetime import datetime

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from handlers.callbacks import WizardCB
from handlers.common import quote
from handlers.wizard import button, nav_row
from models import Group
from services.deal_draft import (
    DEFAULT_HOLD_MINUTES,
    DEFAULT_PAY_HOURS,
    MAX_STARS,
    NUMBERED,
    OPTIONAL,
    DealDraft,
    Targets,
)
from services.deals import HOLD_MINUTES, PAY_HOURS
from services.timezones import to_local
from views.deal_texts import (
    amount_example,
    audience_button,
    audience_line,
    local_times,
    money,
    participants,
    pay_line,
    pay_method_name,
    price_example,
    reminders_text,
    tiers_example,
    units,
)


def _b(text: str, step: str, action: str, value: str = "") -> InlineKeyboardButton:
    return button(text, WizardCB, step, action, value)


def not_an_owner() -> str:
    return _(
        "Only owners and administrators of a group can create deals. Add me to your group and "
        "make me an administrator, then send /newdeal again."
    )


def discarded() -> str:
    return _("The draft is discarded. Send /newdeal to start again.")


def earlier_step() -> str:
    return _("This button belongs to an earlier step. Use the latest message.")


def no_draft() -> str:
    return _("This draft is no longer open. Send /newdeal to create a deal.")


def not_text() -> str:
    return _("Please send the value as text, or use the buttons.")


def not_your_group() -> str:
    return _("You are not an owner or administrator of that group.")


def groups_lost() -> str:
    return _("You no longer run some of the chosen groups. Choose the groups again.")


def choose_groups() -> str:
    return _("Choose the groups:")


def unfinished(title: str) -> tuple[str, InlineKeyboardMarkup]:
    text = _("You have an unfinished deal, “{title}”. Continue it or start over?").format(
        title=quote(title)
    )
    keyboard = [[_b(_("Continue"), "-", "resume"), _b(_("Start over"), "-", "restart")]]
    return text, InlineKeyboardMarkup(inline_keyboard=keyboard)


def copy_note(code: str, *, groups: bool) -> str:
    if groups:
        return _("Copy of {code}: choose the groups first.").format(code=code)
    return _("Copy of {code}: choose the new closing time.").format(code=code)


def tiers_text(draft: DealDraft) -> str:
    return ", ".join(
        _("from {units}: {price}").format(units=units(t), price=money(p, draft.currency or ""))
        for t, p in draft.tiers or []
    )


def minimum_text(draft: DealDraft) -> str:
    kind, value = draft.min_kind, draft.min_value
    if not kind or value is None:
        return _("none")
    return units(value) if kind == "units" else participants(value)


def current_value(step: str, draft: DealDraft, targets: Targets) -> str:
    if step == "title":
        return quote(draft.title)
    if step == "description":
        text = draft.description or ""
        return quote(text if len(text) <= 200 else text[:200] + "…")
    if step == "photo":
        return _("a photo")
    if step == "price":
        return money(draft.price or 0, draft.currency or "")
    if step == "pay":
        return pay_method_name(draft.pay_method)
    if step == "digital":
        return _("a digital item")
    if step == "pay_time":
        if draft.min_kind:
            return _("{hours} h").format(hours=draft.pay_hours)
        return _("{minutes} min").format(minutes=draft.hold_minutes)
    if step == "tiers":
        return tiers_text(draft)
    if step == "minimum":
        return minimum_text(draft)
    if step in ("min_value", "stock", "limit"):
        return str({"min_value": draft.min_value, "stock": draft.stock, "limit": draft.limit}[step])
    if step == "closes" and draft.closes_at is not None:
        return local_times(draft.closes_at, targets.timezones)
    if step == "opens" and draft.opens_at is not None:
        return local_times(draft.opens_at, targets.timezones)
    if step == "pickup":
        return quote(draft.pickup)
    if step == "reminders":
        return reminders_text(draft.reminders)
    return ""  # pragma: no cover


def step_prompt(step: str, draft: DealDraft, targets: Targets, moment: datetime) -> str:
    tz = targets.timezone
    local_now = to_local(moment, tz).strftime("%Y-%m-%d %H:%M")
    if step == "title":
        body = _(
            "Send the title of the deal (up to 100 characters), "
            "for example <code>Hainan mangoes 5 kg</code>."
        )
    elif step == "groups":
        body = _(
            "Which of your groups get this deal? Tap to select or unselect, then tap Done.\n"
            "Prices use the currency of the first group selected, and times its timezone."
        )
    elif step == "description":
        body = _("Send a description (what it is, origin, size, how it is packed…), or tap Skip.")
    elif step == "photo":
        body = _("Send a photo of the product, or tap Skip.")
    elif step == "pay":
        body = _(
            "How do members pay? Cash on pickup: you collect it yourself. Card: members pay "
            "in their private chat with me. Telegram Stars: for digital items only."
        )
        if draft.digital is False and draft.pay_method is None:
            body = (
                _("Telegram Stars can pay for digital items only. Choose another way to pay.")
                + "\n\n"
                + body
            )
    elif step == "digital":
        body = _(
            "Is it a digital item (a code, a file, a subscription, access to something)? "
            "Telegram Stars can pay for digital items only."
        )
    elif step == "pay_time" and draft.min_kind:
        body = _(
            "Members pay after the deal succeeds. How many hours do they have to pay? Send a "
            "number from {min} to {max}, for example <code>24</code>, or tap {default}."
        ).format(
            min=PAY_HOURS[0],
            max=PAY_HOURS[1],
            default=_("{hours} h").format(hours=DEFAULT_PAY_HOURS),
        )
    elif step == "pay_time":
        body = _(
            "Without a minimum this is a flash sale: members pay at once when they join, and "
            "the unit is held for them meanwhile. How many minutes is it held? Send a number "
            "from {min} to {max}, for example <code>15</code>, or tap {default}."
        ).format(
            min=HOLD_MINUTES[0],
            max=HOLD_MINUTES[1],
            default=_("{minutes} min").format(minutes=DEFAULT_HOLD_MINUTES),
        )
    elif step == "price" and draft.pay_method == "stars":
        body = _(
            "Send the unit price in Telegram Stars, a whole number from 1 to {max}, "
            "for example <code>50</code>."
        ).format(max=MAX_STARS)
    elif step == "price":
        body = _("Send the unit price in {currency}, for example {example}.").format(
            currency=targets.currency, example=price_example(targets.currency)
        )
    elif step == "tiers":
        cur = draft.currency or targets.currency
        body = _(
            "Optional price tiers: the more units are ordered in total, the lower the price for "
            "everyone. Send them as <code>units:price</code> in {currency}, for example "
            "<code>{tiers}</code> (from 10 units the price is {tier}), or tap Skip.\n"
            "Unit price: {price}."
        ).format(
            currency=cur,
            tiers=tiers_example(cur),
            tier=amount_example("11", cur),
            price=money(draft.price or 0, draft.currency or ""),
        )
    elif step == "minimum":
        body = _(
            "Does the deal need a minimum to succeed? If it is not reached by the closing time, "
            "the deal fails and nobody pays. Choose what to count, or tap No minimum."
        )
    elif step == "min_value":
        if draft.min_kind == "participants":
            body = _(
                "How many people must join for the deal to succeed? "
                "Send a number, for example <code>5</code>."
            )
        else:
            body = _(
                "How many units must be ordered in total for the deal to succeed? "
                "Send a number, for example <code>10</code>."
            )
    elif step == "stock":
        body = _(
            "How many units can you supply in total? Send a number, for example <code>50</code>, "
            "or tap Skip for no stock limit."
        )
    elif step == "limit":
        body = _(
            "At most how many units may one person order? Send a number, for example "
            "<code>3</code>, or tap Skip for no limit."
        )
    elif step == "closes":
        body = _(
            "When does the deal close? Send a time in {timezone} time (now {now}), for example "
            "<code>2026-12-01 20:00</code>, <code>tomorrow 20:00</code>, <code>明天 20:00</code> "
            "or <code>+2h</code>, or tap a quick pick."
        ).format(timezone=tz, now=local_now)
    elif step == "opens":
        body = _(
            "When does the deal open? Tap Now to publish it when you confirm, or send a later "
            "time in {timezone} time (now {now}), for example <code>tomorrow 09:00</code> "
            "or <code>+1h</code>."
        ).format(timezone=tz, now=local_now)
    elif step == "reminders":
        body = _(
            "Reminders in the groups before the deal closes, with the time left and what is "
            "still missing. Send how long before closing, for example <code>2h, 15m</code>, "
            "<code>90m</code>, <code>1h30m</code> or <code>2小时 15分钟</code> (at most 3, each "
            "between 5 minutes and 7 days), or tap a button."
        )
    elif step == "pickup":
        body = _(
            "Where and when do members get their goods? Send a pickup or delivery note, for "
            "example <code>Pick up at gate 3, Saturday 10:00–12:00</code>, or tap Skip."
        )
    else:
        return preview_text(draft, targets)
    if draft.quick:
        header = _("<b>Copy of a deal</b>")
    else:
        numbered = draft.numbered()
        shown = "minimum" if step == "min_value" else step
        if shown not in numbered:  # pragma: no cover - a passed step is not shown
            numbered = NUMBERED
        n = numbered.index(shown) + 1
        header = _("<b>New deal</b> · step {n} of {total}").format(n=n, total=len(numbered))
    text = header + "\n\n" + body
    if draft.can_keep(step, moment):  # a time that has passed is not offered again
        text += "\n\n" + _("Current: {value}").format(value=current_value(step, draft, targets))
    return text


def preview_text(draft: DealDraft, targets: Targets) -> str:
    currency = draft.currency or ""
    lines = [_("<b>Preview</b>"), "", f"<b>{quote(draft.title)}</b>"]
    if draft.description:
        lines.append(quote(draft.description))
    lines.append("")
    lines.append(_("Price: {price} per unit").format(price=money(draft.price or 0, currency)))
    if draft.tiers:
        lines.append(_("Tiers: {tiers}").format(tiers=tiers_text(draft)))
    lines.append(_("Minimum to succeed: {value}").format(value=minimum_text(draft)))
    lines.append(
        _("Stock: {value}").format(value=units(draft.stock))
        if draft.stock is not None
        else _("Stock: unlimited")
    )
    lines.append(
        _("Per person: at most {value}").format(value=units(draft.limit))
        if draft.limit is not None
        else _("Per person: no limit")
    )
    lines.append(
        _("Opens: {time}").format(time=local_times(draft.opens_at, targets.timezones))
        if draft.opens_at is not None
        else _("Opens: now, when you publish")
    )
    if draft.closes_at is not None:
        closes = local_times(draft.closes_at, targets.timezones)
        lines.append(_("Closes: {time}").format(time=closes))
    lines.append(_("Reminders: {value}").format(value=reminders_text(draft.reminders)))
    if draft.offers_choice() or draft.is_paid():
        lines.append(
            pay_line(
                draft.pay_method,
                minimum=bool(draft.min_kind),
                pay_hours=draft.pay_hours or DEFAULT_PAY_HOURS,
                hold_minutes=draft.hold_minutes or DEFAULT_HOLD_MINUTES,
            )
        )
        if draft.pay_method == "stars":
            lines.append(_("Digital item: yes"))
    if draft.pickup:
        lines.append(_("Pickup / delivery: {note}").format(note=quote(draft.pickup)))
    if draft.photo:
        lines.append(_("Photo: attached"))
    lines.append(audience_line(draft.audience))
    lines.append(
        _("Groups: {titles}").format(
            titles=", ".join(quote(g.title or str(g.chat_id)) for g in targets.groups)
        )
    )
    lines += ["", _("Publish this deal?")]
    return "\n".join(lines)


def step_keyboard(
    step: str,
    draft: DealDraft,
    targets: Targets,
    moment: datetime,
    owned: list[Group] | None = None,
) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    if step == "groups":
        chosen = set(draft.group_ids or [])
        for group in owned or []:
            mark = "✅" if group.id in chosen else "▫️"
            rows.append(
                [_b(f"{mark} {group.title or group.chat_id}", step, "toggle", str(group.id))]
            )
        rows.append([_b(_("Done"), step, "done")])
    elif step == "pay":
        rows += [[_b(pay_method_name(m), step, "method", m)] for m in draft.pay_choices()]
    elif step == "digital":
        rows.append(
            [
                _b(_("Yes, digital"), step, "digital", "yes"),
                _b(_("No, a physical item"), step, "digital", "no"),
            ]
        )
    elif step == "pay_time":
        default = (
            _("{hours} h").format(hours=DEFAULT_PAY_HOURS)
            if draft.min_kind
            else _("{minutes} min").format(minutes=DEFAULT_HOLD_MINUTES)
        )
        rows.append([_b(default, step, "default")])
    elif step == "minimum":
        rows.append(
            [
                _b(_("Units"), step, "kind", "units"),
                _b(_("Participants"), step, "kind", "participants"),
            ]
        )
        rows.append([_b(_("No minimum"), step, "skip")])
    elif step == "closes":
        picks = [_b(_("+2 hours"), step, "pick", "2h")]
        if to_local(moment, targets.timezone).hour < 19:
            picks.append(_b(_("Tonight 20:00"), step, "pick", "tonight"))
        rows.append(picks)
        rows.append(
            [
                _b(_("Tomorrow 20:00"), step, "pick", "tomorrow"),
                _b(_("+3 days"), step, "pick", "3d"),
            ]
        )
    elif step == "opens":
        rows.append([_b(_("Now"), step, "now")])
        rows.append(
            [
                _b(_("+1 hour"), step, "pick", "1h"),
                _b(_("Tomorrow 09:00"), step, "pick", "tomorrow9"),
            ]
        )
    elif step == "reminders":
        rows.append([_b(_("Keep default (2 h and 15 min)"), step, "default")])
        rows.append([_b(_("No reminders"), step, "skip")])
    elif step == "preview":
        other = "members" if draft.audience == "anyone" else "anyone"
        rows.append([_b(audience_button(draft.audience), step, "audience", other)])
        rows.append([_b(_("✅ Publish"), step, "publish")])
    if step in OPTIONAL:
        rows.append([_b(_("Skip"), step, "skip")])
    if step not in ("groups", "preview") and draft.can_keep(step, moment):
        rows.append([_b(_("Keep current"), step, "keep")])
    rows.append(nav_row(WizardCB, step))
    return InlineKeyboardMarkup(inline_keyboard=rows)
