"""Texts of the Mini App storefront (bot/webapp): the page's labels, sent by the API in the
person's language, and the sentences of its refusals."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _

from services import webapp
from services.errors import DomainError
from views.coupon_texts import coupon_error_text
from views.deal_texts import domain_error_text
from views.team_texts import team_error_text


def labels() -> dict[str, str]:
    """Every label the page shows (app.js looks them up by key)."""
    return {
        "shops": _("Your groups"),
        "no_shops": _("No group yet: open the shop from a group's deal post."),
        "shop": _("Shop"),
        "no_deals": _("No deal is open in this group right now."),
        "my_orders": _("My orders"),
        "no_orders": _("You have no orders yet."),
        "back": _("Back"),
        "join": _("Join"),
        "change": _("Change quantity"),
        "cancel": _("Cancel my order"),
        "pay": _("Pay"),
        "quantity": _("Quantity"),
        "you_have": _("You have"),
        "signed_up": _("Signed up"),
        "nobody": _("Nobody yet: be the first!"),
        "tiers": _("Price tiers"),
        "units_from": _("from {n} units"),
        "minimum": _("Minimum"),
        "reached": _("Minimum reached"),
        "to_go": _("{n} more needed"),
        "stock_left": _("{n} left"),
        "sold_out": _("Sold out"),
        "closes": _("Closes"),
        "paused": _("Paused"),
        "teams": _("Team buy"),
        "team_of": _("{price} each in a team of {size}"),
        "start_team": _("Start a team"),
        "join_team": _("Join this team"),
        "team_places": _("{members}/{size} in the team"),
        "bargain": _("Bargain open"),
        "pickup": _("Pickup code"),
        "paid": _("Paid"),
        "owed": _("To pay"),
        "refund": _("Refund"),
        "status": _("Status"),
        "coupons": _("Coupons"),
        "claim": _("Claim"),
        "use_coupon": _("Use a coupon"),
        "no_coupon": _("No coupon"),
        "orders_of_deal": _("Orders of this deal"),
        "total_units": _("Units"),
        "total_people": _("People"),
        "owner_view": _("Owner's view (read only)"),
        "done": _("Done"),
        "error": _("Something went wrong. Try again."),
        "status_active": _("joined"),
        "status_confirmed": _("confirmed"),
        "status_cancelled": _("cancelled"),
        "status_failed": _("failed"),
        "fulfil_ready": _("ready for pickup"),
        "fulfil_picked_up": _("picked up"),
        "fulfil_delivered": _("delivered"),
    }


def unauthorized() -> str:
    return _("Open this page from Telegram again: your session has expired.")


def too_many() -> str:
    return _("Too many changes at once: wait a moment and try again.")


def bad_request() -> str:
    return _("That request is not understood.")


def not_found() -> str:
    return _("Not found.")


def no_payment() -> str:
    return _("This order has nothing to pay here.")


def refusal(err: DomainError) -> str:
    """The sentence for any refusal the app can meet."""
    if isinstance(err, webapp.NotInGroup):
        return _("This shop is for members of its group.")
    if isinstance(err, webapp.DealNotInShop):
        return _("That deal is not in this shop.")
    return team_error_text(err) or coupon_error_text(err) or domain_error_text(err)
