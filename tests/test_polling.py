"""Polling: a batch is confirmed to Telegram only after it was processed; one chat's updates
run in order while chats run concurrently; stop drains; a crash before the confirmation
changes nothing twice; getUpdates errors are retried and one broken update spoils nothing."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiogram import methods as m
from aiogram.types import CallbackQuery, Message, Update
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot import runner
from bot.config import Settings
from bot.factory import App, create_app
from bot.runner import InFlight, chat_key, poll, process_batch
from models import Database, FailedUpdate, Group, GroupAdmin, Membership, ProcessedUpdate, User
from services import people
from tests.builders import Updates, group, person, private
from tests.fake_api import FakeTelegram

LANG_PROMPT = "Choose your language:"
HINT = "Send /help to see what I can do."


# ---------------------------------------------------------------------------- helpers
async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def spy_entries(api: FakeTelegram) -> list[Any]:
    """Requests as they enter the fake, before `api.block` holds them."""
    entered: list[Any] = []
    original = api.make_request

    async def make_request(bot, method, timeout=None):
        entered.append(method)
        return await original(bot, method, timeout)

    api.make_request = make_request  # type: ignore[method-assign]
    return entered


def sends(requests: list[Any]) -> list[m.SendMessage]:
    return [r for r in requests if isinstance(r, m.SendMessage)]


def offsets(api: FakeTelegram) -> list[int | None]:
    return [r.offset for r in api.of(m.GetUpdates)]


async def count(db: Database, entity: Any) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(entity))


class LongPollTelegram(FakeTelegram):
    """Holds an empty getUpdates for the whole long-poll timeout, like Telegram does."""

    async def _get_updates(self, method: m.GetUpdates) -> list[Update]:
        offset = method.offset or 0
        self.pending = [u for u in self.pending if u.update_id >= offset]
        if not self.pending and method.timeout:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), method.timeout)
            except TimeoutError:
                return []
            self.pending = [u for u in self.pending if u.update_id >= offset]
        return self.pending[: method.limit or 100]


@pytest.fixture
async def apps(settings: Settings) -> AsyncIterator[Callable[..., App]]:
    """Builds more apps on the same database (each with its own engine), closed at the end."""
    made: list[App] = []

    def make(api: FakeTelegram, db: Database | None = None) -> App:
        app = create_app(settings, session=api, db=db)
        made.append(app)
        return app

    yield make
    for app in made:
        await app.close()


async def stop_poll(stop: asyncio.Event, task: asyncio.Task, within: float = 5.0) -> None:
    stop.set()
    await asyncio.wait_for(task, within)


# ---------------------------------------------------------------------------- batches
async def test_poll_processes_batch_and_confirms_only_afterwards(harness) -> None:
    api, updates, app = harness.api, harness.updates, harness.app
    owner = person(501, "Alice")
    chat = group(-1001000000123, "Fruit Lovers")
    api.set_admins(chat.id, owner)
    added = updates.my_chat_member(chat, owner, "left", "administrator")
    start = updates.command(private(owner), owner, "/start")
    api.push_update(added, start)

    inflight = InFlight()
    log: list[tuple[str, int | None, int]] = []
    log_texts: list[str | None] = []

    def record(method) -> None:
        log.append((type(method).__name__, getattr(method, "offset", None), inflight.count))
        log_texts.append(getattr(method, "text", None))

    api.on_request = record
    stop = asyncio.Event()
    task = asyncio.create_task(poll(app, stop, long_poll=1, inflight=inflight))
    await wait_until(lambda: start.update_id + 1 in offsets(api))
    await stop_poll(stop, task)

    # processed: the group is registered, the adder greeted, /start answered
    async with harness.db.read() as session:
        registered = await session.scalar(select(Group).where(Group.chat_id == chat.id))
        owner_row = await session.get(User, owner.id)
    assert registered is not None and registered.is_active
    assert owner_row is not None and owner_row.started is True
    assert any("Fruit Lovers" in t for t in api.texts(chat.id))
    assert any(t.startswith("Hello, Alice!") for t in api.texts(owner.id))
    assert await count(harness.db, ProcessedUpdate) == 2

    kinds = [kind for kind, _offset, _n in log]
    assert kinds[0] == "DeleteWebhook"
    assert api.of(m.DeleteWebhook)[0].drop_pending_updates is False
    first_get = kinds.index("GetUpdates")
    confirm = next(i for i, (kind, offset, _) in enumerate(log) if kind == "GetUpdates" and offset)
    send_positions = [i for i, (kind, _o, _n) in enumerate(log) if kind == "SendMessage"]
    replies = [
        i for i in send_positions if "You added me" not in (log_texts[i] or "")
    ]  # the note to the adder is promised (the outbox sends it after the commit)
    assert len(replies) >= 2  # group greeting, /start reply
    # every reply was made after the batch was fetched and before it was confirmed
    assert all(first_get < i < confirm for i in replies)
    assert log[first_get][1] is None
    assert log[confirm] == ("GetUpdates", start.update_id + 1, 0)  # nothing in flight
    # only "not yet confirmed" and "batch confirmed" offsets were ever sent
    assert set(offsets(api)) == {None, start.update_id + 1}
    # the last request confirmed the batch; Telegram has nothing left to redeliver
    # (the outbox may send the note to the adder after it: not a reply to the batch)
    assert api.of(m.GetUpdates)[-1].offset == start.update_id + 1
    assert api.pending == []
    assert "chat_member" in api.of(m.GetUpdates)[0].allowed_updates
    # inline mode (issue 18): the search and the cards sent are asked for too
    assert {"inline_query", "chosen_inline_result"} <= set(api.of(m.GetUpdates)[0].allowed_updates)
    await harness.settle()
    assert len([t for t in api.texts(owner.id) if t.startswith("You added me")]) == 1


async def test_same_chat_in_order_different_chats_concurrently(harness) -> None:
    api, updates, app = harness.api, harness.updates, harness.app
    alice, bob = person(601, "Alice"), person(602, "Bob")
    first = updates.command(private(alice), alice, "/lang")
    second = updates.message(private(alice), alice, "hello")
    other = updates.message(private(bob), bob, "hi")

    entered = spy_entries(api)
    api.block = asyncio.Event()
    inflight = InFlight()
    task = asyncio.create_task(process_batch(app, [first, second, other], inflight))
    await wait_until(lambda: len(sends(entered)) == 2)
    await asyncio.sleep(0.05)  # give a wrongly concurrent second update time to show up
    waiting = sends(entered)
    # both chats are in flight at once, but Alice's second update has not started
    assert len(waiting) == 2 and inflight.count == 2
    assert {r.chat_id for r in waiting} == {alice.id, bob.id}
    assert next(r for r in waiting if r.chat_id == alice.id).text == LANG_PROMPT
    assert not task.done()

    api.block.set()
    await asyncio.wait_for(task, 5)
    assert api.texts(alice.id) == [LANG_PROMPT, HINT]
    assert api.texts(bob.id) == [HINT]
    assert inflight.count == 0


async def test_same_chat_order_holds_for_database_handlers(harness) -> None:
    api, updates = harness.api, harness.updates
    alice = person(611, "Alice")
    batch = [
        updates.command(private(alice), alice, "/start"),
        updates.command(private(alice), alice, "/help"),
        updates.command(private(alice), alice, "/lang"),
        updates.message(private(alice), alice, "thanks"),
    ]
    await process_batch(harness.app, batch, InFlight())
    texts = api.texts(alice.id)
    assert len(texts) == 4
    assert texts[0].startswith("Hello, Alice!")
    assert "/lang: choose your language" in texts[1]
    assert texts[2:] == [LANG_PROMPT, HINT]
    assert await count(harness.db, ProcessedUpdate) == 2  # /start and /help use the database


# ---------------------------------------------------------------------------- stopping
async def test_stop_during_batch_drains_then_confirms(harness) -> None:
    api, updates, app = harness.api, harness.updates, harness.app
    alice, bob = person(621, "Alice"), person(622, "Bob")
    stop = asyncio.Event()
    inflight = InFlight()
    task = asyncio.create_task(poll(app, stop, long_poll=1, inflight=inflight))
    await wait_until(lambda: len(api.of(m.GetUpdates)) >= 1)  # past deleteWebhook

    entered = spy_entries(api)
    api.block = asyncio.Event()
    batch = [
        updates.command(private(alice), alice, "/start"),
        updates.message(private(bob), bob, "hi"),
    ]
    api.push_update(*batch)
    await wait_until(lambda: len(sends(entered)) >= 1)
    stop.set()
    await asyncio.sleep(0.05)
    assert not task.done()  # the batch is not abandoned
    assert inflight.count >= 1
    assert offsets(api) == [None] * len(offsets(api))  # nothing confirmed yet

    api.block.set()
    await asyncio.wait_for(task, 5)
    assert inflight.count == 0
    assert len(api.texts(alice.id)) == 1 and api.texts(alice.id)[0].startswith("Hello")
    assert api.texts(bob.id) == [HINT]
    last = api.requests[-1]
    assert isinstance(last, m.GetUpdates)
    assert last.offset == batch[-1].update_id + 1
    assert last.timeout == 0
    last_send = max(i for i, r in enumerate(api.requests) if isinstance(r, m.SendMessage))
    assert api.requests.index(last) > last_send
    assert api.pending == []


async def test_stop_while_idle_returns_promptly_and_loses_nothing(harness, apps) -> None:
    api = LongPollTelegram()
    updates = harness.updates
    app = apps(api, harness.db)
    alice, bob = person(631, "Alice"), person(632, "Bob")
    first = updates.command(private(alice), alice, "/start")
    api.push_update(first)
    stop = asyncio.Event()
    task = asyncio.create_task(poll(app, stop, long_poll=30))
    await wait_until(lambda: first.update_id + 1 in offsets(api))
    await asyncio.sleep(0.02)  # the confirming getUpdates is now a 30 s long poll

    started = time.monotonic()
    await stop_poll(stop, task, within=2)
    assert time.monotonic() - started < 2
    assert api.pending == []
    assert len(api.texts(alice.id)) == 1

    # An update that arrives just as we stop is either processed and confirmed, or left
    # unconfirmed for the next run: never lost, never doubled.
    polled = len(api.of(m.GetUpdates))
    stop = asyncio.Event()
    task = asyncio.create_task(poll(app, stop, long_poll=30))
    await wait_until(lambda: len(api.of(m.GetUpdates)) > polled)
    second = updates.command(private(bob), bob, "/start")
    api.push_update(second)
    await stop_poll(stop, task, within=2)
    if not api.texts(bob.id):
        assert [u.update_id for u in api.pending] == [second.update_id]
        assert all(offset is None or offset <= second.update_id for offset in offsets(api))

    restarted = apps(api)  # a new process on the same database
    stop = asyncio.Event()
    task = asyncio.create_task(poll(restarted, stop, long_poll=30))
    await wait_until(lambda: len(api.texts(bob.id)) == 1 and not api.pending)
    await stop_poll(stop, task, within=2)
    assert len(api.texts(bob.id)) == 1
    assert len(api.texts(alice.id)) == 1
    assert await count(harness.db, ProcessedUpdate) == 2


async def test_stop_during_retry_wait_returns_promptly(harness) -> None:
    api = harness.api
    api.fail_next("retry_after", m.GetUpdates, retry_after=30)
    stop = asyncio.Event()
    task = asyncio.create_task(poll(harness.app, stop, long_poll=1))
    await wait_until(lambda: len(api.of(m.GetUpdates)) == 1)
    started = time.monotonic()
    await stop_poll(stop, task, within=2)
    assert time.monotonic() - started < 2
    assert len(api.of(m.GetUpdates)) == 1  # no batch taken, so nothing to confirm


# ---------------------------------------------------------------------------- crash
async def test_replayed_batch_after_crash_changes_nothing(harness, apps) -> None:
    api, updates = harness.api, harness.updates
    owner, member = person(641, "Alice"), person(642, "Bob")
    chat = group(-1001000000641, "Veggies")
    api.set_admins(chat.id, owner)
    batch = [
        updates.my_chat_member(chat, owner, "left", "administrator"),
        updates.chat_member(chat, member, "left", "member"),
        updates.command(private(owner), owner, "/start"),
        updates.command(private(member), member, "/help"),
    ]
    # processed, then the process dies before the confirming getUpdates
    await process_batch(harness.app, batch, InFlight())
    await harness.settle()  # and the outbox sent what they promised (the note to the adder)
    sent_first = len(api.sent())
    assert sent_first >= 4
    before = {
        entity.__name__: await count(harness.db, entity)
        for entity in (Group, GroupAdmin, Membership, User, ProcessedUpdate)
    }
    assert before["Group"] == 1 and before["ProcessedUpdate"] == 4
    assert before["Membership"] == 1

    # Telegram redelivers the same batch to a new process (new engine, same database)
    api2 = FakeTelegram()
    api2.set_admins(chat.id, owner)
    redelivered = [Update.model_validate(u.model_dump(by_alias=True)) for u in batch]
    await process_batch(apps(api2), redelivered, InFlight())

    after = {
        entity.__name__: await count(harness.db, entity)
        for entity in (Group, GroupAdmin, Membership, User, ProcessedUpdate)
    }
    assert after == before
    assert api2.sent() == []  # no greeting, no reply repeated
    assert api2.of(m.GetChatAdministrators) == []
    assert len(api.sent()) == sent_first


async def test_crash_mid_batch_loses_nothing(harness, apps) -> None:
    api, updates = harness.api, harness.updates
    owner = person(651, "Alice")
    chat = group(-1001000000651, "Bakery")
    api.set_admins(chat.id, owner)
    stop = asyncio.Event()
    task = asyncio.create_task(poll(harness.app, stop, long_poll=1))
    await wait_until(lambda: len(api.of(m.GetUpdates)) >= 1)

    entered = spy_entries(api)
    api.block = asyncio.Event()
    batch = [
        updates.my_chat_member(chat, owner, "left", "administrator"),
        updates.command(private(owner), owner, "/start"),
    ]
    api.push_update(*batch)
    await wait_until(lambda: len(entered) >= 1)
    task.cancel()  # the process dies in the middle of the batch
    with pytest.raises(asyncio.CancelledError):
        await task
    assert offsets(api) == [None] * len(offsets(api))  # never confirmed
    assert [u.update_id for u in api.pending] == [u.update_id for u in batch]
    assert await count(harness.db, ProcessedUpdate) == 0  # rolled back
    assert await count(harness.db, Group) == 0

    api.block = None
    restarted = apps(api)
    stop = asyncio.Event()
    task = asyncio.create_task(poll(restarted, stop, long_poll=1))
    await wait_until(lambda: batch[-1].update_id + 1 in offsets(api))
    await stop_poll(stop, task)
    await restarted.settle()  # the outbox sends the note to the adder
    assert await count(harness.db, Group) == 1
    assert await count(harness.db, ProcessedUpdate) == 2
    assert len([t for t in api.texts(chat.id) if "Bakery" in t]) == 1
    assert len(api.texts(owner.id)) == 2  # "you added me" and the /start reply
    assert api.pending == []


# ---------------------------------------------------------------------------- errors
async def test_get_updates_errors_are_retried_with_backoff(harness, monkeypatch) -> None:
    api, updates = harness.api, harness.updates
    delays: list[float] = []
    real_sleep = runner._sleep_or_stop

    async def recorded_sleep(stop: asyncio.Event, seconds: float) -> None:
        delays.append(seconds)
        await real_sleep(stop, 0)

    monkeypatch.setattr(runner, "_sleep_or_stop", recorded_sleep)
    api.fail_next("network", m.GetUpdates, times=2)
    api.fail_next("retry_after", m.GetUpdates, retry_after=5)
    alice = person(661, "Alice")
    first = updates.command(private(alice), alice, "/start")
    api.push_update(first)

    stop = asyncio.Event()
    task = asyncio.create_task(poll(harness.app, stop, long_poll=1))
    await wait_until(lambda: first.update_id + 1 in offsets(api))
    assert delays == [1.0, 2.0, 5]  # exponential backoff; 429 waits exactly retry_after
    assert len(api.texts(alice.id)) == 1

    # after a success the backoff starts again from 1 s, and the loop keeps going
    api.fail_next("network", m.GetUpdates)
    await wait_until(lambda: len(delays) == 4)
    assert delays[3] == 1.0
    later = updates.command(private(alice), alice, "/help")
    api.push_update(later)
    await wait_until(lambda: later.update_id + 1 in offsets(api))
    await stop_poll(stop, task)
    assert len(api.texts(alice.id)) == 2


async def test_retry_after_really_waits(harness) -> None:
    api, updates = harness.api, harness.updates
    api.fail_next("retry_after", m.GetUpdates, retry_after=1)
    alice = person(671, "Alice")
    first = updates.command(private(alice), alice, "/start")
    api.push_update(first)
    stop = asyncio.Event()
    task = asyncio.create_task(poll(harness.app, stop, long_poll=1))
    await wait_until(lambda: len(api.texts(alice.id)) == 1, timeout=5)
    await stop_poll(stop, task)
    gets = [i for i, r in enumerate(api.requests) if isinstance(r, m.GetUpdates)]
    assert api.times[gets[1]] - api.times[gets[0]] >= 0.95


async def test_failing_handler_does_not_stop_the_batch(harness, monkeypatch) -> None:
    api, updates = harness.api, harness.updates
    alice, bob = person(681, "Alice"), person(682, "Bob")
    real_mark_started = people.mark_started

    async def broken_for_alice(session, user_id):
        if user_id == alice.id:
            raise RuntimeError("boom")
        return await real_mark_started(session, user_id)

    monkeypatch.setattr(people, "mark_started", broken_for_alice)
    broken = updates.command(private(alice), alice, "/start")
    batch = [
        broken,
        updates.command(private(bob), bob, "/start"),
        updates.command(private(alice), alice, "/help"),  # same chat, after the failure
    ]
    api.push_update(*batch)
    stop = asyncio.Event()
    task = asyncio.create_task(poll(harness.app, stop, long_poll=1))
    await wait_until(lambda: batch[-1].update_id + 1 in offsets(api))
    assert api.texts(bob.id)[0].startswith("Hello, Bob!")
    # the failure is answered (handlers.errors), then the next update of the chat runs
    assert len(api.texts(alice.id)) == 2 and "/help" in api.texts(alice.id)[1]
    assert api.texts(alice.id)[0] == "Something went wrong. Please try again."
    async with harness.db.read() as session:
        ids = set(await session.scalars(select(ProcessedUpdate.update_id)))
        failed = list(await session.scalars(select(FailedUpdate)))
        users = set(await session.scalars(select(User.id)))
    # the failed update rolled back, recorded as failed (and processed: a bug would fail the
    # same way on every redelivery); the others committed
    assert ids == {u.update_id for u in batch}
    assert [(f.update_id, f.status, f.attempts) for f in failed] == [
        (broken.update_id, "failed", 1)
    ]
    assert users == {alice.id, bob.id}  # Alice's profile came with her /help

    # the loop is still alive
    later = updates.command(private(bob), bob, "/help")
    api.push_update(later)
    await wait_until(lambda: later.update_id + 1 in offsets(api))
    await stop_poll(stop, task)
    assert len(api.texts(bob.id)) == 2


async def test_update_of_unknown_type_does_not_stop_polling(harness) -> None:
    """A future Bot API update type that aiogram does not know must not kill the loop."""
    api, updates = harness.api, harness.updates
    alice = person(691, "Alice")
    unknown = Update.model_validate({"update_id": updates.next_id(), "future_kind": {"x": 1}})
    start = updates.command(private(alice), alice, "/start")
    api.push_update(unknown, start)
    stop = asyncio.Event()
    with pytest.warns(RuntimeWarning, match="unknown update type"):  # the Dispatcher skips it
        task = asyncio.create_task(poll(harness.app, stop, long_poll=1))
        await wait_until(lambda: task.done() or start.update_id + 1 in offsets(api))
        assert not task.done(), task.exception()
        await stop_poll(stop, task)
    assert len(api.texts(alice.id)) == 1
    assert api.pending == []


# ---------------------------------------------------------------------------- chat_key
def test_chat_key_groups_updates_by_conversation() -> None:
    updates = Updates()
    alice, bob = person(701, "Alice"), person(702, "Bob")
    chat = group(-1001000000701)
    other = group(-1001000000702)

    in_group = updates.message(chat, alice, "hi")
    in_group_bob = updates.message(chat, bob, "yo")
    in_other = updates.message(other, alice, "hi")
    in_private = updates.message(private(alice), alice, "hi")
    assert chat_key(in_group) == chat_key(in_group_bob) == chat.id
    assert chat_key(in_other) == other.id
    assert chat_key(in_private) == alice.id

    # callback queries go with the chat of the message their button is on
    on_group_post = updates.callback(bob, "x", chat=chat)
    in_private_chat = updates.callback(bob, "x")
    assert chat_key(on_group_post) == chat.id
    assert chat_key(in_private_chat) == bob.id
    inline = Update(
        update_id=updates.next_id(),
        callback_query=CallbackQuery(
            id="9", from_user=bob, chat_instance="ci", inline_message_id="abc", data="x"
        ),
    )
    assert chat_key(inline) == bob.id

    assert chat_key(updates.my_chat_member(chat, alice, "left", "member")) == chat.id
    assert chat_key(updates.my_chat_member(private(alice), alice, "member", "kicked")) == alice.id
    assert chat_key(updates.chat_member(chat, bob, "left", "member", actor=alice)) == chat.id
    assert chat_key(updates.promoted(other, bob, alice)) == other.id

    edited = Update(
        update_id=updates.next_id(),
        edited_message=Message(
            message_id=5, date=int(time.time()), chat=chat, from_user=bob, text="x"
        ),
    )
    assert chat_key(edited) == chat.id


def test_chat_key_of_unknown_update_type_is_its_own() -> None:
    a = Update.model_validate({"update_id": 11, "future_kind": {}})
    b = Update.model_validate({"update_id": 12, "future_kind": {}})
    assert chat_key(a) != chat_key(b)
    assert chat_key(a) < 0 and chat_key(b) < 0


# ---------------------------------------------------------------------------- poison updates
def locked_for(user_id: int, calls: list[int], *, times: int | None = None):
    real = people.mark_started

    async def broken(session, uid):
        if uid == user_id and (times is None or len(calls) < times):
            calls.append(uid)
            raise OperationalError(
                "UPDATE users", {}, sqlite3.OperationalError("database is locked")
            )
        return await real(session, uid)

    return broken


async def test_a_transient_failure_is_retried_in_process_then_set_aside(
    harness, monkeypatch
) -> None:
    api, updates = harness.api, harness.updates
    monkeypatch.setattr(runner, "RETRY_BACKOFF", 0)
    alice, bob = person(691, "Alice"), person(692, "Bob")
    calls: list[int] = []
    monkeypatch.setattr(people, "mark_started", locked_for(alice.id, calls))
    stuck = updates.command(private(alice), alice, "/start")
    batch = [stuck, updates.command(private(alice), alice, "/help"),
             updates.command(private(bob), bob, "/start")]  # fmt: skip
    api.push_update(*batch)
    stop = asyncio.Event()
    task = asyncio.create_task(poll(harness.app, stop, long_poll=1))
    await wait_until(lambda: batch[-1].update_id + 1 in offsets(api))  # the batch moved on
    await stop_poll(stop, task)
    assert len(calls) == 3  # UPDATE_ATTEMPTS, then set aside
    async with harness.db.read() as session:
        [row] = list(await session.scalars(select(FailedUpdate)))
        ids = set(await session.scalars(select(ProcessedUpdate.update_id)))
    assert (row.update_id, row.status, row.attempts) == (stuck.update_id, "set_aside", 3)
    assert ids == {u.update_id for u in batch}
    # one apology for the three attempts, then the chat's next update ran after it
    assert api.texts(alice.id)[0] == "Something went wrong. Please try again."
    assert len(api.texts(alice.id)) == 2 and "/help" in api.texts(alice.id)[1]
    assert api.texts(bob.id)[0].startswith("Hello, Bob!")


async def test_a_transient_failure_that_clears_is_retried_once(harness, monkeypatch) -> None:
    monkeypatch.setattr(runner, "RETRY_BACKOFF", 0)
    alice = person(693, "Alice")
    calls: list[int] = []
    monkeypatch.setattr(people, "mark_started", locked_for(alice.id, calls, times=1))
    await process_batch(harness.app, [harness.updates.command(private(alice), alice, "/start")],
                        InFlight())  # fmt: skip
    assert len(calls) == 1
    assert harness.api.texts(alice.id)[-1].startswith("Hello, Alice!")
    assert await count(harness.db, FailedUpdate) == 0  # went through: no record left
