"""The fast path for group chatter: a group message no handler can take is counted and
finished before any router is walked.

Most updates a group bot sees are members talking to each other. Walked through the routers,
such a text costs dozens of filter calls and per-router middleware wrappings and ends with
no handler; here it costs one check. `ChatterMiddleware` is the Dispatcher's second outer
middleware on `update` (after aiogram's ErrorsMiddleware, before the user context, the FSM
lock and the locale lookup): for chatter it records the message in the ActivityBuffer
exactly as ActivityMiddleware would (`countable`: a person's own, non-service message in a
group) and returns UNHANDLED, which is what the Dispatcher returns when no handler matches,
so bot/runner.py treats it the same (acknowledged, nothing sent). Everything else goes on
unchanged, through ActivityMiddleware and the routers.

Which group messages a handler can take (handlers/*.py; every other router filters its
messages to private chats, FSM states included, and no handler reacts to replies, to the
bot's forms or to any other service field):

- groups: `migrate_to_chat_id`, `migrate_from_chat_id` (any chat); /help, /settings;
- invites: /invite; deal_post: /buy, /cancel, /deals; activity: /top, /hideme, /showme;
- moderation: /allow, /unallow; and any message the anti-spam screen (bot/moderation.py)
  flags in a group with rules on: the screen runs here, on the update in memory (a cached
  lookup of the group's rules; no rule on: nothing more), and its verdict goes on in the
  data (`moderation_verdict`) so the full path does not screen the message twice.

The commands are aiogram `Command` filters (prefix "/", case-sensitive, on `text`, else
`caption`; a mention must be the bot's username). `is_chatter` is the exact complement: a
message in a group or supergroup without a migration field whose text (or caption) is not
one of GROUP_COMMANDS as those filters parse it. Edited messages, private chats and every
other update type are not `update.message` in a group and always take the full path.
tests/test_chatter.py checks GROUP_COMMANDS against the routers and the decision against the
full Dispatcher (fast path off) for random texts; a new group handler must extend them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.dispatcher.middlewares.error import ErrorsMiddleware
from aiogram.types import Message, TelegramObject, Update

from bot.middlewares.activity import GROUP_TYPES, count
from bot.moderation import ModerationGate
from services.activity import ActivityBuffer

GROUP_COMMANDS = frozenset(
    {"help", "settings", "invite", "buy", "cancel", "deals", "top", "hideme", "showme", "coupons"}
    | {"allow", "unallow"}
)
COMMAND_PREFIX = "/"
VERDICT = "moderation_verdict"


async def is_chatter(message: Message, bot: Bot) -> bool:
    """No handler can take this message (see the module's docstring)."""
    if message.chat.type not in GROUP_TYPES:
        return False
    if message.migrate_to_chat_id or message.migrate_from_chat_id:
        return False
    text = message.text or message.caption
    if not text or COMMAND_PREFIX not in text:
        return True
    # as aiogram's Command.extract_command: the first word, "/name@mention"
    words = text.split(maxsplit=1)
    if not words or words[0][0] != COMMAND_PREFIX:
        return True
    name, _, mention = words[0][1:].partition("@")
    if name not in GROUP_COMMANDS:
        return True
    if not mention:
        return False
    me = await bot.me()  # cached after the first call (the Command filter asks the same)
    return bool(me.username) and mention.lower() != me.username.lower()


class ChatterMiddleware(BaseMiddleware):
    """`enabled = False` sends everything the full way (tests compare the two)."""

    def __init__(self, buffer: ActivityBuffer, moderation: ModerationGate | None = None) -> None:
        self.buffer = buffer
        self.moderation = moderation
        self.enabled = True

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        message = event.message if isinstance(event, Update) else None
        if message is None or not self.enabled or not await is_chatter(message, data["bot"]):
            return await handler(event, data)
        if self.moderation is not None:
            verdict = await self.moderation.screen(message, data["bot"])
            if verdict is not None:  # a rule may apply: the full path checks and acts
                data[VERDICT] = verdict
                return await handler(event, data)
        count(self.buffer, message)
        return UNHANDLED

    def setup(self, dispatcher: Dispatcher) -> None:
        """Register as the second outer middleware of `update`: after aiogram's
        ErrorsMiddleware (a failure here is answered like any other), before the rest."""
        manager = dispatcher.update.outer_middleware
        if not manager or not isinstance(list(manager)[0], ErrorsMiddleware):
            raise RuntimeError("aiogram's ErrorsMiddleware is no longer the first: check setup")
        after = list(manager)[1:]
        for middleware in after:
            manager.unregister(middleware)
        manager.register(self)
        for middleware in after:
            manager.register(middleware)


def chatter_middleware(dispatcher: Dispatcher) -> ChatterMiddleware | None:
    return next(
        (m for m in dispatcher.update.outer_middleware if isinstance(m, ChatterMiddleware)), None
    )
