"""Who may run a group: its creator and administrators, as Telegram reports them.

The database is the cache: `group_admins` holds the last list and `groups.admins_refreshed_at`
its age. A stale list is fetched again from Telegram (through a fetcher the bot layer gives);
`chat_member` updates about administrators refresh single rows at once. Several bot instances
share the cache because it lives in the database.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from models import Group
from services import groups as group_service
from services.errors import GroupNotFound, NotGroupAdmin
from services.groups import AdminInfo
from services.timezones import utcnow

log = logging.getLogger(__name__)

# Returns the administrators of a chat, or None when Telegram could not be asked.
AdminFetcher = Callable[[int], Awaitable[Sequence[AdminInfo] | None]]


class AdminDirectory:
    def __init__(self, fetch: AdminFetcher, ttl_seconds: int = 600) -> None:
        self.fetch = fetch
        self.ttl = timedelta(seconds=ttl_seconds)

    def is_stale(self, group: Group) -> bool:
        refreshed = group.admins_refreshed_at
        return refreshed is None or utcnow() - refreshed >= self.ttl

    async def refresh(self, session: AsyncSession, group: Group) -> set[int]:
        admins = await self.fetch(group.chat_id)
        if admins is None:
            log.warning(
                "could not fetch administrators of chat %s; keeping the stored list", group.chat_id
            )
            return await group_service.admin_ids(session, group.id)
        return set(await group_service.replace_admins(session, group, admins))

    async def admins_of(self, session: AsyncSession, group: Group) -> set[int]:
        if self.is_stale(group):
            return await self.refresh(session, group)
        return await group_service.admin_ids(session, group.id)

    async def require_admin(self, session: AsyncSession, group_id: int, user_id: int) -> Group:
        """The group, if it is active and the user administers it; else a domain error.

        Nobody learns from an id what exists: an unknown id is refused like a group the
        person does not run (NotGroupAdmin); only the group's administrators (as last
        known) are told that the bot is no longer in it (GroupNotFound)."""
        group = await session.get(Group, group_id)
        if group is None:
            raise NotGroupAdmin(group_id)
        if not group.is_active:
            if user_id in await group_service.admin_ids(session, group.id):
                raise GroupNotFound(group_id)
            raise NotGroupAdmin(group_id)
        if user_id not in await self.admins_of(session, group):
            raise NotGroupAdmin(group_id)
        return group

    async def groups_of(self, session: AsyncSession, user_id: int) -> list[tuple[Group, str]]:
        """Active groups the user administers, re-checking stale lists with Telegram."""
        result = []
        for group, status in await group_service.groups_administered(session, user_id):
            if self.is_stale(group) and user_id not in await self.refresh(session, group):
                continue
            result.append((group, status))
        return result
