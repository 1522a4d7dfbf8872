"""Texts of team buys (services.teams): the team card, the offer line on a deal's post, the
members' notes and the refusals. HTML; names are escaped here."""

from __future__ import annotations

from datetime import datetime

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from models import Deal, Order, User
from services import teams
from services.errors import DomainError
from services.teams import TeamView
from views.common import current_language
from views.format import cut, duration, money, post_time, quote

NAME_MAX = 32
NAMES_SHOWN = 20  # a card lists at most this many members (a team has at most 50)


def _name(user: User | None) -> str:
    return quote(cut(user.full_name, NAME_MAX)) if user is not None else _("a member")


def offer_line(deal: Deal, language: str) -> str:
    """The deal post's line about its team offer."""
    price = money(deal.team_price or 0, deal.currency, language)
    line = ngettext(
        "Team buy: {price} each in a team of {n}, filled within {hours} h",
        "Team buy: {price} each in a team of {n}, filled within {hours} h",
        deal.team_size or 0,
    ).format(price=f"<b>{price}</b>", n=deal.team_size, hours=deal.team_hours)
    if deal.team_only:
        line += " · " + _("teams only")
    return "👥 " + line


def start_label(deal: Deal) -> str:
    price = money(deal.team_price or 0, deal.currency, current_language())
    return "👥 " + _("Start a team ({price})").format(price=price)


def join_label() -> str:
    return "🙋 " + _("Join this team")


def leave_label() -> str:
    return _("Leave the team")


def link_label() -> str:
    return "🔗 " + _("Invite friends")


def card_text(view: TeamView, now: datetime, language: str) -> str:
    """A team's card: the deal, the team price, who is in, places left and time left (or
    how it ended)."""
    team, deal, group = view.team, view.deal, view.group
    price = money(team.price, deal.currency, language)
    alone = money(deal.unit_price, deal.currency, language)
    lines = [
        "👥 <b>" + _("Team buy") + "</b> · " + quote(cut(deal.title, 80)),
        _("{price} each in a team of {n} (alone: {alone})").format(
            price=f"<b>{price}</b>", n=team.size, alone=alone
        ),
    ]
    names = [_name(user) for _order, user in view.members[:NAMES_SHOWN]]
    if len(view.members) > NAMES_SHOWN:
        names.append("…")
    lines.append(
        _("In the team ({n}/{size}): {names}").format(
            n=len(view.members), size=team.size, names=", ".join(names) or "—"
        )
    )
    if team.status == "filled":
        lines.append("✅ <b>" + _("Team complete: orders confirmed at {price}").format(price=price))
        lines[-1] += "</b>"
    elif team.status == "failed":
        lines.append("❌ " + _("The team did not fill; its orders are cancelled"))
    else:
        left = max(team.size - team.members, 0)
        seconds = (team.expires_at - now).total_seconds()
        places = ngettext("{n} place left", "{n} places left", left).format(n=left)
        when = post_time(team.expires_at, group.timezone, language)
        if seconds > 0:
            ends = _("ends in {duration} · {when}").format(duration=duration(seconds), when=when)
        else:
            ends = _("ending now")
        lines.append(f"⏳ {places} · {ends}")
    return "\n".join(lines)


def private_text(view: TeamView, now: datetime, language: str, link: str) -> str:
    """The team in private chat (its share link opened): the card and the link to pass on."""
    text = card_text(view, now, language)
    text += "\n\n" + _("👥 A team in {group}").format(group=quote(view.group.title))
    if view.team.status == "open":
        text += "\n" + _("Invite friends with this link: {link}").format(link=link)
    return text


def note_text(view: TeamView, what: str, order: Order | None, language: str, link: str) -> str:
    """A member's note: `what` is started (to the starter, with the link), filled, expired
    or closed (the deal closed before the team filled)."""
    team, deal = view.team, view.deal
    title = quote(cut(deal.title, 80))
    price = money(team.price, deal.currency, language)
    if what == "started":
        return (
            _("You started a team for {title}: {n} people at {price} each.").format(
                title=title, n=team.size, price=price
            )
            + "\n"
            + _(
                "Forward this link to friends; the team is complete when {left} more join: {link}"
            ).format(left=team.size - 1, link=link)
        )
    if what == "filled":
        text = _(
            "✅ Your team for {title} is complete: your order is confirmed at {price}."
        ).format(title=title, price=price)
        if order is not None and order.pickup_code:
            text += "\n" + _("Pickup code: {code}").format(code=f"<code>{order.pickup_code}</code>")
        return text
    if what == "closed":
        return _(
            "❌ The deal {title} closed before your team filled: your order is cancelled."
        ).format(title=title)
    return _(
        "❌ Your team for {title} did not fill in time: your order is cancelled. You can start or "
        "join another team."
    ).format(title=title)


def joined_text(joined: teams.Joined) -> str:
    """The toast for the member who took a place."""
    team = joined.team
    if joined.filled:
        return _("Team complete! Your order is confirmed; details in private chat.")
    left = team.size - team.members
    return ngettext(
        "You're in the team ({n}/{size}): {left} more needed.",
        "You're in the team ({n}/{size}): {left} more needed.",
        left,
    ).format(n=team.members, size=team.size, left=left)


def started_text() -> str:
    return _("Team started! Its card is in the group; your link to invite friends is in private.")


def left_text() -> str:
    return _("You left the team; your unit is back in stock.")


def rules_text(deal: Deal, language: str) -> str:
    """The owner's /teambuy answer: the deal's team offer now."""
    if not teams.offers_teams(deal):
        return _("{code} offers no team buy.").format(code=deal.code)
    return _("{code}: {offer}").format(code=deal.code, offer=offer_line(deal, language))


def teambuy_usage() -> str:
    return _(
        "Usage: <code>/teambuy D12 3 8.50 24</code> (a team of 3 at 8.50 each, filled within 24 "
        "hours; add <code>only</code> to sell to teams only), or <code>/teambuy D12 off</code>."
    )


def team_error_text(err: DomainError) -> str | None:
    """The sentence for a refusal of team buys (None: not one of them)."""
    if isinstance(err, teams.NoTeams):
        return _("This deal offers no team buy.")
    if isinstance(err, teams.TeamNotFound):
        return _("That team does not exist.")
    if isinstance(err, teams.TeamFull):
        return _("This team is full. Start your own team!")
    if isinstance(err, teams.TeamOver):
        if err.status == "filled":
            return _("This team is already complete.")
        return _("This team is over. Start or join another one.")
    if isinstance(err, teams.AlreadyInTeam):
        return _("You are already in this team.")
    if isinstance(err, teams.InOtherTeam):
        return _("You are already in a team of this deal.")
    if isinstance(err, teams.OrderedAlone):
        return _("You already ordered this deal alone; cancel that order to join a team.")
    if isinstance(err, teams.NotInTeam):
        return _("You are not in this team.")
    if isinstance(err, teams.TeamsFixed):
        return _("A team has started on this deal: its team rules can no longer change.")
    if isinstance(err, teams.BadTeamRules):
        return {
            "size": _("A team has 2 to 50 members."),
            "price": _("The team price must be above zero and below the deal's unit price."),
            "hours": _("A team has 1 to 72 hours to fill."),
            "stock": _("The deal's stock is smaller than one team."),
            "usage": teambuy_usage(),
        }[err.what]
    return None
