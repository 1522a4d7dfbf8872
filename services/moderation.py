"""Protection from spam (刷屏): a group's rules, decided on the update in memory, acted on
through the outbox, logged without text.

The rules (all off by default, per group, in /settings):

- challenge: a member who joins is restricted (cannot send) until they tap, within
  `challenge_minutes`, the emoji the group's message names among six shuffled ones; only
  their own tap counts. A wrong tap or the time running out fails the challenge: the member
  stays restricted (an owner can lift it from /modlog). Passing restores the group's default
  permissions; the challenge message is deleted either way.
- links: a message with a link (url / text_link entities), a t.me invite link, an @mention
  or a forwarded channel post, from a member who joined less than `link_days` days ago, is
  deleted. (Photos count through their caption's entities: QR codes in images are not
  decoded, which would need an image library.)
- flood: more than `flood_count` messages in `flood_seconds` seconds mute the member for
  `mute_minutes` minutes, once per flood (the window is counted in memory per process, the
  mute deduplicated in the database).
- joins: join service messages ("X joined the group") are deleted.

Administrators and the group's allow-list (/allow) are exempt. Every action is a ModAction
row (kind of violation, member, time; never the text) with a unique key, and each Telegram
call an outbox row written in the same transaction, so a replayed or concurrent update acts
once. Messages older than Telegram's 48 hours are not deleted (deleteMessage would fail).

No aiogram here: the bot layer (bot/moderation.py) reads the update.
"""

from __future__ import annotations

import json
import random
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import (
    Challenge,
    Group,
    GroupAdmin,
    Membership,
    ModAction,
    ModAllowed,
    ModSettings,
    User,
)
from models.upsert import insert_ignore
from services import outbox

DELETE_WITHIN = timedelta(hours=48)  # Telegram deletes bot-visible messages up to 48 h old
LINK_DAYS = (0, 1, 3, 7)  # the choices of /settings (0: off)
FLOOD_COUNTS = (0, 5, 10)  # more than this many messages in FLOOD_SECONDS (0: off)
FLOOD_SECONDS = 10
MUTE_MINUTES = 10
CHALLENGE_MINUTES = 5
CHOICES = 6  # emoji buttons on a challenge
LOG_LIMIT = 15  # /modlog: the last actions of each group
EXPIRE_BATCH = 100
LINK_KINDS = frozenset({"link", "invite", "mention", "forward"})
# What the log shows an Undo for: a mute, and a failed challenge (the member stays restricted)
UNDOABLE = frozenset({"mute", "fail"})
# The emoji a challenge names: a key (its name in views) and the emoji.
EMOJI: dict[str, str] = {
    "apple": "🍎",
    "banana": "🍌",
    "grapes": "🍇",
    "cherries": "🍒",
    "lemon": "🍋",
    "carrot": "🥕",
    "cat": "🐱",
    "dog": "🐶",
    "fish": "🐟",
    "rocket": "🚀",
    "umbrella": "☂️",
    "gift": "🎁",
}
KIND_RESTRICT = "mod_restrict"  # outbox: restrictChatMember (mute, or open again)
KIND_DELETE = "mod_delete"  # outbox: deleteMessage
KIND_CHALLENGE = "mod_challenge"  # outbox: the challenge message in the group


@dataclass(frozen=True, slots=True)
class Policy:
    """A group's rules as the in-memory screen needs them (bot/moderation.py caches them)."""

    group_id: int
    chat_id: int
    challenge: bool = False
    challenge_minutes: int = CHALLENGE_MINUTES
    link_days: int = 0
    flood_count: int = 0
    flood_seconds: int = FLOOD_SECONDS
    mute_minutes: int = MUTE_MINUTES
    delete_joins: bool = False
    exempt: frozenset[int] = frozenset()  # administrators and the allow-list, as loaded

    @property
    def active(self) -> bool:
        return bool(self.challenge or self.link_days or self.flood_count or self.delete_joins)


@dataclass(frozen=True, slots=True)
class Rights:
    """What the bot may do in the group (None: not known yet) and what that leaves undone."""

    can_restrict: bool | None
    can_delete: bool | None


# ---------------------------------------------------------------- settings


async def settings_of(session: AsyncSession, group_id: int) -> ModSettings:
    """The group's rules (a row with every rule off when it has none yet)."""
    row = await session.get(ModSettings, group_id)
    if row is None:
        await insert_ignore(session, ModSettings.__table__, {"group_id": group_id}, ["group_id"])
        row = await session.get(ModSettings, group_id, populate_existing=True)
        assert row is not None
    return row


def _next(choices: Sequence[int], value: int) -> int:
    later = [c for c in choices if c > value]
    return later[0] if later else choices[0]


TOGGLES = ("chal", "link", "flood", "joins")


async def toggle(session: AsyncSession, group_id: int, what: str, now: datetime) -> ModSettings:
    """One /settings button: challenge and joins on/off, links and flood to their next
    choice (off after the last)."""
    row = await settings_of(session, group_id)
    if what == "chal":
        row.challenge = not row.challenge
    elif what == "joins":
        row.delete_joins = not row.delete_joins
    elif what == "link":
        row.link_days = _next(LINK_DAYS, row.link_days)
    elif what == "flood":
        row.flood_count = _next(FLOOD_COUNTS, row.flood_count)
    else:
        raise ValueError(f"unknown moderation setting {what!r}")
    row.updated_at = now
    await session.flush()
    return row


async def record_bot_rights(
    session: AsyncSession, group_id: int, can_restrict: bool, can_delete: bool
) -> None:
    """The bot's own rights in the group, from a my_chat_member update."""
    row = await settings_of(session, group_id)
    row.bot_can_restrict = can_restrict
    row.bot_can_delete = can_delete
    await session.flush()


def missing_rights(row: ModSettings) -> tuple[bool, bool]:
    """(restrict missing, delete missing) for the rules that are on: a rule that needs a
    right the bot lacks (or is not known to have) fails without it."""
    needs_restrict = row.challenge or bool(row.flood_count)
    needs_delete = bool(row.link_days) or row.delete_joins or row.challenge
    return (
        needs_restrict and not row.bot_can_restrict,
        needs_delete and not row.bot_can_delete,
    )


ANY_RULE = or_(
    ModSettings.challenge.is_(True),
    ModSettings.link_days > 0,
    ModSettings.flood_count > 0,
    ModSettings.delete_joins.is_(True),
)


async def load_policies(session: AsyncSession, chat_id: int | None = None) -> dict[int, Policy]:
    """The rules of every active group with a rule on (or of the one with `chat_id`), by
    chat id, with their exempt members (stored administrators and the allow-list)."""
    query = (
        select(Group.id, Group.chat_id, ModSettings)
        .join(ModSettings, ModSettings.group_id == Group.id)
        .where(Group.is_active.is_(True), ANY_RULE)
    )
    if chat_id is not None:
        query = query.where(Group.chat_id == chat_id)
    found = (await session.execute(query)).all()
    if not found:
        return {}
    ids = [group_id for group_id, _chat, _row in found]
    exempt: dict[int, set[int]] = {group_id: set() for group_id in ids}
    for model in (GroupAdmin, ModAllowed):
        rows = await session.execute(
            select(model.group_id, model.user_id).where(model.group_id.in_(ids))
        )
        for group_id, user_id in rows:
            exempt[group_id].add(user_id)
    return {
        chat: Policy(
            group_id,
            chat,
            row.challenge,
            row.challenge_minutes,
            row.link_days,
            row.flood_count,
            row.flood_seconds,
            row.mute_minutes,
            row.delete_joins,
            frozenset(exempt[group_id]),
        )
        for group_id, chat, row in found
    }


async def load_policy(session: AsyncSession, chat_id: int) -> Policy | None:
    """The rules of the group with this chat id; None when none is on (or no such group)."""
    return (await load_policies(session, chat_id)).get(chat_id)


# ---------------------------------------------------------------- the allow-list

ALLOW_ARG = re.compile(r"^(?:@([A-Za-z][A-Za-z0-9_]{3,31})|(\d{1,16}))$")


@dataclass(frozen=True, slots=True)
class AllowTarget:
    user_id: int | None = None
    username: str | None = None


def parse_allow(text: str | None) -> AllowTarget | None:
    """The argument of /allow and /unallow: "@username" or a numeric user id (bounded);
    None for anything else (an empty argument: the replied-to member, decided by the
    caller)."""
    value = (text or "").strip()
    match = ALLOW_ARG.match(value)
    if match is None:
        return None
    if match.group(1):
        return AllowTarget(username=match.group(1))
    number = int(match.group(2))
    return AllowTarget(user_id=number) if 0 < number < 2**53 else None


async def resolve(session: AsyncSession, target: AllowTarget) -> int | None:
    if target.user_id is not None:
        return target.user_id
    return await session.scalar(
        select(User.id).where(func.lower(User.username) == (target.username or "").lower())
    )


async def set_allowed(
    session: AsyncSession, group_id: int, user_id: int, allowed: bool, by: int, now: datetime
) -> bool:
    """Add to or remove from the allow-list; True when it changed."""
    if allowed:
        return await insert_ignore(
            session,
            ModAllowed.__table__,
            {"group_id": group_id, "user_id": user_id, "added_by": by, "created_at": now},
            ["group_id", "user_id"],
        )
    result = await session.execute(
        delete(ModAllowed).where(ModAllowed.group_id == group_id, ModAllowed.user_id == user_id)
    )
    return (result.rowcount or 0) > 0


async def allowed_count(session: AsyncSession, group_id: int) -> int:
    return (
        await session.scalar(
            select(func.count()).select_from(ModAllowed).where(ModAllowed.group_id == group_id)
        )
        or 0
    )


async def is_exempt(session: AsyncSession, group_id: int, user_id: int, admins: set[int]) -> bool:
    """Exempt now: a current administrator (the caller's fresh list) or on the allow-list."""
    if user_id in admins:
        return True
    return await session.get(ModAllowed, (group_id, user_id)) is not None


# ---------------------------------------------------------------- actions


async def _log(
    session: AsyncSession,
    key: str,
    group_id: int,
    member_id: int,
    kind: str,
    action: str,
    at: datetime,
    until: datetime | None = None,
) -> int | None:
    """Write the log row; its id, or None when that key was logged before (a replay)."""
    written = await insert_ignore(
        session,
        ModAction.__table__,
        {
            "key": key,
            "group_id": group_id,
            "member_id": member_id,
            "kind": kind,
            "action": action,
            "at": at,
            "until": until,
        },
        ["key"],
    )
    if not written:
        return None
    return await session.scalar(select(ModAction.id).where(ModAction.key == key))


async def _restrict(
    session: AsyncSession,
    key: str,
    chat_id: int,
    group_id: int,
    user_id: int,
    now: datetime,
    *,
    open_: bool,
    until: datetime | None = None,
) -> None:
    await outbox.promise(
        session,
        key=key,
        chat_id=chat_id,
        kind=KIND_RESTRICT,
        payload={
            "user_id": user_id,
            "open": open_,
            "until": int(until.timestamp()) if until else 0,
        },
        now=now,
        group_id=group_id,
    )


async def _delete(
    session: AsyncSession,
    chat_id: int,
    group_id: int,
    message_id: int,
    sent_at: datetime,
    now: datetime,
) -> bool:
    """Promise a deleteMessage, unless the message is past Telegram's 48 hours."""
    if now - sent_at >= DELETE_WITHIN:
        return False
    await outbox.promise(
        session,
        key=f"moddel:{chat_id}:{message_id}",
        chat_id=chat_id,
        kind=KIND_DELETE,
        payload={"message_id": message_id, "sent": int(sent_at.timestamp())},
        now=now,
        group_id=group_id,
    )
    return True


async def joined_at(session: AsyncSession, group_id: int, user_id: int) -> datetime | None:
    membership = await session.get(Membership, (group_id, user_id))
    return membership.joined_at if membership is not None else None


async def remove_link(
    session: AsyncSession,
    policy: Policy,
    user_id: int,
    message_id: int,
    sent_at: datetime,
    kind: str,
    admins: set[int],
    now: datetime,
) -> bool:
    """A message with a link (of `kind`) from a member: deleted when they joined less than
    the group's `link_days` ago and are not exempt. True when it is being deleted."""
    if kind not in LINK_KINDS or not policy.link_days:
        return False
    since = await joined_at(session, policy.group_id, user_id)
    if since is None or now - since >= timedelta(days=policy.link_days):
        return False  # joined long ago, or before the bot could see it: not a newcomer
    if await is_exempt(session, policy.group_id, user_id, admins):
        return False
    if not await _delete(session, policy.chat_id, policy.group_id, message_id, sent_at, now):
        return False
    await _log(
        session,
        f"del:{policy.group_id}:{message_id}",
        policy.group_id,
        user_id,
        kind,
        "delete",
        now,
    )
    return True


async def mute_flood(
    session: AsyncSession,
    policy: Policy,
    user_id: int,
    sent_at: datetime,
    admins: set[int],
    now: datetime,
) -> bool:
    """The member sent more than the limit: muted for `mute_minutes`, once per flood (an
    unexpired flood mute of theirs, or one of the same period, makes this a no-op). True
    when this call muted them."""
    if not policy.flood_count or await is_exempt(session, policy.group_id, user_id, admins):
        return False
    active = await session.scalar(
        select(ModAction.id).where(
            ModAction.group_id == policy.group_id,
            ModAction.member_id == user_id,
            ModAction.action == "mute",
            ModAction.undone_at.is_(None),
            ModAction.until > sent_at,
        )
    )
    if active is not None:
        return False
    length = timedelta(minutes=policy.mute_minutes)
    period = int(sent_at.timestamp()) // int(length.total_seconds())
    until = sent_at + length
    action_id = await _log(
        session,
        f"flood:{policy.group_id}:{user_id}:{period}",
        policy.group_id,
        user_id,
        "flood",
        "mute",
        now,
        until,
    )
    if action_id is None:
        return False
    await _restrict(
        session,
        f"modmute:{action_id}",
        policy.chat_id,
        policy.group_id,
        user_id,
        now,
        open_=False,
        until=until,
    )
    return True


async def remove_join_message(
    session: AsyncSession,
    policy: Policy,
    user_id: int,
    message_id: int,
    sent_at: datetime,
    now: datetime,
) -> bool:
    """A join service message, deleted when the group asks (spam lives in usernames)."""
    if not policy.delete_joins:
        return False
    if not await _delete(session, policy.chat_id, policy.group_id, message_id, sent_at, now):
        return False
    await _log(
        session,
        f"del:{policy.group_id}:{message_id}",
        policy.group_id,
        user_id,
        "joins",
        "delete",
        now,
    )
    return True


# ---------------------------------------------------------------- challenges


def draw(rng: random.Random | None = None) -> tuple[list[tuple[str, str]], str]:
    """Six emoji in shuffled order, each with a random opaque code, and the right code."""
    rng = rng or random.SystemRandom()
    names = rng.sample(sorted(EMOJI), CHOICES)
    codes: set[str] = set()
    while len(codes) < CHOICES:
        codes.add(secrets.token_hex(3))
    options = list(zip(names, sorted(codes, key=lambda _c: rng.random()), strict=True))
    return options, rng.choice(options)[1]


REJOIN_AFTER = timedelta(minutes=1)  # a join seen twice (chat_member and the service message)


async def start_challenge(
    session: AsyncSession, policy: Policy, user_id: int, admins: set[int], now: datetime
) -> bool:
    """A member joined: restricted and challenged (when the group asks). One challenge per
    member and group at a time: the second report of the same join (chat_member and the
    service message), a replay or a concurrent update challenges nothing new."""
    if not policy.challenge or await is_exempt(session, policy.group_id, user_id, admins):
        return False
    options, answer = draw()
    token = secrets.token_urlsafe(9)[:12]
    values = {
        "group_id": policy.group_id,
        "member_id": user_id,
        "token": token,
        "options": json.dumps(options),
        "answer": answer,
        "status": "pending",
        "message_id": None,
        "deadline": now + timedelta(minutes=policy.challenge_minutes),
        "created_at": now,
        "settled_at": None,
    }
    if not await insert_ignore(session, Challenge.__table__, values, ["group_id", "member_id"]):
        # a challenge exists: a new one only for a later join (the last one long settled)
        result = await session.execute(
            update(Challenge)
            .where(
                Challenge.group_id == policy.group_id,
                Challenge.member_id == user_id,
                Challenge.status != "pending",
                Challenge.created_at < now - REJOIN_AFTER,
            )
            .values(**{k: v for k, v in values.items() if k not in {"group_id", "member_id"}})
            .execution_options(synchronize_session=False)
        )
        if not result.rowcount:
            return False
    stamp = int(now.timestamp())
    await _restrict(
        session,
        f"modchr:{policy.group_id}:{user_id}:{stamp}",
        policy.chat_id,
        policy.group_id,
        user_id,
        now,
        open_=False,
    )
    await outbox.promise(
        session,
        key=f"modch:{policy.group_id}:{user_id}:{stamp}",
        chat_id=policy.chat_id,
        kind=KIND_CHALLENGE,
        payload={"member_id": user_id, "token": token},
        now=now,
        group_id=policy.group_id,
    )
    await _log(
        session,
        f"ch:{policy.group_id}:{user_id}:{stamp}",
        policy.group_id,
        user_id,
        "challenge",
        "restrict",
        now,
    )
    return True


@dataclass(frozen=True, slots=True)
class ChallengeView:
    """What the challenge message shows (bot/moderation_notices.py renders it)."""

    token: str
    member_id: int
    member_name: str
    answer_name: str
    options: list[tuple[str, str]]  # (emoji key, code) in the shown order
    minutes: int


async def challenge_view(session: AsyncSession, token: str) -> ChallengeView | None:
    """The pending challenge with this token (None: settled or gone: nothing to post)."""
    row = await session.scalar(select(Challenge).where(Challenge.token == token))
    if row is None or row.status != "pending":
        return None
    user = await session.get(User, row.member_id)
    options = [(name, code) for name, code in json.loads(row.options)]
    answer = next(name for name, code in options if code == row.answer)
    minutes = max(1, round((row.deadline - row.created_at).total_seconds() / 60))
    name = user.full_name if user is not None else str(row.member_id)
    return ChallengeView(token, row.member_id, name, answer, options, minutes)


async def challenge_posted(
    session: AsyncSession, token: str, message_id: int, now: datetime
) -> None:
    """The challenge message went out: remembered, so it can be deleted when settled; one
    settled before it went out (timed out meanwhile) is deleted now."""
    row = await session.scalar(select(Challenge).where(Challenge.token == token))
    if row is None:
        return
    if row.status == "pending":
        row.message_id = message_id
        await session.flush()
        return
    group = await session.get(Group, row.group_id)
    if group is not None:
        await _delete(session, group.chat_id, group.id, message_id, now, now)


@dataclass(frozen=True, slots=True)
class Answer:
    outcome: str  # passed | failed | not_yours | gone


async def _settle(
    session: AsyncSession, row: Challenge, passed: bool, now: datetime, message_id: int | None
) -> bool:
    result = await session.execute(
        update(Challenge)
        .where(
            Challenge.group_id == row.group_id,
            Challenge.member_id == row.member_id,
            Challenge.token == row.token,
            Challenge.status == "pending",
        )
        .values(status="passed" if passed else "failed", settled_at=now)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:
        return False
    group = await session.get(Group, row.group_id)
    if group is None:
        return False
    stamp = int(row.created_at.timestamp())
    if passed:
        await _restrict(
            session,
            f"modopen:{row.group_id}:{row.member_id}:{stamp}",
            group.chat_id,
            group.id,
            row.member_id,
            now,
            open_=True,
        )
    message_id = message_id or row.message_id
    if message_id:
        await _delete(session, group.chat_id, group.id, message_id, row.created_at, now)
    await _log(
        session,
        f"chx:{row.group_id}:{row.member_id}:{stamp}",
        row.group_id,
        row.member_id,
        "challenge",
        "pass" if passed else "fail",
        now,
    )
    return True


async def answer_challenge(
    session: AsyncSession,
    token: str,
    code: str,
    user_id: int,
    message_id: int | None,
    now: datetime,
) -> Answer:
    """A tap on a challenge's button: only the challenged member's counts; the right emoji
    passes, any other fails (no second try); after the deadline it has failed."""
    row = await session.scalar(select(Challenge).where(Challenge.token == token).with_for_update())
    if row is None or row.status != "pending":
        return Answer("gone")
    if row.member_id != user_id:
        return Answer("not_yours")
    passed = code == row.answer and now < row.deadline
    if not await _settle(session, row, passed, now, message_id):
        return Answer("gone")
    return Answer("passed" if passed else "failed")


async def any_expiring(session: AsyncSession, now: datetime) -> bool:
    found = await session.scalar(
        select(Challenge.token)
        .where(Challenge.status == "pending", Challenge.deadline <= now)
        .limit(1)
    )
    return found is not None


async def expire_due(session: AsyncSession, now: datetime, limit: int = EXPIRE_BATCH) -> int:
    """Challenges whose time ran out fail (the member stays restricted); how many."""
    rows = list(
        await session.scalars(
            select(Challenge)
            .where(Challenge.status == "pending", Challenge.deadline <= now)
            .order_by(Challenge.deadline)
            .limit(limit)
        )
    )
    ended = 0
    for row in rows:
        ended += await _settle(session, row, False, now, None)
    return ended


# ---------------------------------------------------------------- the log


@dataclass(frozen=True, slots=True)
class LogLine:
    id: int
    member_id: int
    member_name: str
    kind: str
    action: str
    at: datetime
    until: datetime | None
    undone: bool
    undoable: bool


async def recent(
    session: AsyncSession, group_id: int, now: datetime, limit: int = LOG_LIMIT
) -> list[LogLine]:
    """The group's last actions, newest first."""
    rows = list(
        await session.scalars(
            select(ModAction)
            .where(ModAction.group_id == group_id)
            .order_by(ModAction.at.desc(), ModAction.id.desc())
            .limit(limit)
        )
    )
    names = {
        u.id: u.full_name
        for u in await session.scalars(select(User).where(User.id.in_({r.member_id for r in rows})))
    }
    return [
        LogLine(
            r.id,
            r.member_id,
            names.get(r.member_id, str(r.member_id)),
            r.kind,
            r.action,
            r.at,
            r.until,
            r.undone_at is not None,
            r.action in UNDOABLE and r.undone_at is None and (r.until is None or r.until > now),
        )
        for r in rows
    ]


async def action(session: AsyncSession, action_id: int) -> ModAction | None:
    return await session.get(ModAction, action_id)


async def undo(session: AsyncSession, row: ModAction, by: int, now: datetime) -> bool:
    """Lift a mute (or a failed challenge's restriction): once, whoever taps Undo first."""
    if row.action not in UNDOABLE:
        return False
    result = await session.execute(
        update(ModAction)
        .where(ModAction.id == row.id, ModAction.undone_at.is_(None))
        .values(undone_at=now, undone_by=by)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:
        return False
    group = await session.get(Group, row.group_id)
    if group is None:
        return False
    await _restrict(
        session, f"modundo:{row.id}", group.chat_id, group.id, row.member_id, now, open_=True
    )
    await _log(session, f"undo:{row.id}", group.id, row.member_id, row.kind, "undo", now)
    return True


# ---------------------------------------------------------------- the digest


@dataclass(frozen=True, slots=True)
class Counts:
    """A group's moderation in a period, for its digest."""

    deleted: int = 0
    muted: int = 0
    passed: int = 0
    failed: int = 0

    @property
    def any(self) -> bool:
        return bool(self.deleted or self.muted or self.passed or self.failed)


async def counts(
    session: AsyncSession, *, group_id: int, since: datetime, until: datetime
) -> Counts:
    rows = dict(
        (
            await session.execute(
                select(ModAction.action, func.count())
                .where(ModAction.group_id == group_id, ModAction.at >= since, ModAction.at < until)
                .group_by(ModAction.action)
            )
        ).all()
    )
    return Counts(
        rows.get("delete", 0), rows.get("mute", 0), rows.get("pass", 0), rows.get("fail", 0)
    )
