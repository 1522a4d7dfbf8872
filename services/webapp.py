"""The Mini App storefront's reads and rules (bot/webapp serves them; no aiohttp here).

A group's storefront is reached by its opaque `Group.shop_code` (the `startapp` parameter of
t.me/<bot>/<app>?startapp=<code>), never by a chat id. Who may see what:
- a group's storefront and its deals: the members of the group (seen joining, speaking or
  ordering there: services.coupons.member_groups) and its current administrators;
- orders: a member sees only their own;
- a deal's orders and totals: only a person who manages the deal now (services.rights).
Every change goes through the services the chat's buttons use (services.orders.act,
services.teams, services.coupons), in the caller's unit of work, so the events are the same
and the group post is refreshed the same way.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Deal, DealPost, Group, Order, User
from services import coupons, rights, teams
from services import deals as deal_service
from services.admins import AdminDirectory
from services.errors import DomainError

CODE_MAX = 32  # longer `startapp` values are refused before SQL


class NotInGroup(DomainError):
    """The shop's code is unknown, or the person is not a member of its group."""


class DealNotInShop(DomainError):
    """The deal is not posted in the group (or does not exist)."""


def new_shop_code() -> str:
    return secrets.token_urlsafe(9)


CODE_RE = re.compile(rf"[A-Za-z0-9_-]{{1,{CODE_MAX}}}")


def valid_code(code: str | None) -> bool:
    """A shop code's shape (what `startapp` allows), checked before any SQL."""
    return bool(code) and CODE_RE.fullmatch(code) is not None


async def shop_code(session: AsyncSession, group: Group) -> str:
    """The group's code, issued now for a group that has none (created before it existed)."""
    if not group.shop_code:
        group.shop_code = new_shop_code()
        await session.flush()
    return group.shop_code


async def shop_codes(session: AsyncSession, group_ids: list[int]) -> dict[int, str]:
    if not group_ids:
        return {}
    rows = await session.execute(
        select(Group.id, Group.shop_code).where(
            Group.id.in_(group_ids), Group.shop_code.is_not(None)
        )
    )
    return dict(rows.all())


async def _is_admin(
    session: AsyncSession, admins: AdminDirectory | None, group: Group, user_id: int
) -> bool:
    return group.id in await rights.current_groups(session, admins, user_id)


async def member_group_ids(
    session: AsyncSession, admins: AdminDirectory | None, user_id: int
) -> list[Group]:
    """The active groups the person may browse: a member's, and those they administer."""
    groups = {g.id: g for g in await coupons.member_groups(session, user_id)}
    for group_id in await rights.current_groups(session, admins, user_id):
        if group_id not in groups:
            group = await session.get(Group, group_id)
            if group is not None and group.is_active:
                groups[group_id] = group
    return sorted(groups.values(), key=lambda g: (g.title, g.id))


async def shop(
    session: AsyncSession, admins: AdminDirectory | None, code: str, user_id: int
) -> tuple[Group, bool]:
    """The group of a shop code if the person may browse it, and whether they administer it."""
    if not valid_code(code):
        raise NotInGroup(code)
    group = await session.scalar(select(Group).where(Group.shop_code == code))
    if group is None or not group.is_active:
        raise NotInGroup(code)
    admin = await _is_admin(session, admins, group, user_id)
    if not admin and group.id not in {g.id for g in await coupons.member_groups(session, user_id)}:
        raise NotInGroup(code)
    return group, admin


@dataclass
class Item:
    """A deal as the storefront shows it, with the person's own order."""

    deal: Deal
    mine: Order | None
    team_views: list[teams.TeamView] = field(default_factory=list)

    @property
    def price(self) -> int:
        return deal_service.price_at(self.deal, self.deal.total_qty)


async def _mine(session: AsyncSession, deal_ids: list[int], user_id: int) -> dict[int, Order]:
    if not deal_ids:
        return {}
    rows = await session.scalars(
        select(Order).where(Order.deal_id.in_(deal_ids), Order.user_id == user_id)
    )
    return {o.deal_id: o for o in rows}


async def storefront(session: AsyncSession, group: Group, user_id: int) -> list[Item]:
    """The group's deals still running (open, paused, or scheduled ones already posted),
    soonest to close first."""
    deals = list(
        await session.scalars(
            select(Deal)
            .join(DealPost, DealPost.deal_id == Deal.id)
            .where(
                DealPost.group_id == group.id,
                DealPost.message_id.is_not(None),
                Deal.status.in_(("open", "paused")),
            )
            .order_by(Deal.closes_at, Deal.id)
        )
    )
    mine = await _mine(session, [d.id for d in deals], user_id)
    cards = await teams.cards_of(session, [d.id for d in deals])
    return [Item(d, mine.get(d.id), cards.get(d.id, [])) for d in deals]


@dataclass
class Page:
    item: Item
    signups: list[tuple[Order, User | None]]
    manages: bool


async def deal_page(
    session: AsyncSession,
    admins: AdminDirectory | None,
    group: Group,
    deal_id: int,
    user_id: int,
) -> Page:
    """A deal of the group's shop: the deal, the person's order, the sign-up list as the
    group sees it, and whether the person manages the deal now."""
    posted = await session.scalar(
        select(DealPost.deal_id).where(DealPost.deal_id == deal_id, DealPost.group_id == group.id)
    )
    if posted is None:
        raise DealNotInShop(deal_id)
    deal = await deal_service.get(session, deal_id)
    mine = (await _mine(session, [deal_id], user_id)).get(deal_id)
    cards = await teams.cards_of(session, [deal_id])
    signups = await deal_service.sign_up_list(session, deal_id)
    manages = await rights.may_manage(session, admins, deal, user_id)
    return Page(Item(deal, mine, cards.get(deal_id, [])), signups, manages)


async def posted_in(session: AsyncSession, group: Group, deal_id: int) -> Deal:
    """The deal, if it is posted in the group (else DealNotInShop)."""
    page_deal = await session.scalar(
        select(Deal)
        .join(DealPost, DealPost.deal_id == Deal.id)
        .where(Deal.id == deal_id, DealPost.group_id == group.id)
    )
    if page_deal is None:
        raise DealNotInShop(deal_id)
    return page_deal
