"""Texts of deal posts in groups: /buy and /cancel usage, refusals of an order change and its
confirmation (shared by the group buttons and the private Join buttons of handlers.share)."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _

from models import Deal, Group
from services import deals as deal_service
from services import orders as order_service
from services.orders import Change, OrderError
from views.deal_texts import domain_error_text
from views.format import cut, post_time, quote


def buy_usage() -> str:
    return _("Usage: {usage} (the deal code, then how many you want)").format(
        usage="<code>/buy D17 2</code>"
    )


def cancel_usage() -> str:
    return _("Usage: {usage}").format(usage="<code>/cancel D17</code>")


def not_here(code: str) -> str:
    return _("There is no deal {code} in this group. Send /deals to see what is open.").format(
        code=quote(code)
    )


def not_posted_here() -> str:
    return _("This deal is not posted in this chat.")


def stale_button() -> str:
    return _("This button is out of date.")


def refusal(exc: OrderError, deal: Deal, group: Group) -> str:
    if isinstance(exc, order_service.NotJoined) and deal.status in deal_service.FINAL_STATES:
        exc = order_service.DealClosed(deal.id)  # a confirmed order cannot be cancelled either
    if isinstance(exc, order_service.DealNotOpenYet):
        return _("This deal is not open yet: it opens {when}.").format(
            when=post_time(exc.opens_at, group.timezone, group.language)
        )
    return domain_error_text(exc)


def waitlist_added(title: str) -> str:
    return _(
        "You're on the waitlist for {title}: if a unit frees up, I'll send you the invoice in "
        "our private chat."
    ).format(title=cut(title, 80))


def waitlist_already() -> str:
    return _("You're already on the waitlist for this deal.")


def waitlist_refused(reason: str) -> str:
    """Why the member cannot join the waitlist (services.payments.WaitlistRefused)."""
    texts = {
        "not_paid": _("This deal is paid on pickup: it has no waitlist."),
        "closed": _("This deal is not open: it has no waitlist now."),
        "in_stock": _("Units are available again: tap Join +1."),
        "holding": _("You already have an order in this deal."),
    }
    return texts.get(reason, _("That is not possible right now."))


def confirmation(change: Change, title: str) -> str:
    title = cut(title, 80)
    if change.new_quantity == 0:
        return _("Your order for {title} is cancelled.").format(title=title)
    if not change.changed:
        return _("You already have ×{quantity} of {title}.").format(
            quantity=change.new_quantity, title=title
        )
    if change.old_quantity == 0:
        return _("You're in: {title} ×{quantity}.").format(
            title=title, quantity=change.new_quantity
        )
    return _("Your order for {title} is now ×{quantity}.").format(
        title=title, quantity=change.new_quantity
    )
