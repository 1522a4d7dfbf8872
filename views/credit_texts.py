"""Texts of the commission ledger, shared by /commission, /mycredit and the owner's order
actions: the reasons a percentage or a payout was refused, ledger lines, and the private
notices a member gets when credit is earned, reversed or given back."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _

from models import CreditEntry, Deal, Group
from services.credit import BadDays, BadPercent, format_percent
from services.money import format_money
from views.common import quote


def percent_text(bp: int) -> str:
    return _("{percent}%").format(percent=format_percent(bp))


def bad_percent_text(err: BadPercent) -> str:
    value = quote(err.value)
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
    value = quote(err.value)
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
