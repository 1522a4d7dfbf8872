"""Groups the bot is in: registration, removal, supergroup upgrades, settings, admins."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import UniqueConstraint, delete, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Group, GroupAdmin, Membership
from models.upsert import upsert
from services.errors import GroupNotFound
from services.locales import SUPPORTED_LANGUAGES, parse_language
from services.money import parse_currency
from services.parsing import check_note, clean_text
from services.timezones import parse_timezone, utcnow

ADMIN_STATUSES = frozenset({"creator", "administrator"})
MAX_POLICY_TEXT = 1000  # a group's /terms and /paysupport texts
CLEAR = "-"  # typed instead of a text: back to the deployment's


@dataclass(frozen=True, slots=True)
class Defaults:
    timezone: str
    currency: str
    language: str


@dataclass(frozen=True, slots=True)
class AdminInfo:
    user_id: int
    status: str  # creator | administrator
    can_invite_users: bool = False
    is_bot: bool = False


async def get_by_chat(session: AsyncSession, chat_id: int) -> Group | None:
    return await session.scalar(select(Group).where(Group.chat_id == chat_id))


async def register(
    session: AsyncSession,
    *,
    chat_id: int,
    title: str,
    chat_type: str,
    added_by: int | None,
    defaults: Defaults,
    language: str | None = None,
    now: datetime | None = None,
) -> tuple[Group, bool]:
    """Register the group (or re-activate it). Returns the row and whether it is new.

    A group that comes back keeps its settings and data, and its registration time
    (`created_at`: no digest covers a day before it).
    """
    group = await get_by_chat(session, chat_id)
    now = now or utcnow()
    if group is None:
        group = Group(
            chat_id=chat_id,
            title=clean_text(title, multiline=False)[:256],
            type=chat_type,
            timezone=defaults.timezone,
            currency=defaults.currency,
            language=language if language in SUPPORTED_LANGUAGES else defaults.language,
            is_active=True,
            added_by=added_by,
            created_at=now,
            updated_at=now,
        )
        session.add(group)
        await session.flush()
        return group, True
    group.title = clean_text(title, multiline=False)[:256]
    group.type = chat_type
    group.is_active = True
    group.updated_at = now
    await session.flush()
    return group, False


async def deactivate(session: AsyncSession, chat_id: int) -> Group | None:
    """The bot left or was removed: mark inactive, keep everything."""
    group = await get_by_chat(session, chat_id)
    if group is not None:
        group.is_active = False
        group.updated_at = utcnow()
        await session.flush()
    return group


async def migrate(session: AsyncSession, old_chat_id: int, new_chat_id: int) -> Group | None:
    """A group became a supergroup with a new chat id: the old row follows it.

    If a row for the new id was already created (the bot may see the supergroup before the
    migration message), rows hanging on it are moved to the old group where they do not
    collide, and the duplicate is removed; the old group's settings and data win.
    """
    old = await get_by_chat(session, old_chat_id)
    new = await get_by_chat(session, new_chat_id)
    if old is None:
        if new is not None:
            return new
        return None
    if new is not None and new.id != old.id:
        await _merge_into(session, source_id=new.id, target_id=old.id)
        await session.delete(new)
        await session.flush()
    old.chat_id = new_chat_id
    old.type = "supergroup"
    old.is_active = True
    old.updated_at = utcnow()
    await session.flush()
    return old


async def _merge_into(session: AsyncSession, *, source_id: int, target_id: int) -> None:
    """Move every row that references groups.id from one group to another.

    Works from the foreign keys in the metadata, so tables added later are covered. Rows of
    the source that would collide with a primary or unique key of the target are dropped
    (the target, i.e. the original group, is kept).
    """
    groups_table = Group.__table__
    for table in groups_table.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table is not groups_table:
                continue
            col = fk.parent
            keys = [list(table.primary_key.columns)] + [
                list(c.columns) for c in table.constraints if isinstance(c, UniqueConstraint)
            ]
            for key in keys:
                if key == [col]:  # one row per group (settings): the target's is kept
                    if await session.scalar(select(col).where(col == target_id)) is not None:
                        await session.execute(delete(table).where(col == source_id))
                    continue
                if col not in key or len(key) < 2:
                    continue
                others = [c for c in key if c is not col]
                target_rows = select(*others).where(col == target_id)
                await session.execute(
                    delete(table).where(col == source_id, tuple_(*others).in_(target_rows))
                )
            await session.execute(
                update(table).where(col == source_id).values({col.name: target_id})
            )


# ---------------------------------------------------------------- settings


async def set_timezone(session: AsyncSession, group: Group, value: str) -> str:
    group.timezone = parse_timezone(value)
    group.updated_at = utcnow()
    await session.flush()
    return group.timezone


async def set_currency(session: AsyncSession, group: Group, value: str) -> str:
    group.currency = parse_currency(value)
    group.updated_at = utcnow()
    await session.flush()
    return group.currency


async def set_language(session: AsyncSession, group: Group, value: str) -> str:
    group.language = parse_language(value)
    group.updated_at = utcnow()
    await session.flush()
    return group.language


def policy_text(value: str | None) -> str:
    """A group's terms or payment support text as typed: cleaned (services.parsing), at
    most MAX_POLICY_TEXT characters (ParseError text_too_long / not_text); "-" clears it."""
    if clean_text(value) == CLEAR:
        return ""
    return check_note(value, MAX_POLICY_TEXT)


POLICIES = ("terms", "paysupport")  # the group's own /terms and /paysupport texts


async def set_policy(session: AsyncSession, group: Group, kind: str, text: str) -> str:
    """The group's own /terms or /paysupport text (`kind`; "": the deployment's)."""
    if kind not in POLICIES:
        raise ValueError(f"unknown policy text {kind!r}")
    value = policy_text(text)
    setattr(group, f"{kind}_text", value)
    group.updated_at = utcnow()
    await session.flush()
    return value


# ---------------------------------------------------------------- administrators


async def replace_admins(
    session: AsyncSession, group: Group, admins: Iterable[AdminInfo], *, at: datetime | None = None
) -> list[int]:
    """Store the administrators Telegram reported (bots excluded). Returns their user ids."""
    at = at or utcnow()
    people = [a for a in admins if not a.is_bot and a.status in ADMIN_STATUSES]
    await session.execute(delete(GroupAdmin).where(GroupAdmin.group_id == group.id))
    for a in people:
        session.add(
            GroupAdmin(
                group_id=group.id,
                user_id=a.user_id,
                status=a.status,
                can_invite_users=a.can_invite_users or a.status == "creator",
                refreshed_at=at,
            )
        )
    group.admins_refreshed_at = at
    await session.flush()
    return [a.user_id for a in people]


async def set_admin(session: AsyncSession, group: Group, admin: AdminInfo) -> None:
    """One administrator changed (chat_member update): add, update or remove just that one."""
    if admin.is_bot:
        return
    if admin.status in ADMIN_STATUSES:
        await upsert(
            session,
            GroupAdmin.__table__,
            {
                "group_id": group.id,
                "user_id": admin.user_id,
                "status": admin.status,
                "can_invite_users": admin.can_invite_users or admin.status == "creator",
                "refreshed_at": utcnow(),
            },
            conflict=["group_id", "user_id"],
            update=["status", "can_invite_users", "refreshed_at"],
        )
    else:
        await session.execute(
            delete(GroupAdmin).where(
                GroupAdmin.group_id == group.id, GroupAdmin.user_id == admin.user_id
            )
        )


async def admin_ids(session: AsyncSession, group_id: int) -> set[int]:
    rows = await session.scalars(select(GroupAdmin.user_id).where(GroupAdmin.group_id == group_id))
    return set(rows)


async def groups_administered(session: AsyncSession, user_id: int) -> Sequence[tuple[Group, str]]:
    """Active groups where the user is the creator or an administrator, by title."""
    rows = await session.execute(
        select(Group, GroupAdmin.status)
        .join(GroupAdmin, GroupAdmin.group_id == Group.id)
        .where(GroupAdmin.user_id == user_id, Group.is_active.is_(True))
        .order_by(Group.title, Group.id)
    )
    return [(g, s) for g, s in rows.all()]


async def get_active(session: AsyncSession, group_id: int) -> Group:
    group = await session.get(Group, group_id)
    if group is None or not group.is_active:
        raise GroupNotFound(group_id)
    return group


# ---------------------------------------------------------------- members


async def record_membership(
    session: AsyncSession, group: Group, user_id: int, status: str, *, at: datetime | None = None
) -> None:
    at = at or utcnow()
    present = status in {"member", "administrator", "creator", "restricted"}
    values = {
        "group_id": group.id,
        "user_id": user_id,
        "status": status,
        "updated_at": at,
        "joined_at": at if present else None,
        "left_at": None if present else at,
    }
    existing = await session.get(Membership, (group.id, user_id))
    if existing is None:
        session.add(Membership(**values))
    else:
        was_present = existing.status in {"member", "administrator", "creator", "restricted"}
        existing.status = status
        existing.updated_at = at
        if present and not was_present:
            existing.joined_at = at
            existing.left_at = None
        elif not present and was_present:
            existing.left_at = at
    await session.flush()


async def get(session: AsyncSession, group_id: int) -> Group | None:
    """The group by its id (active or not), None if unknown."""
    return await session.get(Group, group_id)
