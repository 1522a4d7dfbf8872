"""Who manages a deal: decided at the moment of each action, never remembered.

The rule (README, "Who manages a deal"):

- a deal is managed by its creator while the creator is a current administrator (or the
  creator) of one of the deal's groups — the groups it is posted in;
- when the creator is no longer one in any of them (demoted, left, banned), every current
  administrator of those groups manages it, so no deal is orphaned;
- a person who is not a current administrator of one of the deal's groups never manages it,
  whoever created it.

"Current" is the administrator list services.admins.AdminDirectory keeps: `chat_member`
updates change it at once, and a list older than its time to live is asked of Telegram again.
Every owner action on a deal or on its orders goes through `manage_deal` (or `may_manage`),
in the transaction of the update that asks — also each step of a multi-step form, so a form
started while an administrator and finished after a demotion is refused at the finishing step.
Without a directory (services called directly, e.g. by tests) the stored list is used.
"""

from __future__ import annotations

from sqlalchemy import exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Deal, DealPost, Group, GroupAdmin
from services import groups as group_service
from services.admins import AdminDirectory
from services.errors import DealNotFound, NotDealOwner


async def load_deal(session: AsyncSession, deal_id: int, *, lock: bool = False) -> Deal:
    """The deal (fresh from the database, locked if asked), or DealNotFound."""
    stmt = select(Deal).where(Deal.id == deal_id)
    if lock:
        stmt = stmt.with_for_update()
    deal = (
        await session.execute(stmt.execution_options(populate_existing=True))
    ).scalar_one_or_none()
    if deal is None:
        raise DealNotFound(deal_id)
    return deal


async def _groups(session: AsyncSession, deal_id: int) -> list[Group]:
    rows = await session.scalars(
        select(Group)
        .join(DealPost, DealPost.group_id == Group.id)
        .where(DealPost.deal_id == deal_id)
        .order_by(Group.id)
    )
    return list(rows)


async def _admins(session: AsyncSession, admins: AdminDirectory | None, group: Group) -> set[int]:
    if admins is None:
        return await group_service.admin_ids(session, group.id)
    return await admins.admins_of(session, group)


async def may_manage_in(
    session: AsyncSession,
    admins: AdminDirectory | None,
    creator_id: int,
    groups: list[Group],
    user_id: int,
) -> bool:
    """The rule for anything a person created for some groups (a deal, a scheduled post):
    whether `user_id` manages it now."""
    current = [await _admins(session, admins, g) for g in groups]
    if not any(user_id in ids for ids in current):
        return False
    if user_id == creator_id:
        return True
    return not any(creator_id in ids for ids in current)


async def may_manage(
    session: AsyncSession, admins: AdminDirectory | None, deal: Deal, user_id: int
) -> bool:
    """Whether the person manages the deal now (the rule above)."""
    groups = await _groups(session, deal.id)
    return await may_manage_in(session, admins, deal.owner_id, groups, user_id)


async def current_groups(
    session: AsyncSession, admins: AdminDirectory | None, user_id: int
) -> list[int]:
    """The ids of the active groups the person administers now."""
    if admins is not None:
        return [g.id for g, _status in await admins.groups_of(session, user_id)]
    return [g.id for g, _s in await group_service.groups_administered(session, user_id)]


async def manage_deal(
    session: AsyncSession,
    admins: AdminDirectory | None,
    deal_id: int,
    user_id: int,
    *,
    lock: bool = False,
) -> Deal:
    """The deal, if the person manages it now; else DealNotFound / NotDealOwner."""
    deal = await load_deal(session, deal_id, lock=lock)
    if not await may_manage(session, admins, deal, user_id):
        raise NotDealOwner(deal_id)
    return deal


async def managed_deals(
    session: AsyncSession, admins: AdminDirectory | None, user_id: int, limit: int = 30
) -> list[Deal]:
    """The deals the person may manage now, newest first: their own in groups they still
    administer, and orphaned deals (creator no longer an administrator of any of the deal's
    groups) of groups they administer."""
    group_ids = await current_groups(session, admins, user_id)
    if not group_ids:
        return []
    creator_still_admin = exists().where(
        DealPost.deal_id == Deal.id,
        GroupAdmin.group_id == DealPost.group_id,
        GroupAdmin.user_id == Deal.owner_id,
    )
    in_my_groups = exists().where(DealPost.deal_id == Deal.id, DealPost.group_id.in_(group_ids))
    found: list[Deal] = []
    offset = 0
    while len(found) < limit:
        batch = list(
            await session.scalars(
                select(Deal)
                .where(
                    in_my_groups,
                    or_(Deal.owner_id == user_id, ~creator_still_admin),
                )
                .order_by(Deal.id.desc())
                .offset(offset)
                .limit(limit)
            )
        )
        for deal in batch:  # the stored lists may be stale: the rule decides, as for actions
            if await may_manage(session, admins, deal, user_id):
                found.append(deal)
        if len(batch) < limit:
            break
        offset += limit
    return found[:limit]
