"""Localized texts shared by the deal handlers: why an input was refused (with an example),
domain errors, status names, money and group-local times.

`parse_error_text(err)` turns a `ParseError` reason code from services.parsing or
services.deals into one sentence with an example; `domain_error_text(err)` does the same for
the other domain errors of deals and orders. Both need the i18n context of an update.
"""

from __future__ import annotations

from datetime import datetime

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from services import deals as deal_service
from services import orders as order_service
from services.errors import DomainError
from services.money import STARS, format_money, is_known_currency, minor_digits
from services.parsing import ParseError, reminder_list, symbol_of
from views.common import current_language
from views.format import reminder_distance, wall_clock


def money(amount: int, currency: str) -> str:
    return format_money(amount, currency, current_language())


def local_time(moment: datetime, timezone: str, *, with_zone: bool = True) -> str:
    """'2026-12-01 20:00 (Asia/Shanghai)': a UTC moment as the group's wall clock."""
    return wall_clock(moment, timezone, with_zone=with_zone)


def local_times(moment: datetime, timezones: list[str]) -> str:
    """The moment in each distinct timezone of the target groups, first group first."""
    seen = list(dict.fromkeys(timezones))
    return " · ".join(local_time(moment, tz) for tz in seen)


def units(n: int) -> str:
    return ngettext("{n} unit", "{n} units", n).format(n=n)


def participants(n: int) -> str:
    return ngettext("{n} participant", "{n} participants", n).format(n=n)


def status_name(status: str) -> str:
    names = {
        "scheduled": _("scheduled"),
        "open": _("open"),
        "paused": _("paused"),
        "succeeded": _("succeeded"),
        "failed": _("failed (minimum not reached)"),
        "cancelled": _("cancelled"),
    }
    return names.get(status, status)


def reminders_text(stored: str | None) -> str:
    """Deal.reminders for people: '2 h, 15 min before closing (default)', 'none'."""
    values = reminder_list(stored)
    if not values:
        return _("none")
    text = _("{times} before closing").format(times=", ".join(reminder_distance(m) for m in values))
    return text if stored is not None else _("{reminders} (default)").format(reminders=text)


def audience_text(audience: str | None) -> str:
    """Deal.audience for people: who may join from a shared inline card."""
    if audience == "anyone":
        return _("anyone with the card")
    return _("members of the group (default)")


def audience_line(audience: str | None) -> str:
    return _("Who may join from shared cards: {value}").format(value=audience_text(audience))


def audience_button(audience: str | None) -> str:
    """The button that switches to the other audience."""
    if audience == "anyone":
        return _("👥 Cards: members only")
    return _("🌍 Cards: open to anyone")


def audience_note(code: str, audience: str) -> str:
    if audience == "anyone":
        return _("{code}: anyone with a shared card may join it now.").format(code=code)
    return _("{code}: only members of the group may join it from shared cards now.").format(
        code=code
    )


def pay_method_name(method: str | None) -> str:
    """A way to pay, as its button and the preview name it."""
    if method == "card":
        return _("💳 Card")
    if method == "stars":
        return _("⭐ Telegram Stars")
    return _("💵 Cash on pickup")


def pay_terms(method: str | None, *, minimum: bool, pay_hours: int, hold_minutes: int) -> str:
    """How members pay a deal: 'card in private chat after the deal succeeds, within 24 h',
    'Telegram Stars at once (unit held 15 min)', 'cash on pickup'."""
    if method not in ("card", "stars"):
        return _("cash on pickup")
    name = _("card") if method == "card" else _("Telegram Stars")
    if minimum:
        return _("{method} in private chat after the deal succeeds, within {hours} h").format(
            method=name, hours=pay_hours
        )
    return _("{method} at once (unit held {minutes} min)").format(method=name, minutes=hold_minutes)


def pay_line(method: str | None, *, minimum: bool, pay_hours: int, hold_minutes: int) -> str:
    """'Pay: …' (pay_terms), the line of the preview and of a paid deal's post."""
    terms = pay_terms(method, minimum=minimum, pay_hours=pay_hours, hold_minutes=hold_minutes)
    return _("Pay: {terms}").format(terms=terms)


def amount_example(major: str, currency: str) -> str:
    """A major amount written with the currency's decimal places: '12.5' → '12.50' (CNY),
    '1250' (JPY: no decimals, ×100 so the example stays a realistic price), '12.500' (KWD)."""
    digits = minor_digits(currency) if is_known_currency(currency) or currency == STARS else 2
    whole, _dot, fraction = major.partition(".")
    if digits == 0:
        return str(int(whole) * 100 + int((fraction + "00")[:2]))
    return whole + "." + fraction.ljust(digits, "0")[:digits]


def price_example(currency: str, major: str = "12.5") -> str:
    """An example price in `currency` as the price step reads it: '<code>12.50</code> or
    <code>€12.50</code>' (a symbol the parser reads as this currency, else the code)."""
    plain = amount_example(major, currency)
    if currency == STARS:
        return "<code>50</code>"
    if not currency:
        return f"<code>{plain}</code>"
    symbol = symbol_of(currency)
    marked = f"{symbol}{plain}" if symbol else f"{plain} {currency}"
    return _("<code>{plain}</code> or <code>{marked}</code>").format(plain=plain, marked=marked)


def tiers_example(currency: str) -> str:
    """'10:11.00, 20:9.90' with the currency's decimal places (JPY: '10:1100, 20:990')."""
    return f"10:{amount_example('11', currency)}, 20:{amount_example('9.9', currency)}"


def parse_error_text(err: ParseError) -> str:
    """One sentence saying what was wrong with the input, with an example of a good one."""
    d = err.detail
    reason = err.reason
    currency = str(d.get("currency") or "")
    if reason == "price_format":
        return _("That is not a price I understand. Send a number, for example {example}.").format(
            example=price_example(currency)
        )
    if reason == "price_currency":
        return _(
            "“{value}” is not a currency code I know. Send the price in {currency}, "
            "for example {example}."
        ).format(value=d.get("value", ""), currency=currency, example=price_example(currency))
    if reason == "price_other_currency":
        return _(
            "This group uses {currency}; send the price in {currency}, for example {example}. "
            "(To sell in {given}, change the group's currency in /settings first.)"
        ).format(currency=currency, given=d.get("given", ""), example=price_example(currency))
    if reason == "price_positive":
        return _("The price must be more than zero, for example {example}.").format(
            example=price_example(currency)
        )
    if reason == "price_too_large":
        return _("That price is too large (at most {max}). For example {example}.").format(
            max=d.get("max", ""), example=price_example(currency)
        )
    if reason == "price_decimals":
        digits = int(d.get("digits", 0) or 0)
        if digits == 0:
            return _(
                "{currency} has no decimal places: send a whole amount, "
                "for example <code>1200</code>."
            ).format(currency=currency)
        example = "12." + "5" * digits
        return ngettext(
            "{currency} has {digits} decimal place: send at most {digits} digit after the point, "
            "for example <code>{example}</code>.",
            "{currency} has {digits} decimal places: send at most {digits} digits after the "
            "point, for example <code>{example}</code>.",
            digits,
        ).format(currency=currency, digits=digits, example=example)
    if reason == "tiers_format":
        return _(
            "Send the tiers as <code>units:price</code> pairs separated by commas, for example "
            "<code>{tiers}</code> (from 10 units the price is {price})."
        ).format(tiers=tiers_example(currency), price=amount_example("11", currency))
    if reason == "tiers_threshold":
        return _("Each tier starts at 2 to {max} units, for example <code>{tiers}</code>.").format(
            max=d.get("max", ""), tiers=tiers_example(currency)
        )
    if reason == "tiers_currency":
        return _(
            "Tier prices must be in {currency}, like the unit price, "
            "for example <code>{tiers}</code>."
        ).format(currency=currency, tiers=tiers_example(currency))
    if reason == "tiers_order":
        return _(
            "Tier thresholds must rise from one tier to the next, for example <code>{tiers}</code>."
        ).format(tiers=tiers_example(currency))
    if reason == "tiers_falling":
        return _(
            "Tier prices must fall as the thresholds rise, each below the unit price, "
            "for example <code>{tiers}</code> for a unit price of {price}."
        ).format(tiers=tiers_example(currency), price=amount_example("12", currency))
    if reason == "quantity_format":
        return _("Send a whole number, for example <code>10</code>.")
    if reason == "quantity_positive":
        return _("The number must be at least 1, for example <code>10</code>.")
    if reason == "quantity_too_large":
        return _("That number is too large: at most {max}, for example <code>10</code>.").format(
            max=d.get("max", "")
        )
    if reason == "not_text":
        return _("Please send the value as text, or use the buttons.")
    if reason == "title_empty":
        return _("The title cannot be empty, for example <code>Hainan mangoes 5 kg</code>.")
    if reason == "title_too_long":
        return _(
            "The title is {length} characters long; at most {max} are allowed, "
            "for example <code>Hainan mangoes 5 kg</code>."
        ).format(length=d.get("length", ""), max=d.get("max", ""))
    if reason == "text_too_long":
        return _("That text is {length} characters long; at most {max} are allowed.").format(
            length=d.get("length", ""), max=d.get("max", "")
        )
    if reason == "time_format":
        return _(
            "That is not a time I understand. For example <code>2026-12-01 20:00</code>, "
            "<code>tomorrow 20:00</code>, <code>明天 20:00</code> or <code>+2h</code>."
        )
    if reason == "time_invalid":
        return _(
            "That time of day does not exist: hours go from 00 to 23 and minutes from 00 to 59, "
            "for example <code>20:00</code>."
        )
    if reason == "date_invalid":
        return _(
            "That date does not exist, for example <code>2026-12-01 20:00</code> is a valid one."
        )
    if reason == "time_nonexistent":
        return _(
            "That local time does not exist: the clocks skip it for daylight saving time. "
            "Choose another time, for example one hour later."
        )
    if reason == "time_past":
        return _(
            "That time has already passed. Choose a time in the future, for example "
            "<code>tomorrow 20:00</code> or <code>+2h</code>."
        )
    if reason == "closes_before_opens":
        return _(
            "The deal must open before it closes. Choose an opening time before the closing "
            "time, or tap Now."
        )
    if reason == "closes_not_later":
        return _(
            "The new closing time must be later than the current one (and in the future); "
            "a deal can only be extended, for example <code>+1d</code>."
        )
    if reason == "min_kind":
        return _("Choose units or participants for the minimum.")
    if reason == "min_above_stock":
        return _(
            "The stock ({stock}) is below the minimum of units needed to succeed: "
            "send a larger stock, or go back and lower the minimum."
        ).format(stock=d.get("stock", ""))
    if reason == "no_groups":
        return _("Choose at least one group for the deal.")
    if reason == "no_stock_limit":
        return _("This deal has no stock limit, so there is no stock to add.")
    if reason == "photo_expected":
        return _("Send a photo (as a picture, not as a file), or tap Skip.")
    if reason == "use_buttons":
        return _("Please use the buttons below.")
    if reason == "reminders_format":
        return _(
            "That is not a list of reminders I understand. Send how long before closing, with "
            "units, for example <code>2h, 15m</code>, <code>90m</code>, <code>1h30m</code> or "
            "<code>2小时 15分钟</code>; <code>off</code> for none, <code>default</code> for "
            "2 h and 15 min."
        )
    if reason == "reminders_range":
        return _(
            "Each reminder must be between {min} minutes and {days} days before closing, "
            "for example <code>2h, 15m</code>."
        ).format(min=d.get("min", 5), days=d.get("max_days", 7))
    if reason == "reminders_too_many":
        return _("At most {max} reminders, for example <code>1d, 2h, 15m</code>.").format(
            max=d.get("max", 3)
        )
    if reason == "reminders_duplicate":
        return _("Each reminder must be at a different time, for example <code>2h, 15m</code>.")
    if reason == "stars_price":
        return _(
            "Send the price in Telegram Stars: a whole number from {min} to {max}, "
            "for example <code>50</code>."
        ).format(min=d.get("min", 1), max=d.get("max", 10000))
    if reason == "pay_method":
        return _("Choose how members pay: cash on pickup, card or Telegram Stars.")
    if reason == "pay_stars_currency":
        return _(
            "Telegram Stars are paid in Stars (XTR) only: choose Stars as the way to pay "
            "and give the price in Stars, for example <code>50</code>."
        )
    if reason == "pay_stars_digital":
        return _("Telegram Stars can pay for digital items only: mark the item digital.")
    if reason == "pay_tiers_minimum":
        return _(
            "Tier prices on a deal paid in the chat need a minimum: members pay once, after "
            "the deal succeeds, at the price it reached. Set a minimum, or remove the tiers."
        )
    if reason == "pay_hours":
        return _(
            "The payment deadline must be between {min} and {max} hours after the deal "
            "succeeds, for example <code>24</code>."
        ).format(min=d.get("min", 1), max=d.get("max", 168))
    if reason == "hold_minutes":
        return _(
            "A flash sale holds a unit for between {min} and {max} minutes while the member "
            "pays, for example <code>15</code>."
        ).format(min=d.get("min", 5), max=d.get("max", 120))
    return _("That input was not accepted. Please try again.")


def domain_error_text(err: DomainError) -> str:
    """A localized sentence for a domain error of deals and orders."""
    if isinstance(err, ParseError):
        return parse_error_text(err)
    if isinstance(err, (deal_service.DealNotFound, deal_service.NotDealOwner)):
        return _("That deal does not exist or is not yours.")
    if isinstance(err, deal_service.DealFinished):
        return _("This deal is closed: it can no longer be changed.")
    if isinstance(err, order_service.SoldOut):
        if err.left > 0:
            return ngettext(
                "Not enough stock: only {n} unit left.",
                "Not enough stock: only {n} units left.",
                err.left,
            ).format(n=err.left)
        return _("Sold out.")
    if isinstance(err, order_service.LimitExceeded):
        return ngettext(
            "The limit is {n} unit per person.", "The limit is {n} units per person.", err.limit
        ).format(n=err.limit)
    if isinstance(err, order_service.DealClosed):
        return _("This deal is closed.")
    if isinstance(err, order_service.DealPaused):
        return _("This deal is paused for now.")
    if isinstance(err, order_service.DealNotOpenYet):
        return _("This deal is not open yet.")
    if isinstance(err, order_service.NotJoined):
        return _("You have no order in this deal.")
    if isinstance(err, order_service.AlreadyJoined):
        return ngettext(
            "You are already in with {n} unit.", "You are already in with {n} units.", err.quantity
        ).format(n=err.quantity)
    if isinstance(err, order_service.BadQuantity):
        return _("That quantity is not possible.")
    if isinstance(err, order_service.TeamOnly):
        return _("This deal sells to teams only: start a team or join one.")
    if isinstance(err, order_service.InOffer) and err.bargain_id is not None:
        return _("Your order was bought through a bargain: ask the group's owner to change it.")
    if isinstance(err, order_service.InOffer):
        return _("Your order is a place in a team buy: use the team's card to leave it.")
    if isinstance(err, order_service.OrderPaid):
        return _(
            "Your order is paid, so it cannot be changed here; ask the group's owner for a refund."
        )
    return _("That is not possible right now.")
