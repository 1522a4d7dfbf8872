"""The anti-spam screen: decides on the update in memory whether a group message may break a
rule of its group (services.moderation), so that ordinary chatter stays on the fast path.

`ModerationGate.screen(message, bot)` costs, for a group with no rule on, one dictionary
lookup (the group's rules are cached per chat id for `ttl` seconds, a group without rules
too; /settings and admin changes drop the entry at once). For a moderated group it reads
the message's entities and forward origin and counts the member's messages in a sliding
window in memory (per process: with several instances each counts its own share), and
returns a `Verdict` only when there is something to check in the database: a link from
someone who may be a newcomer, a flood over the limit, a join service message. Nothing of
the text is kept: the window holds message ids and dates.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiogram import Bot
from aiogram.types import Message, MessageEntity

from models import Database
from services import moderation
from services.moderation import Policy

INVITE_HOSTS = ("t.me/", "telegram.me/", "telegram.dog/")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Verdict:
    kind: str  # link | invite | mention | forward | flood | joins
    policy: Policy


def _part(entity: MessageEntity, text: str | None) -> str:
    """The entity's text (offsets in UTF-16 units); "" for offsets that split a character."""
    try:
        return entity.extract_from(text or "")
    except UnicodeDecodeError:
        return ""


def link_kind(message: Message, bot_username: str | None = None) -> str | None:
    """The first kind of link the message carries: a forwarded channel post, an invite or
    t.me link, another link, an @mention of anyone but the bot; None without any."""
    origin = message.forward_origin
    if origin is not None and origin.type == "channel":
        return "forward"
    text = message.text if message.text is not None else message.caption
    entities = message.entities if message.text is not None else message.caption_entities
    found = None
    for entity in entities or ():
        kind = entity.type
        if kind == "url" or kind == "text_link":
            url = entity.url if kind == "text_link" else _part(entity, text)
            if any(host in (url or "").lower() for host in INVITE_HOSTS):
                return "invite"
            found = "link"  # a link outweighs a mention
        elif kind == "mention" and found is None:
            name = _part(entity, text)[1:].lower()
            if not bot_username or name != bot_username.lower():
                found = "mention"
    if found is None and text and any(host in text.lower() for host in INVITE_HOSTS):
        return "invite"  # typed without an entity (Telegram links most, not all)
    return found


class ModerationGate:
    """The rules of every moderated group, held in memory as one snapshot (one read of all
    groups with a rule on, again every `ttl` seconds: so a second instance sees a change
    within that time); a group whose rules, admins or allow-list changed here is read
    again at its next message (`forget`). A group without rules is simply absent: chatter
    there costs a dictionary lookup and no SQL once the snapshot is loaded (`warm`, at
    start-up)."""

    def __init__(self, db: Database, ttl: float = 60.0, max_items: int = 100_000) -> None:
        self.db = db
        self.ttl = ttl
        self.max_items = max_items
        self._policies: dict[int, Policy] = {}
        self._until = 0.0  # the snapshot's end (monotonic); 0: never loaded
        self._dirty: set[int] = set()
        self._loading: asyncio.Task[None] | None = None
        # (chat, member) → recent (date, message id); and the member's mute end, in memory
        self._windows: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._muted: dict[tuple[int, int], int] = {}
        self.reads = 0

    # ------------------------------------------------------------ the rules, cached
    def forget(self, chat_id: int) -> None:
        """The group's rules, admins or allow-list changed: read them again."""
        self._dirty.add(chat_id)

    async def _load_all(self) -> None:
        self.reads += 1
        async with self.db.read() as session:
            self._policies = await moderation.load_policies(session)
        self._dirty.clear()
        self._until = time.monotonic() + self.ttl

    async def warm(self) -> None:
        """Load the snapshot now (single-flight: concurrent callers share one read)."""
        if self._loading is None:
            self._loading = asyncio.ensure_future(self._load_all())
        task = self._loading
        try:
            await asyncio.shield(task)
        finally:
            if self._loading is task and task.done():
                self._loading = None

    async def policy(self, chat_id: int) -> Policy | None:
        if time.monotonic() >= self._until:
            await self.warm()
        if chat_id in self._dirty:
            self._dirty.discard(chat_id)
            self.reads += 1
            async with self.db.read() as session:
                value = await moderation.load_policy(session, chat_id)
            if value is None:
                self._policies.pop(chat_id, None)
            else:
                self._policies[chat_id] = value
        return self._policies.get(chat_id)

    # ------------------------------------------------------------ the flood window
    def flooding(self, policy: Policy, user_id: int, message_id: int, date: int) -> bool:
        """Count the message; True once when the member goes over the limit (a replayed
        message is counted once; a member muted in memory is not counted again)."""
        key = (policy.chat_id, user_id)
        muted = self._muted.get(key)
        if muted is not None:
            if date < muted:
                return False
            del self._muted[key]
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= self.max_items:
                self._windows.clear()
                self._muted.clear()
            window = []
        # updates may come out of order: the window ends at the newest date seen
        newest = max([date, *(seen_at for seen_at, _id in window)])
        start = newest - policy.flood_seconds
        if any(seen == message_id for _date, seen in window):
            return False  # a replay
        window = [entry for entry in window if entry[0] > start]
        if date > start:
            window.append((date, message_id))
        self._windows[key] = window
        if len(window) <= policy.flood_count:
            return False
        window.clear()
        self._muted[key] = date + policy.mute_minutes * 60
        return True

    # ------------------------------------------------------------ the screen
    async def screen(self, message: Message, bot: Bot) -> Verdict | None:
        chat = message.chat
        if chat.type != "group" and chat.type != "supergroup":
            return None
        policy = await self.policy(chat.id)
        if policy is None:
            return None
        sender = message.from_user
        if sender is None or sender.is_bot or message.sender_chat is not None:
            return None  # anonymous admins, linked channels, bots
        if message.new_chat_members:
            if policy.delete_joins or policy.challenge:
                return Verdict("joins", policy)
            return None
        if sender.id in policy.exempt:
            return None
        if policy.link_days:
            me = await bot.me() if (message.entities or message.caption_entities) else None
            kind = link_kind(message, me.username if me else None)
            if kind is not None:
                return Verdict(kind, policy)
        if policy.flood_count and self.flooding(
            policy, sender.id, message.message_id, int(message.date.timestamp())
        ):
            return Verdict("flood", policy)
        return None
