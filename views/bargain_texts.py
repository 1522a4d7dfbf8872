"""Texts of bargains with friends (services.bargains): the offer line on a deal's post, the
bargain's page in private chat, the starter's notes, the owner's lists and the refusals.
HTML; names are escaped here."""

from __future__ import annotations

from datetime import datetime

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from models import Bargain, Deal, Order, User
from services import bargains
from services.bargains import BargainView
from services.errors import DomainError
from views.common import current_language
from views.format import TEXT_LIMIT, cut, duration, money, post_time, quote, tg_len

NAME_MAX = 32
NAMES_SHOWN = 10  # helpers named per bargain in the owner's list (the rest are counted)


def _name(user: User | None) -> str:
    return quote(cut(user.full_name, NAME_MAX)) if user is not None else _("a member")


def offer_line(deal: Deal, language: str) -> str:
    """The deal post's line about its bargain offer."""
    start = money(deal.bargain_start_price or 0, deal.currency, language)
    floor = money(deal.bargain_floor_price or 0, deal.currency, language)
    line = ngettext(
        "Bargain: from {start} down to {floor} with {n} friend's help within {hours} h",
        "Bargain: from {start} down to {floor} with {n} friends' helps within {hours} h",
        deal.bargain_helps or 0,
    ).format(start=start, floor=f"<b>{floor}</b>", n=deal.bargain_helps, hours=deal.bargain_hours)
    return "✂️ " + line


def start_label() -> str:
    return "✂️ " + _("Bargain")


def help_label() -> str:
    return "✂️ " + _("Help cut the price")


def buy_label(bargain: Bargain, deal: Deal) -> str:
    price = money(bargain.price, deal.currency, current_language())
    return "🛒 " + _("Buy at {price}").format(price=price)


def link_label() -> str:
    return "🔗 " + _("Invite friends")


def _status_line(bargain: Bargain, view: BargainView, now: datetime, language: str) -> str:
    if bargain.status == "bought":
        price = money(bargain.price, view.deal.currency, language)
        return "✅ " + _("Bought at {price}").format(price=price)
    if bargain.status == "expired" or bargain.expires_at <= now:
        return "⌛ " + _("This bargain is over")
    seconds = (bargain.expires_at - now).total_seconds()
    when = post_time(bargain.expires_at, view.group.timezone, language)
    return "⏳ " + _("ends in {duration} · {when}").format(duration=duration(seconds), when=when)


def page_text(view: BargainView, now: datetime, language: str, link: str | None = None) -> str:
    """A bargain's page in private chat (its link opened): start, floor, price now, helps
    k/K, the helpers' count and the time left; to its starter, the link to pass on."""
    bargain, deal = view.bargain, view.deal
    currency = deal.currency
    lines = [
        "✂️ <b>" + _("Bargain") + "</b> · " + quote(cut(deal.title, 80)),
        _("Started by {name} in {group}").format(
            name=_name(view.starter), group=quote(cut(view.group.title, 64))
        ),
        _("From {start} down to {floor}").format(
            start=money(bargain.start_price, currency, language),
            floor=money(bargain.floor_price, currency, language),
        ),
        _("Price now: {price}").format(
            price="<b>" + money(bargain.price, currency, language) + "</b>"
        ),
        _("Helps: {k}/{n}").format(k=bargain.helps, n=bargain.helps_needed)
        + " · "
        + ngettext("{n} friend helped", "{n} friends helped", len(view.helps)).format(
            n=len(view.helps)
        ),
        _status_line(bargain, view, now, language),
    ]
    if link is not None and bargain.status == "open":
        lines += ["", _("Forward this link to friends so they help: {link}").format(link=link)]
    return "\n".join(lines)


def note_text(view: BargainView, what: str, order: Order | None, language: str, link: str) -> str:
    """The starter's note: `what` is help (a friend cut the price), bought, expired or closed
    (the deal closed first)."""
    bargain, deal = view.bargain, view.deal
    title = quote(cut(deal.title, 80))
    price = money(bargain.price, deal.currency, language)
    if what == "help":
        left = bargain.helps_needed - bargain.helps
        text = _("✂️ A friend cut the price of your bargain for {title}: now {price}.").format(
            title=title, price=price
        )
        if left > 0 and bargain.status == "open":
            text += "\n" + ngettext(
                "{n} more help to reach the floor. Your bargain: {link}",
                "{n} more helps to reach the floor. Your bargain: {link}",
                left,
            ).format(n=left, link=link)
        elif bargain.status == "open":
            text += "\n" + _("The floor price is reached: buy it here: {link}").format(link=link)
        return text
    if what == "bought":
        text = _("✅ You bought {title} at {price} through your bargain.").format(
            title=title, price=price
        )
        if order is not None and order.pickup_code:
            text += "\n" + _("Pickup code: {code}").format(code=f"<code>{order.pickup_code}</code>")
        return text
    if what == "closed":
        return _("⌛ The deal {title} closed before you bought through your bargain.").format(
            title=title
        )
    return _("⌛ Your bargain for {title} ran out of time at {price} without a buy.").format(
        title=title, price=price
    )


def started_text(started: bargains.Started) -> str:
    if started.created:
        return _("Bargain started! Share its link so friends help you cut the price.")
    return _("This is your bargain of this deal.")


def helped_text(helped: bargains.Helped, deal: Deal) -> str:
    amount = money(helped.amount, deal.currency, current_language())
    price = money(helped.bargain.price, deal.currency, current_language())
    return _("You cut {amount} off! The price is now {price}.").format(amount=amount, price=price)


def bought_text(bought: bargains.Bought) -> str:
    price = money(bought.bargain.price, bought.deal.currency, current_language())
    return _("Bought at {price}! Details in private chat.").format(price=price)


def rules_text(deal: Deal, language: str) -> str:
    """The owner's /bargain answer: the deal's bargain offer now."""
    if not bargains.offers_bargains(deal):
        return _("{code} offers no bargain.").format(code=deal.code)
    return _("{code}: {offer}").format(code=deal.code, offer=offer_line(deal, language))


def bargain_usage() -> str:
    return _(
        "Usage: <code>/bargain D12 12.00 8.00 5 24</code> (from 12.00 down to 8.00 in 5 friends' "
        "helps, within 24 hours), or <code>/bargain D12 off</code>."
    )


def bargains_usage() -> str:
    return _("Usage: <code>/bargains D12</code>: the deal's bargains and who helped.")


def list_text(deal: Deal, views: list[BargainView], total: int, language: str) -> str:
    """The owner's /bargains: each bargain of the deal with its helpers (within one message)."""
    if not views:
        return _("{code} has no bargains yet.").format(code=deal.code)
    head = ngettext("{code}: {n} bargain", "{code}: {n} bargains", total).format(
        code=deal.code, n=total
    )
    lines = ["✂️ <b>" + head + "</b> · " + quote(cut(deal.title, 80))]
    size = tg_len(lines[0])
    for index, one in enumerate(views):
        bargain = one.bargain
        status = {
            "open": _("open"),
            "bought": _("bought"),
            "expired": _("expired"),
        }.get(bargain.status, bargain.status)
        names = [_name(user) for _help, user in one.helps[:NAMES_SHOWN]]
        more = len(one.helps) - NAMES_SHOWN
        if more > 0:
            names.append(ngettext("…and {n} more", "…and {n} more", more).format(n=more))
        block = "\n".join(
            [
                "",
                _("{name}: {price} ({k}/{n} helps, {status})").format(
                    name=_name(one.starter),
                    price=money(bargain.price, deal.currency, language),
                    k=bargain.helps,
                    n=bargain.helps_needed,
                    status=status,
                ),
                _("Helped by: {names}").format(names=", ".join(names) or "—"),
            ]
        )
        if size + tg_len(block) > TEXT_LIMIT - 40:
            lines.append("\n" + _("…and {n} more").format(n=len(views) - index))
            break
        lines.append(block)
        size += tg_len(block)
    return "\n".join(lines)


def bargain_error_text(err: DomainError) -> str | None:
    """The sentence for a refusal of bargains (None: not one of them)."""
    if isinstance(err, bargains.NoBargains):
        return _("This deal offers no bargain.")
    if isinstance(err, bargains.BargainNotFound):
        return _("That bargain does not exist.")
    if isinstance(err, bargains.BargainOver):
        if err.status == "bought":
            return _("This bargain is already bought.")
        return _("This bargain is over.")
    if isinstance(err, bargains.BargainDone):
        return _("This bargain already has all its helps: thank you!")
    if isinstance(err, bargains.OwnBargain):
        return _("You cannot help your own bargain: share its link with friends.")
    if isinstance(err, bargains.AlreadyHelped):
        return _("You already helped this bargain.")
    if isinstance(err, bargains.NotAPerson):
        return _("Only people can help a bargain.")
    if isinstance(err, bargains.DailyCap):
        return ngettext(
            "You can help {n} bargain a day; come back tomorrow.",
            "You can help {n} bargains a day; come back tomorrow.",
            err.cap,
        ).format(n=err.cap)
    if isinstance(err, bargains.NotStarter):
        return _("Only the member who started this bargain can buy at its price.")
    if isinstance(err, bargains.HoldsOrder):
        return _("You already ordered this deal, so you cannot bargain on it.")
    if isinstance(err, bargains.BargainsFixed):
        return _("A bargain has started on this deal: its bargain rules can no longer change.")
    if isinstance(err, bargains.BadBargainRules):
        return {
            "start": _("The bargain's start price must be above zero and at most the unit price."),
            "floor": _("The bargain's floor price must be at least zero and below its start."),
            "helps": _("A bargain takes 2 to 50 helps."),
            "cut": _(
                "Each help must cut at least the currency's smallest unit: raise the start or "
                "lower the floor."
            ),
            "hours": _("A bargain lasts 1 to 72 hours."),
            "usage": bargain_usage(),
        }[err.what]
    return None
