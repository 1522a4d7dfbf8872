"""The fast path for group chatter (bot/middlewares/chatter.py), through the real Dispatcher:
plain group texts are counted and touch no router, no database and no Bot API; every near
miss (a group command, with the bot's mention, in a caption, after blanks; a migration; a
private message) still reaches its handler; GROUP_COMMANDS are exactly the commands the
routers take in a group; and for random texts the fast path's decision equals "no handler
took it" as the full Dispatcher (fast path off) decides."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.filters import Command
from aiogram.types import PhotoSize, Update
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, select

from bot.middlewares.chatter import GROUP_COMMANDS, chatter_middleware, is_chatter
from bot.runner import process
from handlers import build_routers
from models import MemberActivityDay
from tests.builders import group, person, private
from tests.fake_api import BOT_USERNAME
from tests.test_deal_post import GROUP, add_group

ALICE = person(611, "Alice")
PHOTO = [PhotoSize(file_id="p1", file_unique_id="u1", width=10, height=10)]


class Watch:
    """While installed: SQL statements run on the app's engine and messages that reached the
    routers (an outer middleware of the root message observer sees each before any filter)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.engine = app.db.engine.sync_engine
        self.statements: list[str] = []
        self.routed: list[Any] = []

    def _sql(self, _conn, _cursor, statement: str, *_args: Any) -> None:
        self.statements.append(statement)

    async def _route(self, handler, message, data):
        self.routed.append(message)
        return await handler(message, data)

    def __enter__(self) -> Watch:
        event.listen(self.engine, "before_cursor_execute", self._sql)
        self.app.dispatcher.message.outer_middleware.register(self._route)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._sql)
        self.app.dispatcher.message.outer_middleware.unregister(self._route)


async def handled(app: Any, update: Update) -> bool:
    """Did a handler take the update? (A handler that failed took it too.)"""
    try:
        return await process(app, update) is not UNHANDLED
    except Exception:
        return True


async def messages_counted(harness, user_id: int) -> int:
    await harness.app.flush_activity()
    async with harness.db.read() as s:
        rows = await s.scalars(
            select(MemberActivityDay).where(MemberActivityDay.user_id == user_id)
        )
        return sum(r.messages for r in rows)


# ---------------------------------------------------------------- chatter


async def test_group_chatter_is_counted_and_touches_nothing(harness) -> None:
    await add_group(harness)
    await harness.app.dispatcher["moderation"].warm()  # as the runner does at start-up
    harness.api.clear()
    texts = ["hello", "who is coming on Saturday?", "50% off / today", "", "🍋"]
    with Watch(harness.app) as watch:  # a cold locale cache: even so no SQL
        results = [
            await process(harness.app, harness.updates.message(GROUP, ALICE, text or None))
            for text in texts
        ]
    assert results == [UNHANDLED] * len(texts)
    assert watch.statements == [] and watch.routed == [] and harness.api.requests == []
    assert await messages_counted(harness, ALICE.id) == len(texts)


@pytest.mark.parametrize("fast", [True, False])
async def test_chatter_is_counted_once_either_way(harness, fast: bool) -> None:
    await add_group(harness)
    chatter_middleware(harness.app.dispatcher).enabled = fast
    for text in ("one", "two", "/help"):
        await harness.feed(harness.updates.message(GROUP, ALICE, text))
    assert await messages_counted(harness, ALICE.id) == 3


async def test_replies_service_messages_and_strangers_in_groups_are_chatter(harness) -> None:
    """A reply to the bot's own message (forms are private-chat only), a member who joined,
    someone else's bot's command: no handler takes them, and no router sees them."""
    await add_group(harness)
    await harness.app.dispatcher["moderation"].warm()  # as the runner does at start-up
    bot_message = harness.updates.message(GROUP, None, "…").message
    updates = [
        harness.updates.message(GROUP, ALICE, "5", reply_to_message=bot_message),
        harness.updates.message(GROUP, ALICE, None, new_chat_members=[person(612, "Bo")]),
        harness.updates.message(GROUP, ALICE, "/help@some_other_bot"),
        harness.updates.message(GROUP, ALICE, "/start"),
        harness.updates.message(GROUP, ALICE, "/HELP"),
    ]
    with Watch(harness.app) as watch:
        for update in updates:
            assert await is_chatter(update.message, harness.app.bot)
            assert await process(harness.app, update) is UNHANDLED
    assert watch.routed == [] and watch.statements == []


# ---------------------------------------------------------------- near misses

NEAR_MISSES: dict[str, dict[str, Any]] = {
    "a command": {"text": "/help"},
    "a command to this bot": {"text": f"/help@{BOT_USERNAME}"},
    "the bot's mention in capitals": {"text": f"/top@{BOT_USERNAME.upper()}"},
    "a command after blanks": {"text": "  \n/deals"},
    "a command with arguments": {"text": "/buy D1 2"},
    "a command in a caption": {"caption": "/deals", "photo": PHOTO},
    "a migration": {"migrate_from_chat_id": -4_000_123},
}


@pytest.mark.parametrize("case", list(NEAR_MISSES))
async def test_near_misses_reach_their_handler(harness, case: str) -> None:
    await add_group(harness)
    fields = dict(NEAR_MISSES[case])
    text = fields.pop("text", None)
    update = harness.updates.message(GROUP, ALICE, text, **fields)
    assert not await is_chatter(update.message, harness.app.bot)
    with Watch(harness.app) as watch:
        assert await handled(harness.app, update)
    assert len(watch.routed) == 1


async def test_private_messages_and_edits_take_the_full_path(harness) -> None:
    update = harness.updates.message(private(ALICE), ALICE, "hello")
    assert not await is_chatter(update.message, harness.app.bot)
    with Watch(harness.app) as watch:
        assert await handled(harness.app, update)  # the private fallback's hint
    assert len(watch.routed) == 1
    edited = harness.updates.message(GROUP, ALICE, "hello").message
    with Watch(harness.app) as watch:
        await process(
            harness.app, Update(update_id=harness.updates.next_id(), edited_message=edited)
        )
    assert watch.routed == []  # not a message update: the message observer never sees it


# ---------------------------------------------------------------- the rule is the complement


def router_commands() -> set[str]:
    names: set[str] = set()
    for router in build_routers():
        for handler in router.message.handlers:
            for item in handler.filters or []:
                if isinstance(item.callback, Command):
                    names.update(c for c in item.callback.commands if isinstance(c, str))
    return names


async def test_group_commands_are_exactly_those_a_group_handler_takes(harness) -> None:
    await add_group(harness)
    chatter_middleware(harness.app.dispatcher).enabled = False
    commands = router_commands()
    assert GROUP_COMMANDS <= commands
    taken = set()
    for name in sorted(commands):
        if await handled(harness.app, harness.updates.message(GROUP, ALICE, f"/{name}")):
            taken.add(name)
    assert taken == GROUP_COMMANDS


WORDS = sorted(router_commands() | {"", "helpme", "Buy", "b", "start"})
MENTIONS = ["", f"@{BOT_USERNAME}", f"@{BOT_USERNAME.upper()}", "@other_bot", "@"]
BLANKS = ["", " ", "\n", "\t ", "\u00a0"]
COMMANDISH = st.builds(
    lambda lead, word, mention, gap, rest: f"{lead}/{word}{mention}{gap}{rest}",
    st.sampled_from(BLANKS),
    st.sampled_from(WORDS),
    st.sampled_from(MENTIONS),
    st.sampled_from(BLANKS),
    st.text(max_size=12),
)
TEXTS = st.one_of(st.text(max_size=40), COMMANDISH, st.text(alphabet="/@ \nbuytohelp", max_size=12))


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    text=TEXTS,
    where=st.sampled_from(["group", "small group", "private"]),
    as_caption=st.booleans(),
)
async def test_the_fast_path_decides_as_the_full_dispatcher(
    harness, text: str, where: str, as_caption: bool
) -> None:
    chatter_middleware(harness.app.dispatcher).enabled = False
    chat = {"group": GROUP, "small group": group(-4_000_777, "Small"), "private": private(ALICE)}
    fields = {"caption": text, "photo": PHOTO} if as_caption else {}
    update = harness.updates.message(
        chat[where], ALICE, None if as_caption else text or None, **fields
    )
    decision = await is_chatter(update.message, harness.app.bot)
    assert decision == (not await handled(harness.app, update)), (text, where, as_caption)
