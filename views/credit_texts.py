"""Texts of the commission ledger, shared by /commission, /mycredit and the owner's order
actions: the reasons a percentage or a payout was refused, ledger lines, and the private
notices a member gets when credit is earned, reversed or given back; the /commission card
of a group (its keyboards take handlers.credit.CommissionCB as `cb`)."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from models import CreditEntry, Deal, Group
from services.credit import BadDays, BadPercent, CannotSpend, format_percent
from services.money import format_money
from views.format import echo, quote


def percent_text(bp: int) -> str:
    return _("{percent}%").format(percent=format_percent(bp))


def bad_percent_text(err: BadPercent) -> str:
    value = echo(err.value)
    if err.reason == "out_of_range":
        return _(
            "The commission must be from 0 to 50%; “{value}” is outside that. "
            "For example <code>5</code> or <code>7.5</code>. Nothing was changed."
        ).format(value=value)
    if err.reason == "too_precise":
        return _(
            "Use at most 2 decimals; “{value}” has more. For example <code>7.25</code>. "
            "Nothing was changed."
        ).format(value=value)
    return _(
        "“{value}” is not a number. Send a percentage from 0 to 50, for example "
        "<code>5</code> or <code>7.5</code>. Nothing was changed."
    ).format(value=value)


def bad_days_text(err: BadDays) -> str:
    value = echo(err.value)
    if err.reason == "out_of_range":
        return _(
            "The attribution window must be from 1 to 90 days; “{value}” is outside that. "
            "For example <code>7</code>. Nothing was changed."
        ).format(value=value)
    return _(
        "“{value}” is not a whole number of days. Send 1 to 90, for example <code>7</code>. "
        "Nothing was changed."
    ).format(value=value)


def kind_label(entry: CreditEntry) -> str:
    if entry.kind == "earned":
        return _("earned")
    if entry.kind == "reversed":
        return _("reversed (order cancelled)")
    if entry.kind == "payout":
        return _("paid out")
    if entry.kind == "spent" and entry.amount > 0:
        return _("returned (order cancelled)")
    if entry.kind == "spent":
        return _("used on an order")
    return entry.kind


def signed_money(amount: int, currency: str, language: str) -> str:
    text = format_money(abs(amount), currency, language)
    return ("+" if amount > 0 else "−" if amount < 0 else "") + text


def change_notice(entry: CreditEntry, deal: Deal | None, group: Group, language: str) -> str:
    """The private message about one ledger change of an order (in the current locale)."""
    values = {
        "amount": format_money(abs(entry.amount), entry.currency, language),
        "code": deal.code if deal is not None else "—",
        "title": quote(deal.title) if deal is not None else "",
        "group": quote(group.title),
    }
    if entry.kind == "earned":
        text = _(
            "You earned {amount} of credit in {group}: an order you referred "
            "(“{title}”, {code}) was completed."
        ).format(**values)
    elif entry.kind == "reversed":
        text = _(
            "{amount} of credit in {group} was reversed: the order you referred "
            "(“{title}”, {code}) was cancelled."
        ).format(**values)
    else:
        text = _(
            "{amount} of credit you used on “{title}” ({code}) is back in your balance "
            "in {group}: the order was cancelled."
        ).format(**values)
    return text


def see_balance() -> str:
    return _("See /mycredit for your balance.")


def refusal() -> str:
    return _("Only the owner and administrators of a group can change its commission.")


def stale() -> str:
    return _("This button is out of date. Send /commission again.")


def group_card(group: Group, cb: type[CallbackData]) -> tuple[str, InlineKeyboardMarkup]:
    """A group's commission settings and their buttons (`cb`: handlers.credit.CommissionCB)."""
    spendable = group.credit_spendable
    text = "\n".join(
        [
            _("<b>Commission in {title}</b>").format(title=quote(group.title)),
            _(
                "Commission: {percent} of each order placed through a member's share link, "
                "credited to that member when the order is picked up, delivered or paid, and "
                "reversed if it is cancelled afterwards. One level only."
            ).format(percent=percent_text(group.commission_bp)),
            _("Attribution window: {days} days after the link was opened").format(
                days=group.attribution_days
            ),
            _("Members may spend credit on their orders: {answer}").format(
                answer=_("yes") if spendable else _("no")
            ),
            "",
            _("A deal can have its own percentage: <code>/commission D17 8</code>."),
        ]
    )

    def button(text: str, action: str) -> InlineKeyboardButton:
        return InlineKeyboardButton(
            text=text, callback_data=cb(action=action, group_id=group.id).pack()
        )

    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[
            [button(_("Percentage"), "pct"), button(_("Attribution window"), "days")],
            [
                button(_("Stop credit spending"), "soff")
                if spendable
                else button(_("Allow credit spending"), "son")
            ],
            [button(_("Balances and payouts"), "bal")],
            [button(_("« All groups"), "list")],
        ]
    )
    return text, keyboard


def cancel_keyboard(group_id: int, cb: type[CallbackData]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("Cancel"),
                    callback_data=cb(action="cancel", group_id=group_id).pack(),
                )
            ]
        ]
    )


def cannot_spend_text(exc: CannotSpend) -> str:
    if exc.reason == "not_allowed":
        return _("This group does not allow spending credit on orders.")
    if exc.reason == "no_credit":
        return _("You have no credit left in that group.")
    if exc.reason == "nothing_to_pay":
        return _("Nothing is left to pay on that order.")
    if exc.reason == "order":
        return _(
            "Credit can only be used on a confirmed order that is not paid or handed over yet."
        )
    return _("That order is not yours or no longer exists.")
