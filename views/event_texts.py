"""Texts of offline events (services.gatherings): the event post in the group, the owner's
/event, the ticket (check-in code and QR) and reminders in private, the answers to Join and
Cancel, /checkin, and the refusals. HTML; user text escaped."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from models import Deal, Group, OfflineEvent, Order, User
from services import deals as deal_service
from services import gatherings, payments
from services.errors import DomainError
from services.parsing import ParseError
from views.format import cut, echo, money, post_time, quote, wall_clock

MAX_LISTED = 30
NAME_MAX = 32


def _price(deal: Deal, language: str) -> str:
    if deal.unit_price <= 0:
        return _("Free")
    return money(deal.unit_price, deal.currency, language)


def _name(user: User | None) -> str:
    if user is None:
        return _("a member")
    return cut(user.first_name or user.full_name or _("a member"), NAME_MAX)


def _when(event: OfflineEvent, timezone: str, language: str) -> str:
    return post_time(event.starts_at, timezone, language)


# ---------------------------------------------------------------- the post


def post_text(
    deal: Deal,
    event: OfflineEvent,
    signups: Sequence[tuple[Order, User | None]],
    group: Group,
    now: datetime,
    language: str,
    limit: int,
) -> str:
    """The event's post: title, place, local time, price, seats left, the sign-ups."""
    shown = min(len(signups), MAX_LISTED)
    while True:
        text = _compose(deal, event, signups, group, now, language, shown)
        if len(text) <= limit or shown == 0:
            return text
        shown = shown * 3 // 4


def _compose(deal, event, signups, group, now, language, shown) -> str:
    lines = [f"🎟 <b>{quote(deal.title)}</b>", ""]
    lines.append("📍 " + quote(event.place))
    lines.append("🕒 " + _when(event, group.timezone, language))
    lines.append("💰 " + _price(deal, language))
    if payments.is_paid(deal):
        lines.append(
            "💳 "
            + _("Pay in the chat within {n} minutes to keep your place.").format(
                n=deal.hold_minutes
            )
        )
    elif deal.unit_price > 0:
        lines.append("💳 " + _("Paid at the door."))
    total = deal.stock_total or 0
    left = deal.stock_left or 0
    if deal.status == "cancelled":
        lines.append("🚫 <b>" + _("Cancelled by the organiser.") + "</b>")
    elif deal.status in deal_service.FINAL_STATES or deal.closes_at <= now:
        lines.append("🔒 " + _("Sign-up is closed."))
    else:
        if deal.status == "paused":
            lines.append("⏸ " + _("Sign-up is paused by the organiser."))
        if left > 0:
            lines.append(
                "🪑 "
                + ngettext(
                    "{left} of {total} seat left", "{left} of {total} seats left", left
                ).format(left=left, total=total)
            )
        else:
            lines.append("🪑 " + _("Full: join the waitlist, a freed seat goes to the first."))
        lines.append(
            "⏰ "
            + _("Sign up by {when}").format(
                when=post_time(deal.closes_at, group.timezone, language)
            )
        )
    lines.append("")
    lines.append(
        "<b>"
        + _("Going")
        + "</b> · "
        + ngettext("{n} person", "{n} people", len(signups)).format(n=len(signups))
    )
    for index, (_order, user) in enumerate(signups[:shown], start=1):
        lines.append(f"{index}. {quote(_name(user))}")
    if len(signups) > shown:
        more = len(signups) - shown
        lines.append(ngettext("…and {n} more", "…and {n} more", more).format(n=more))
    lines.append("")
    lines.append(_("Code {code}").format(code=f"<code>{deal.code}</code>"))
    return "\n".join(lines)


def join_label() -> str:
    return "🙋 " + _("Join")


def cancel_label() -> str:
    return _("Cancel my place")


# ---------------------------------------------------------------- the owner


def usage_text(groups: Sequence[Group]) -> str:
    lines = [
        _("Usage: {usage}").format(
            usage="<code>/event N YYYY-MM-DD HH:MM capacity [deadline] [price|free] "
            "Title | Place</code>"
        ),
        _(
            "Times are in the group's local time; the sign-up deadline (a date and a time) "
            "defaults to the start. Example: {example}"
        ).format(example="<code>/event 1 2026-12-20 19:30 30 free Book club | Cafe Lu, 2F</code>"),
        _("Check members in with {usage} (or scan their QR code).").format(
            usage="<code>/checkin CODE</code>"
        ),
    ]
    if groups:
        lines.append("")
        lines.append(_("Your groups:"))
        for index, group in enumerate(groups, start=1):
            lines.append(f"{index}. {quote(group.title)} ({quote(group.timezone)})")
    else:
        lines.append(_("You administer no group with the bot in it."))
    return "\n".join(lines)


def created_text(deal: Deal, event: OfflineEvent, group: Group, language: str) -> str:
    return _(
        "Event {code} is created and is being posted to {group}: {title}, {when} "
        "({timezone}), {place}; {n} seats, sign-up until {deadline}, {price}."
    ).format(
        code=f"<code>{deal.code}</code>",
        group=quote(group.title),
        title=quote(deal.title),
        when=wall_clock(event.starts_at, group.timezone),
        timezone=quote(group.timezone),
        place=quote(event.place),
        n=deal.stock_total or 0,
        deadline=wall_clock(deal.closes_at, group.timezone),
        price=_price(deal, language),
    )


def no_group_text(count: int) -> str:
    if count == 0:
        return _("You administer no group with the bot in it.")
    return ngettext(
        "Choose the group by its number (you have {n} group).",
        "Choose the group by its number (you have {n} groups).",
        count,
    ).format(n=count)


# ---------------------------------------------------------------- members


def joined_answer(title: str, started: bool = True) -> str:
    text = _("You're in: {title}. Your check-in code is in our private chat.").format(
        title=cut(title, 60)
    )
    if not started:
        text += " " + _("Open a private chat with me and press Start to get it.")
    return cut(text, 200)


def waitlisted_answer(position: int, added: bool) -> str:
    if not added:
        return _("You are on the waitlist already (number {n}).").format(n=position)
    return _(
        "The event is full: you are on the waitlist (number {n}). We'll tell you if a "
        "seat frees up."
    ).format(n=position)


def already_in_answer() -> str:
    return _("You already have a place. Your check-in code is in our private chat.")


def cancelled_answer() -> str:
    return _("Your place is cancelled.")


def left_waitlist_answer() -> str:
    return _("You left the waitlist.")


def not_in_answer() -> str:
    return _("You have no place at this event.")


def ticket_caption(ticket: gatherings.Ticket, what: str, language: str) -> str:
    deal, event, order = ticket.deal, ticket.event, ticket.order
    timezone = ticket.group.timezone if ticket.group is not None else "UTC"
    head = _("🎉 A seat freed up: you're in!") if what == "admitted" else _("🎟 You're signed up!")
    lines = [
        head,
        f"<b>{quote(deal.title)}</b>",
        "📍 " + quote(event.place),
        "🕒 " + _when(event, timezone, language),
        _("Check-in code: {code}").format(code=f"<code>{order.pickup_code}</code>"),
        _("Show this code or the QR image at the door."),
    ]
    if payments.is_paid(deal) and order.paid_at is None:
        lines.append(_("Pay the invoice to keep your place."))
    return "\n".join(lines)


def reminder_text(ticket: gatherings.Ticket, what: str, language: str) -> str:
    deal, event, order = ticket.deal, ticket.event, ticket.order
    timezone = ticket.group.timezone if ticket.group is not None else "UTC"
    head = (_("⏰ Tomorrow: {title}") if what == "day" else _("⏰ Starting soon: {title}")).format(
        title=f"<b>{quote(deal.title)}</b>"
    )
    return "\n".join(
        [
            head,
            "📍 " + quote(event.place),
            "🕒 " + _when(event, timezone, language),
            _("Check-in code: {code}").format(code=f"<code>{order.pickup_code}</code>"),
        ]
    )


# ---------------------------------------------------------------- check-in


def checkin_usage() -> str:
    return _("Usage: {usage} (the member's check-in code).").format(
        usage="<code>/checkin CODE</code>"
    )


def checked_in_text(done: gatherings.CheckedIn, timezone: str) -> str:
    who = quote(_name(done.member))
    title = quote(done.deal.title)
    if done.first:
        return _("✅ {name} is checked in at {title}.").format(name=who, title=title)
    return _("{name} is already checked in at {title} (since {when}); nothing changed.").format(
        name=who, title=title, when=wall_clock(done.at, timezone)
    )


def event_error_text(err: DomainError) -> str | None:
    """The sentence for a refusal of events (None: not one of them)."""
    if isinstance(err, gatherings.UnknownCode):
        return _("No event place has the check-in code {code}.").format(
            code=f"<code>{echo(err.code)}</code>"
        )
    if isinstance(err, gatherings.NotEventAdmin):
        return _("Only an owner or administrator of the event's group can do that.")
    if isinstance(err, gatherings.NotAttending):
        return _("That place was cancelled: the member is not signed up.")
    if isinstance(err, gatherings.Unpaid):
        return _("That place is not paid yet.")
    if isinstance(err, ParseError):
        return _parse_text(err)
    return None


def _parse_text(err: ParseError) -> str | None:
    if err.reason == "event_usage":
        return _("Usage: {usage}. Example: {example}").format(
            usage="<code>/event N YYYY-MM-DD HH:MM capacity [deadline] [price|free] "
            "Title | Place</code>",
            example="<code>/event 1 2026-12-20 19:30 30 free Book club | Cafe Lu, 2F</code>",
        )
    if err.reason == "event_place":
        return _("Add the place after a “|”, for example {example}.").format(
            example="<code>… Book club | Cafe Lu, 2F</code>"
        )
    if err.reason == "event_place_long":
        return _("The place is too long: at most {max} characters.").format(
            max=err.detail.get("max", gatherings.MAX_PLACE)
        )
    if err.reason == "event_deadline":
        return _("The sign-up deadline must be before the event starts.")
    if err.reason == "event_far":
        return _("An event starts within a year.")
    return None


def qr_png(data: str) -> bytes:
    """A QR code of `data` as a PNG (segno: pure Python, no network)."""
    import io

    import segno

    out = io.BytesIO()
    segno.make(data, error="m").save(out, kind="png", scale=8, border=4)
    return out.getvalue()
