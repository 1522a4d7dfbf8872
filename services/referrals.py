"""Referral credit without Telegram: personal invite links and who invited whom, deal share
links, their clicks, and the attribution of orders to sharers.

Invite links (one per member per group, reused until revoked): a `chat_member` join that
carries one of them credits its owner once per (group, member) — the `referrals` primary key
with INSERT … ON CONFLICT DO NOTHING makes replays, duplicates and concurrent deliveries count
once on both databases. Bots, self-invites, re-joins (a member seen in the group before),
unknown or revoked links and links of another group credit nobody.

Share links (one per member per deal per group): opening one records a click (never the
sharer's own). An order placed in a group is attributed to the sharer of the buyer's latest
click in that group within the group's attribution window (`Group.attribution_days`), never
to the buyer themself (last click wins).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    Deal,
    DealPost,
    Group,
    GroupAdmin,
    InviteLink,
    Membership,
    Referral,
    ShareClick,
    ShareLink,
    User,
)
from models.upsert import insert_ignore, merge_rows
from services.parsing import clean_text

INVITE_NAME_MAX = 32  # createChatInviteLink: name of 0-32 characters
CODE_BYTES = 9  # token_urlsafe(9) → 12 characters of [A-Za-z0-9_-]
CODE_MAX = 32  # share_links.code; /start payloads allow 64 of [A-Za-z0-9_-]
CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


# ---------------------------------------------------------------- invite links


def invite_name(full_name: str) -> str:
    """The link's name (shown to admins in Telegram): the member's name, at most 32
    characters (counted as UTF-16 code units, to be safe)."""
    name = " ".join(clean_text(full_name, multiline=False).split())
    while len(name.encode("utf-16-le")) // 2 > INVITE_NAME_MAX:
        name = name[:-1]
    return name.rstrip()


async def active_invite(session: AsyncSession, group_id: int, user_id: int) -> InviteLink | None:
    """The member's newest unrevoked invite link to the group, if any."""
    return await session.scalar(
        select(InviteLink)
        .where(
            InviteLink.group_id == group_id,
            InviteLink.user_id == user_id,
            InviteLink.revoked_at.is_(None),
        )
        .order_by(InviteLink.id.desc())
        .limit(1)
    )


async def save_invite(
    session: AsyncSession, group_id: int, user_id: int, link: str, name: str, now: datetime
) -> InviteLink:
    """Store a link Telegram created for the member (idempotent on the link)."""
    await insert_ignore(
        session,
        InviteLink.__table__,
        {
            "group_id": group_id,
            "user_id": user_id,
            "link": link,
            "name": name[:INVITE_NAME_MAX],
            "created_at": now,
        },
        conflict=["link"],
    )
    row = await session.scalar(select(InviteLink).where(InviteLink.link == link))
    assert row is not None
    return row


async def revoke_invite(session: AsyncSession, invite_id: int, now: datetime) -> None:
    row = await session.get(InviteLink, invite_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = now
        await session.flush()


PRESENT = ("member", "administrator", "creator", "restricted")


async def member_groups(session: AsyncSession, user_id: int) -> list[Group]:
    """Active groups the user is known to be in (a membership seen, or an administrator),
    by title."""
    as_member = select(Membership.group_id).where(
        Membership.user_id == user_id, Membership.status.in_(PRESENT)
    )
    as_admin = select(GroupAdmin.group_id).where(GroupAdmin.user_id == user_id)
    rows = await session.scalars(
        select(Group)
        .where(Group.is_active.is_(True), Group.id.in_(as_member.union(as_admin)))
        .order_by(Group.title, Group.id)
    )
    return list(rows)


async def is_member(session: AsyncSession, group_id: int, user_id: int) -> bool:
    return any(g.id == group_id for g in await member_groups(session, user_id))


@dataclass(frozen=True, slots=True)
class Credit:
    group_id: int
    member_id: int
    inviter_id: int
    invite_link_id: int


async def credit_join(
    session: AsyncSession,
    group: Group,
    *,
    member_id: int,
    member_is_bot: bool,
    link: str | None,
    at: datetime,
) -> Credit | None:
    """A member joined `group` through `link` (from a chat_member update): credit the link's
    owner, once per (group, member). Call it before the membership is recorded, so a member
    seen in the group before counts as a re-join. None when nobody is credited."""
    if member_is_bot or not link:
        return None
    invite = await session.scalar(select(InviteLink).where(InviteLink.link == link))
    if invite is None or invite.revoked_at is not None or invite.group_id != group.id:
        return None
    if invite.user_id == member_id:
        return None
    seen = await session.scalar(
        select(Membership.user_id).where(
            Membership.group_id == group.id, Membership.user_id == member_id
        )
    )
    if seen is not None:
        return None
    inserted = await insert_ignore(
        session,
        Referral.__table__,
        {
            "group_id": group.id,
            "user_id": member_id,
            "inviter_id": invite.user_id,
            "invite_link_id": invite.id,
            "joined_at": at,
        },
        conflict=["group_id", "user_id"],
    )
    if not inserted:
        return None
    return Credit(group.id, member_id, invite.user_id, invite.id)


@dataclass(frozen=True, slots=True)
class InviterCount:
    inviter_id: int
    name: str
    count: int


@dataclass(frozen=True, slots=True)
class Invited:
    member_id: int
    member_name: str
    inviter_id: int
    inviter_name: str
    joined_at: datetime


def _name(user: User | None, user_id: int) -> str:
    return user.full_name if user is not None else str(user_id)


async def top_inviters(session: AsyncSession, group_id: int, limit: int = 10) -> list[InviterCount]:
    """Members with the most credited joins in the group, most first."""
    count = func.count().label("n")
    rows = await session.execute(
        select(Referral.inviter_id, count)
        .where(Referral.group_id == group_id)
        .group_by(Referral.inviter_id)
        .order_by(count.desc(), Referral.inviter_id)
        .limit(limit)
    )
    pairs = [(r.inviter_id, r.n) for r in rows.all()]
    users = await _users(session, [uid for uid, _n in pairs])
    return [InviterCount(uid, _name(users.get(uid), uid), n) for uid, n in pairs]


async def recent_referrals(session: AsyncSession, group_id: int, limit: int = 20) -> list[Invited]:
    """Who invited whom in the group, newest first."""
    rows = (
        await session.scalars(
            select(Referral)
            .where(Referral.group_id == group_id)
            .order_by(Referral.joined_at.desc(), Referral.user_id)
            .limit(limit)
        )
    ).all()
    users = await _users(session, [r.user_id for r in rows] + [r.inviter_id for r in rows])
    return [
        Invited(
            r.user_id,
            _name(users.get(r.user_id), r.user_id),
            r.inviter_id,
            _name(users.get(r.inviter_id), r.inviter_id),
            r.joined_at,
        )
        for r in rows
    ]


async def referral_count(session: AsyncSession, group_id: int) -> int:
    return await session.scalar(
        select(func.count()).select_from(Referral).where(Referral.group_id == group_id)
    )


async def _users(session: AsyncSession, ids: list[int]) -> dict[int, User]:
    if not ids:
        return {}
    rows = await session.scalars(select(User).where(User.id.in_(set(ids))))
    return {u.id: u for u in rows}


# ---------------------------------------------------------------- share links


def new_code() -> str:
    return secrets.token_urlsafe(CODE_BYTES)


def looks_like_code(text: str | None) -> bool:
    return bool(text) and CODE_RE.match(text) is not None


async def share_link(
    session: AsyncSession, deal_id: int, group_id: int, user_id: int, now: datetime
) -> ShareLink:
    """The member's share link for the deal in the group, created on first use. A revoked
    one is replaced by a new code (its clicks go with it)."""
    return (await share_links(session, user_id, [(deal_id, group_id)], now))[(deal_id, group_id)]


async def share_links(
    session: AsyncSession, user_id: int, pairs: list[tuple[int, int]], now: datetime
) -> dict[tuple[int, int], ShareLink]:
    """The person's share link for each (deal id, group id), created on first use, like
    share_link for all of them at once: one read when they all exist,
    else the revoked ones replaced and the missing ones inserted in one statement each."""
    wanted = list(dict.fromkeys(pairs))
    if not wanted:
        return {}
    stmt = select(ShareLink).where(
        ShareLink.user_id == user_id, ShareLink.deal_id.in_(sorted({d for d, _g in wanted}))
    )
    for _attempt in range(5):
        rows = {(r.deal_id, r.group_id): r for r in await session.scalars(stmt)}
        found = {p: rows[p] for p in wanted if p in rows and rows[p].revoked_at is None}
        missing = [p for p in wanted if p not in found]
        if not missing:
            return found
        revoked = [rows[p].code for p in missing if p in rows]
        if revoked:  # a revoked link is replaced by a new code (its clicks go with it)
            await session.execute(delete(ShareLink).where(ShareLink.code.in_(revoked)))
        fresh = [
            {
                "code": new_code(),
                "deal_id": deal_id,
                "group_id": group_id,
                "user_id": user_id,
                "created_at": now,
            }
            for deal_id, group_id in missing
        ]
        # Conflicts on (deal, group, user) (a concurrent search of the same person) insert
        # nothing; one on a code (astronomically rare) fails the statement: try again.
        try:
            async with session.begin_nested():
                await merge_rows(
                    session, ShareLink.__table__, fresh, ["deal_id", "group_id", "user_id"]
                )
        except IntegrityError:
            continue
    raise RuntimeError("could not create share links")  # pragma: no cover


async def deal_in_group(
    session: AsyncSession, deal_id: int, group_id: int
) -> tuple[Deal, Group] | None:
    """The deal and the group, if the deal is posted in that (active) group."""
    row = (
        await session.execute(
            select(Deal, Group)
            .join(DealPost, DealPost.deal_id == Deal.id)
            .join(Group, Group.id == DealPost.group_id)
            .where(Deal.id == deal_id, Group.id == group_id, Group.is_active.is_(True))
            .execution_options(populate_existing=True)
        )
    ).first()
    return (row[0], row[1]) if row is not None else None


async def groups_of_deal(session: AsyncSession, deal_id: int, user_id: int) -> list[Group]:
    """The active groups the deal is posted in, those the user is in first."""
    rows = await session.scalars(
        select(Group)
        .join(DealPost, DealPost.group_id == Group.id)
        .where(DealPost.deal_id == deal_id, Group.is_active.is_(True))
        .order_by(Group.id)
    )
    groups = list(rows)
    mine = {g.id for g in await member_groups(session, user_id)}
    return sorted(groups, key=lambda g: g.id not in mine)


async def find_share(session: AsyncSession, code: str) -> ShareLink | None:
    """A usable share link: known, not revoked, and its deal still posted in its group."""
    if not looks_like_code(code):
        return None
    row = await session.get(ShareLink, code)
    if row is None or row.revoked_at is not None:
        return None
    posted = await session.scalar(
        select(DealPost.deal_id)
        .join(Group, Group.id == DealPost.group_id)
        .where(
            DealPost.deal_id == row.deal_id,
            DealPost.group_id == row.group_id,
            Group.is_active.is_(True),
        )
    )
    return row if posted is not None else None


async def revoke_share(session: AsyncSession, code: str, now: datetime) -> None:
    row = await session.get(ShareLink, code)
    if row is not None and row.revoked_at is None:
        row.revoked_at = now
        await session.flush()


async def record_click(
    session: AsyncSession, share: ShareLink, user_id: int, now: datetime
) -> ShareClick | None:
    """Someone opened the link; the sharer opening their own link is not a click."""
    if share.user_id == user_id or share.revoked_at is not None:
        return None
    click = ShareClick(code=share.code, group_id=share.group_id, user_id=user_id, clicked_at=now)
    session.add(click)
    await session.flush()
    return click


@dataclass(frozen=True, slots=True)
class Attribution:
    referrer_id: int
    code: str


def attribution_query(
    user_id: int, group_id: int | None, days: int | None, now: datetime
) -> Select | None:
    """The query of who gets credit for an order the member places in the group now (the
    sharer and the code of the member's latest click in that group within `days`, never the
    member); None when the group attributes nothing. The order action runs it on its own
    or as scalar subqueries of the order's INSERT (services.orders)."""
    if group_id is None or not days or days <= 0:
        return None
    return (
        select(ShareLink.user_id, ShareLink.code)
        .select_from(ShareClick)
        .join(ShareLink, ShareLink.code == ShareClick.code)
        .where(
            ShareClick.user_id == user_id,
            ShareClick.group_id == group_id,
            ShareClick.clicked_at >= now - timedelta(days=days),
            ShareClick.clicked_at <= now,
            ShareLink.user_id != user_id,
            ShareLink.revoked_at.is_(None),
        )
        .order_by(ShareClick.clicked_at.desc(), ShareClick.id.desc())
        .limit(1)
    )


def attribution_columns(
    user_id: int, group_id: int | None, days: int | None, now: datetime
) -> tuple[Any, Any]:
    """`attribution_query` as two scalar subqueries (the referrer, the code) for the values
    of an order's INSERT; (None, None) when the group attributes nothing."""
    query = attribution_query(user_id, group_id, days, now)
    if query is None:
        return None, None
    return (
        query.with_only_columns(ShareLink.user_id).scalar_subquery(),
        query.with_only_columns(ShareLink.code).scalar_subquery(),
    )


async def attribution_days(session: AsyncSession, group_id: int | None) -> int | None:
    """The group's attribution window in days; the group row the transaction already holds
    (the handler read it) is used without a query."""
    if group_id is None:
        return None
    group = await session.get(Group, group_id)
    return group.attribution_days if group is not None else None


async def attribute(
    session: AsyncSession, *, user_id: int, group_id: int | None, now: datetime
) -> Attribution | None:
    """Who gets credit for an order the member places in the group now: the sharer of the
    member's latest click in that group within the attribution window, never the member."""
    days = await attribution_days(session, group_id)
    query = attribution_query(user_id, group_id, days, now)
    if query is None:
        return None
    row = (await session.execute(query)).first()
    if row is None:
        return None
    return Attribution(row.user_id, row.code)
