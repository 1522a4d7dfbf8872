"""What the bot promises to tell people, as outbox rows (services.outbox), written in the
transaction of the change that makes the promise.

Each function decides the audience once: a person who never started the bot (or blocked
it) cannot be messaged and is counted instead; bots are never messaged. The rows carry ids
and facts, not texts: bot/notices.py renders each in its recipient's language when it is
sent. Keys make each promise unique, so a replay or a second closing promises nothing new:

    closing:D<deal>:<user>        a participant's outcome of a deal (kind closing_member)
    closing:D<deal>:owner         the owner's summary of a closing (closing_owner)
    closing:D<deal>:post:<group>  the outcome, as a reply to the deal's post in its group,
                                  with the deep link to the pickup code (closing_post)
    added:G<group>:<user>:<time>  the note to whoever added the bot to a group (added_note)
    fulfil:<order>:<state>        ready for pickup / picked up / delivered (fulfilment)
    refund:<order>                an order cancelled by the owner (refund)
    credit:<user>:<first entry>   ledger lines of one change, one message per member (credit)
    rights:<group>:<admin>:<why>:<day>  the bot lacks a right it needs (rights)
    reminder:D<deal>:<kind>:<group>  a reminder before closing, in each group (reminder)
    digest:<scope>:<day>:<user>:<part>  a daily digest (text, then chart) (digest_text/_chart)
    revoke:<chat>:<link>          an invite link to revoke after /forgetme (revoke_link)
    edit:<chat>:<message>         a message of the bot replaced by its outcome (edit_text)
    review:<order>                the invitation to rate a handed-over order (review_invite,
                                  services.reviews)
    review:reply:<review>:<group> the organiser's reply under the deal's post (review_reply)

No aiogram here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from models import CreditEntry, Deal, DealPost, Group, OfflineEvent, User
from services import outbox

if TYPE_CHECKING:  # they promise notices through this module
    from services.deals import Closing
    from services.fulfilment import Marked, Refunded


@dataclass
class Audience:
    """How many were promised a message, and how many cannot be reached (never started
    the bot, blocked it)."""

    told: int = 0
    not_started: int = 0

    def __iadd__(self, other: Audience) -> Audience:
        self.told += other.told
        self.not_started += other.not_started
        return self


async def _reachable(session: AsyncSession, user_ids: Iterable[int]) -> set[int]:
    ids = list(set(user_ids))
    if not ids:
        return set()
    rows = await session.scalars(
        select(User.id).where(User.id.in_(ids), User.started.is_(True), User.is_bot.is_(False))
    )
    return set(rows)


async def closing(session: AsyncSession, done: Closing, now: datetime) -> Audience:
    """Each participant's outcome, and the owner's summary. An offline event whose sign-up
    closed (succeeded; services.gatherings) tells only its owner: the members hold their
    tickets, and the post shows that sign-up is closed; a cancelled event tells everyone."""
    deal = done.deal
    reachable = await _reachable(session, [o.user_id for o in done.orders])
    found = Audience()
    quiet = done.outcome == "succeeded" and await session.get(OfflineEvent, deal.id) is not None
    for order in [] if quiet else done.orders:
        if order.user_id not in reachable:
            found.not_started += 1
            continue
        await outbox.promise(
            session,
            key=f"closing:D{deal.id}:{order.user_id}",
            chat_id=order.user_id,
            kind="closing_member",
            payload={"deal_id": deal.id, "order_id": order.id, "outcome": done.outcome},
            group_id=order.group_id,
            now=now,
        )
        found.told += 1
    # The owner made the deal in private chat with the bot: always told (if they blocked
    # it since, the row waits for their next /start).
    await outbox.promise(
        session,
        key=f"closing:D{deal.id}:owner",
        chat_id=deal.owner_id,
        kind="closing_owner",
        payload={"deal_id": deal.id, "outcome": done.outcome},
        now=now,
    )
    if not quiet:
        await closing_post(session, deal.id, done.outcome, now)
    return found


async def closing_post(session: AsyncSession, deal_id: int, outcome: str, now: datetime) -> int:
    """The outcome in the deal's group, as a reply to its post: an edit notifies nobody, a
    reply does (members who never started the bot learn where their pickup code is). One
    per post (a deal without a sent post, or whose group removed the bot, gets none); the
    key makes it once per deal and group, however many closings or announcements promise
    it. Returns how many were promised."""
    rows = await session.execute(
        select(DealPost.message_id, Group.id, Group.chat_id)
        .join(Group, Group.id == DealPost.group_id)
        .where(DealPost.deal_id == deal_id, DealPost.message_id.is_not(None))
        .where(Group.is_active.is_(True))
        .order_by(Group.id)
    )
    told = 0
    for message_id, group_id, chat_id in rows.all():
        told += await outbox.promise(
            session,
            key=f"closing:D{deal_id}:post:{group_id}",
            chat_id=chat_id,
            kind="closing_post",
            payload={"deal_id": deal_id, "message_id": message_id, "outcome": outcome},
            group_id=group_id,
            now=now,
        )
    return told


async def added_note(
    session: AsyncSession, user_id: int, group_id: int, at: datetime, now: datetime
) -> bool:
    """The private note to whoever added the bot to a group (`at`: when, which tells a
    later re-adding from this one). A person who has not started the bot yet gets it when
    they do (the outbox parks it on the 403)."""
    return await outbox.promise(
        session,
        key=f"added:G{group_id}:{user_id}:{int(at.timestamp())}",
        chat_id=user_id,
        kind="added_note",
        payload={"group_id": group_id},
        group_id=group_id,
        now=now,
    )


async def fulfilment(session: AsyncSession, changes: Sequence[Marked], now: datetime) -> Audience:
    """Ready for pickup, picked up, delivered: one message per changed order."""
    reachable = await _reachable(session, [m.order.user_id for m in changes])
    found = Audience()
    for marked in changes:
        order = marked.order
        if order.user_id not in reachable:
            found.not_started += 1
            continue
        await outbox.promise(
            session,
            key=f"fulfil:{order.id}:{marked.state}",
            chat_id=order.user_id,
            kind="fulfilment",
            payload={"order_id": order.id, "state": marked.state},
            group_id=order.group_id,
            now=now,
        )
        found.told += 1
    return found


async def refund(session: AsyncSession, refunded: Refunded, now: datetime) -> Audience:
    order = refunded.order
    if order.user_id not in await _reachable(session, [order.user_id]):
        return Audience(not_started=1)
    await outbox.promise(
        session,
        key=f"refund:{order.id}",
        chat_id=order.user_id,
        kind="refund",
        payload={"order_id": order.id},
        group_id=order.group_id,
        now=now,
    )
    return Audience(told=1)


async def credit(
    session: AsyncSession, entries: Iterable[CreditEntry | None], now: datetime
) -> Audience:
    """Ledger lines an order change wrote (earned, reversed, given back): one message per
    member, however many orders of theirs the change touched."""
    by_user: dict[int, list[CreditEntry]] = {}
    for entry in entries:
        if entry is not None:
            by_user.setdefault(entry.user_id, []).append(entry)
    reachable = await _reachable(session, by_user)
    found = Audience()
    for user_id, lines in by_user.items():
        if user_id not in reachable:
            found.not_started += 1
            continue
        await session.flush()  # the entries' ids
        ids = sorted(e.id for e in lines)
        await outbox.promise(
            session,
            key=f"credit:{user_id}:{ids[0]}",
            chat_id=user_id,
            kind="credit",
            payload={"entry_ids": ids},
            group_id=lines[0].group_id,
            now=now,
        )
        found.told += 1
    return found


async def rights(
    session: AsyncSession,
    group_id: int,
    admin_ids: Iterable[int],
    reason: str,
    now: datetime,
) -> int:
    """Tell a group's administrators (once a day each) that the bot lacks a right it needs
    (`reason`: a key of bot/notices.py's rights texts). Returns how many were promised."""
    reachable = await _reachable(session, admin_ids)
    day = now.date().isoformat()
    for admin_id in sorted(reachable):
        await outbox.promise(
            session,
            key=f"rights:{group_id}:{admin_id}:{reason}:{day}",
            chat_id=admin_id,
            kind="rights",
            payload={"group_id": group_id, "reason": reason},
            group_id=group_id,
            now=now,
        )
    return len(reachable)


async def revoke_links(
    session: AsyncSession, links: Iterable[tuple[int, str]], now: datetime
) -> None:
    """Invite links (group chat id, link) to revoke at Telegram."""
    for chat_id, link in links:
        await outbox.promise(
            session,
            key=f"revoke:{chat_id}:{link[-60:]}",
            chat_id=chat_id,
            kind="revoke_link",
            payload={"link": link, outbox.ERASE: True},
            now=now,
        )


async def edit_text(
    session: AsyncSession, chat_id: int, message_id: int, text: str, now: datetime
) -> None:
    """Replace a message of the bot with `text` once the change committed (already in the
    person's language: used where the person's data, their language included, is gone;
    the row is deleted once settled, so nothing of theirs stays behind)."""
    await outbox.promise(
        session,
        key=f"edit:{chat_id}:{message_id}",
        chat_id=chat_id,
        kind="edit_text",
        payload={"message_id": message_id, "text": text, outbox.ERASE: True},
        now=now,
    )


async def reminder(session: AsyncSession, deal_id: int, kind: str, now: datetime) -> int:
    """A reminder before closing (`kind`, e.g. "2h"), as a reply to the deal's post in each
    of its active groups, with the time left as of `now`. Returns the groups promised."""
    rows = await session.execute(
        select(DealPost.message_id, Group.id, Group.chat_id)
        .join(Group, Group.id == DealPost.group_id)
        .join(Deal, Deal.id == DealPost.deal_id)
        .where(DealPost.deal_id == deal_id, DealPost.message_id.is_not(None))
        .where(Group.is_active.is_(True))
    )
    told = 0
    for message_id, group_id, chat_id in rows.all():
        await outbox.promise(
            session,
            key=f"reminder:D{deal_id}:{kind}:{group_id}",
            chat_id=chat_id,
            kind="reminder",
            payload={"deal_id": deal_id, "message_id": message_id, "at": now.isoformat()},
            group_id=group_id,
            now=now,
        )
        told += 1
    return told


async def digest(
    session: AsyncSession, user_id: int, group_id: int | None, day, now: datetime
) -> None:
    """A daily digest of `day` for one recipient: of the group (`group_id`: its text, then
    its chart), or the operators' cross-group digest (`group_id` None: text only). Built
    when it is sent, as of `now`."""
    scope = f"G{group_id}" if group_id is not None else "admin"
    payload = {"day": day.isoformat(), "at": now.isoformat(), "group_id": group_id}
    parts = ("text", "chart") if group_id is not None else ("text",)
    for part in parts:
        await outbox.promise(
            session,
            key=f"digest:{scope}:{day.isoformat()}:{user_id}:{part}",
            chat_id=user_id,
            kind=f"digest_{part}",
            payload=payload,
            group_id=group_id,
            now=now,
        )
