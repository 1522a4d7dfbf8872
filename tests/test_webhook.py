"""Webhook: the secret header is required, an update is acknowledged only after its
transaction committed, failures make Telegram redeliver, and shutdown drains."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiogram import methods as m
from aiogram.exceptions import TelegramNetworkError
from aiogram.types import Update
from aiohttp.test_utils import TestClient, TestServer
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import DataError, OperationalError

from bot.config import Settings
from bot.factory import App, create_app
from bot.runner import SECRET_HEADER, InFlight, serve_webhook, webhook_app
from handlers.callbacks import LangCB
from models import Database, Deal, FailedUpdate, Group, GroupAdmin, Order, ProcessedUpdate, User
from services import people, updates
from tests.builders import Updates, group, person, private
from tests.conftest import make_settings
from tests.fake_api import FakeTelegram

SECRET = "s3cret-s3cret-s3cret"
WEBHOOK_URL = "https://example.com"


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


def body(update: Update) -> dict[str, Any]:
    """The JSON Telegram would POST."""
    return json.loads(update.model_dump_json(by_alias=True, exclude_none=True))


async def count(db: Database, entity: Any) -> int:
    async with db.read() as session:
        return await session.scalar(select(func.count()).select_from(entity))


def webhook_settings(database_url: str, tmp_path: Path, **overrides: Any) -> Settings:
    values = {"mode": "webhook", "webhook_url": WEBHOOK_URL, "webhook_secret": SECRET}
    values.update(overrides)
    return make_settings(database_url, tmp_path, **values)


@dataclass
class Hook:
    app: App
    api: FakeTelegram
    client: TestClient
    stop: asyncio.Event
    inflight: InFlight
    updates: Updates
    url: str

    @property
    def db(self) -> Database:
        return self.app.db

    async def post(self, payload: Any, secret: str | None = SECRET, **kwargs: Any):
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        if isinstance(payload, Update):
            payload = body(payload)
        if isinstance(payload, (str, bytes)):
            kwargs["data"] = payload
        else:
            kwargs["json"] = payload
        # never hang a test run: a request the server does not answer fails here
        return await asyncio.wait_for(self.client.post(self.url, headers=headers, **kwargs), 10)


@pytest.fixture
async def hook(database_url: str, tmp_path: Path, db: Database) -> AsyncIterator[Hook]:
    settings = webhook_settings(database_url, tmp_path)
    api = FakeTelegram()
    app = create_app(settings, session=api, db=db)
    stop, inflight = asyncio.Event(), InFlight()
    client = TestClient(TestServer(webhook_app(app, stop, inflight)))
    await client.start_server()
    yield Hook(app, api, client, stop, inflight, Updates(), settings.webhook_path)
    if api.block is not None:
        api.block.set()
    await client.close()
    await app.close()


def bot_added(hook: Hook, chat_id: int = -1001000000801, title: str = "Fruit Lovers"):
    owner = person(801, "Alice")
    chat = group(chat_id, title)
    hook.api.set_admins(chat.id, owner)
    return owner, chat, hook.updates.my_chat_member(chat, owner, "left", "administrator")


async def failed_rows(db: Database) -> list[FailedUpdate]:
    async with db.read() as session:
        return list(await session.scalars(select(FailedUpdate).order_by(FailedUpdate.id)))


async def processed(db: Database, update_id: int) -> bool:
    async with db.read() as session:
        found = await session.scalar(
            select(func.count())
            .select_from(ProcessedUpdate)
            .where(ProcessedUpdate.update_id == update_id)
        )
    return bool(found)


async def nothing_written(db: Database) -> bool:
    return all(
        [await count(db, entity) == 0 for entity in (ProcessedUpdate, Group, GroupAdmin, User)]
    )


# ---------------------------------------------------------------------------- secret
async def test_missing_or_wrong_secret_is_refused_and_touches_nothing(hook) -> None:
    _owner, _chat, added = bot_added(hook)
    for secret in (None, "", "wrong-wrong-wrong-wrong", SECRET[:-1], SECRET + "x", SECRET.upper()):
        response = await hook.post(added, secret=secret)
        assert response.status == 401, secret
    # the secret is checked before the body is even read
    assert (await hook.post("{not json", secret="nope")).status == 401
    assert await nothing_written(hook.db)
    assert hook.api.requests == []


async def test_right_secret_processes_and_replay_changes_nothing(hook) -> None:
    owner, chat, added = bot_added(hook)
    response = await hook.post(added)
    assert response.status == 200
    assert await response.text() == "ok"
    async with hook.db.read() as session:
        registered = await session.scalar(select(Group).where(Group.chat_id == chat.id))
    assert registered is not None and registered.is_active
    greetings = [t for t in hook.api.texts(chat.id) if "Fruit Lovers" in t]
    assert len(greetings) == 1
    sent = len(hook.api.requests)

    replay = await hook.post(added)  # Telegram delivers the same update again
    assert replay.status == 200
    assert await count(hook.db, Group) == 1
    assert await count(hook.db, ProcessedUpdate) == 1
    assert len(hook.api.requests) == sent  # no greeting, no admin fetch again

    start = hook.updates.command(private(owner), owner, "/start")
    assert (await hook.post(start)).status == 200
    assert hook.api.texts(owner.id)[-1].startswith("Hello, Alice!")
    assert await count(hook.db, ProcessedUpdate) == 2


async def test_health_needs_no_secret(hook) -> None:
    response = await hook.client.get("/healthz")
    assert response.status == 200
    assert (await hook.client.get(hook.url)).status == 405  # updates come by POST only


# ---------------------------------------------------------------------------- commit, then ack
async def test_acknowledged_only_after_commit(hook, database_url: str) -> None:
    _owner, chat, added = bot_added(hook)
    entered = spy_entries(hook.api)
    hook.api.block = asyncio.Event()
    request = asyncio.create_task(hook.post(added))
    await wait_until(lambda: len(entered) >= 1)  # the handler is talking to Telegram
    await asyncio.sleep(0.05)
    assert not request.done()  # no acknowledgement yet
    assert hook.inflight.count == 1

    observer = Database(database_url)  # another process looking at the database
    try:
        async with observer.read() as session:
            seen = await session.scalar(select(Group).where(Group.chat_id == chat.id))
            recorded = await session.scalar(select(func.count()).select_from(ProcessedUpdate))
        assert seen is None and recorded == 0  # not committed yet

        hook.api.block.set()
        response = await asyncio.wait_for(request, 5)
        assert response.status == 200
        async with observer.read() as session:
            seen = await session.scalar(select(Group).where(Group.chat_id == chat.id))
            recorded = await session.scalar(select(func.count()).select_from(ProcessedUpdate))
        assert seen is not None and recorded == 1
    finally:
        await observer.dispose()
    assert hook.inflight.count == 0


# ---------------------------------------------------------------------------- failures
async def test_database_failure_answers_500_and_commits_nothing(hook, monkeypatch) -> None:
    _owner, chat, added = bot_added(hook)

    async def database_down(session, bot_id, update_id):
        raise OperationalError("INSERT INTO processed_updates", {}, ConnectionError("gone"))

    with monkeypatch.context() as patch:
        patch.setattr(updates, "mark_processed", database_down)
        response = await hook.post(added)
    assert response.status == 500  # Telegram will deliver it again
    assert await nothing_written(hook.db)
    assert hook.api.sent() == []

    redelivered = await hook.post(added)
    assert redelivered.status == 200
    assert await failed_rows(hook.db) == []  # the retry went through: no record left
    assert await count(hook.db, Group) == 1
    assert len([t for t in hook.api.texts(chat.id) if "Fruit Lovers" in t]) == 1


async def test_failure_after_handler_work_rolls_everything_back(hook, monkeypatch) -> None:
    owner = person(811, "Bob")
    start = hook.updates.command(private(owner), owner, "/start")

    async def lost_connection(session, user_id):
        await session.flush()
        raise OperationalError("UPDATE users", {}, ConnectionError("gone"))

    with monkeypatch.context() as patch:
        patch.setattr(people, "mark_started", lost_connection)
        assert (await hook.post(start)).status == 500
    # the user's row written by the middleware and the update id are both rolled back
    assert await nothing_written(hook.db)

    assert (await hook.post(start)).status == 200
    async with hook.db.read() as session:
        assert (await session.get(User, owner.id)).started is True


async def test_handler_bug_is_acknowledged_and_rolled_back(hook, monkeypatch) -> None:
    """A non-transient error would fail again on every redelivery: acknowledge it, recorded
    as failed and processed (a redelivery changes nothing)."""
    owner = person(812, "Carol")
    start = hook.updates.command(private(owner), owner, "/start")

    async def bug(session, user_id):
        raise RuntimeError("bug")

    monkeypatch.setattr(people, "mark_started", bug)
    assert (await hook.post(start)).status == 200
    assert hook.api.texts(owner.id) == ["Something went wrong. Please try again."]
    assert await count(hook.db, User) == 0  # the handler's work rolled back
    [row] = await failed_rows(hook.db)
    assert (row.update_id, row.status, row.attempts) == (start.update_id, "failed", 1)
    assert row.reason == "RuntimeError: bug"
    assert await processed(hook.db, start.update_id)

    monkeypatch.undo()
    assert (await hook.post(start)).status == 200  # redelivered: nothing happens again
    assert await count(hook.db, User) == 0
    assert len(hook.api.texts(owner.id)) == 1


async def test_bad_body_is_400(hook) -> None:
    for payload in (
        "{not json",
        b"\xff\xfe\x00garbage",
        "[1, 2, 3]",
        '"text"',
        json.dumps({"update_id": "seven"}),
        json.dumps({"message": {"text": "no update id"}}),
    ):
        response = await hook.post(payload)
        assert response.status == 400, payload
    assert await nothing_written(hook.db)
    assert hook.api.requests == []


# ---------------------------------------------------------------------------- shutdown
async def test_shutdown_refuses_new_updates_and_drains_in_flight(hook) -> None:
    _owner, chat, added = bot_added(hook)
    entered = spy_entries(hook.api)
    hook.api.block = asyncio.Event()
    in_flight = asyncio.create_task(hook.post(added))
    await wait_until(lambda: len(entered) >= 1)
    assert hook.inflight.count == 1

    hook.stop.set()  # SIGTERM
    late = person(821, "Dan")
    refused = await hook.post(hook.updates.command(private(late), late, "/start"))
    assert refused.status == 503
    assert not await hook.inflight.drained(within=0.05)
    assert not in_flight.done()

    hook.api.block.set()
    response = await asyncio.wait_for(in_flight, 5)
    assert response.status == 200
    assert await hook.inflight.drained(within=1)
    assert hook.inflight.count == 0
    assert await count(hook.db, Group) == 1
    assert await count(hook.db, ProcessedUpdate) == 1  # the refused update left no trace
    async with hook.db.read() as session:
        assert await session.get(User, late.id) is None
    assert hook.api.texts(late.id) == []


# ---------------------------------------------------------------------------- settings
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"webhook_secret": None}, "WEBHOOK_SECRET"),
        ({"webhook_secret": ""}, "WEBHOOK_SECRET"),
        ({"webhook_secret": "short-secret"}, "WEBHOOK_SECRET"),  # 12 < 16 characters
        ({"webhook_secret": "spaces are not allowed"}, "WEBHOOK_SECRET"),
        ({"webhook_secret": "x" * 257}, "WEBHOOK_SECRET"),
        ({"webhook_url": None}, "WEBHOOK_URL"),
    ],
)
def test_settings_refuse_unsafe_webhook(tmp_path, monkeypatch, overrides, field) -> None:
    for name in ("MODE", "WEBHOOK_URL", "WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError, match=field):
        webhook_settings("sqlite+aiosqlite:///unused.db", tmp_path, **overrides)


def test_settings_accept_a_good_webhook_secret(tmp_path) -> None:
    settings = webhook_settings("sqlite+aiosqlite:///unused.db", tmp_path)
    assert settings.webhook_secret.get_secret_value() == SECRET
    assert SECRET not in repr(settings)
    # polling needs no secret
    make_settings("sqlite+aiosqlite:///unused.db", tmp_path, webhook_secret=None)


# ---------------------------------------------------------------------------- serve_webhook
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_serve_webhook_registers_and_serves(database_url, tmp_path, db) -> None:
    port = free_port()
    settings = webhook_settings(database_url, tmp_path, webhook_host="127.0.0.1", webhook_port=port)
    api = FakeTelegram()
    app = create_app(settings, session=api, db=db)
    stop = asyncio.Event()
    task = asyncio.create_task(serve_webhook(app, stop))
    try:
        await wait_until(lambda: bool(api.of(m.SetWebhook)) or task.done())
        (call,) = api.of(m.SetWebhook)
        assert call.url == "https://example.com/webhook"
        assert call.secret_token == SECRET
        assert "chat_member" in call.allowed_updates
        assert {"message", "callback_query", "my_chat_member"} <= set(call.allowed_updates)
        assert call.drop_pending_updates is False

        owner = person(831, "Eve")
        update = Updates().command(private(owner), owner, "/start")
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.post(f"{base}/webhook", json=body(update)) as response:
                assert response.status == 401
            headers = {SECRET_HEADER: SECRET}
            async with http.post(f"{base}/webhook", json=body(update), headers=headers) as r:
                assert r.status == 200
        assert api.texts(owner.id)[-1].startswith("Hello, Eve!")

        stop.set()
        await asyncio.wait_for(task, 5)
        with pytest.raises(OSError):  # the port is closed after the stop
            await asyncio.open_connection("127.0.0.1", port)
    finally:
        stop.set()
        if not task.done():
            task.cancel()
        await app.close()


def test_webhook_app_refuses_to_build_without_secret(tmp_path) -> None:
    # polling settings (no secret) handed to the webhook server by mistake
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'tuan.db'}", tmp_path)
    app = create_app(settings, session=FakeTelegram())
    with pytest.raises(RuntimeError, match="WEBHOOK_SECRET"):
        webhook_app(app, asyncio.Event(), InFlight())


# ---------------------------------------------------------------------------- poison updates
LOCKED = OperationalError("UPDATE users", {}, sqlite3.OperationalError("database is locked"))


async def changed_rows(db: Database) -> dict[str, int]:
    return {
        entity.__name__: await count(db, entity)
        for entity in (Group, GroupAdmin, Deal, Order, FailedUpdate)
    }


async def test_forged_numbers_change_nothing_and_are_answered(hook) -> None:
    """Numbers beyond their columns, in buttons and in commands: refused before SQL with
    the usual answer, acknowledged (no 500 for Telegram to redeliver forever)."""
    owner, chat, added = bot_added(hook)
    assert (await hook.post(added)).status == 200
    member = person(851, "Mia")
    before = await changed_rows(hook.db)
    big, huge = 2**31, 2**63
    buttons = [
        hook.updates.callback(owner, f"set:open:{big}", chat=private(owner)),
        hook.updates.callback(owner, f"set:tz:{big}", chat=private(owner)),
        hook.updates.callback(member, f"dp:join:{big}:0", chat=chat),
        hook.updates.callback(owner, f"od:list:{huge}:0", chat=private(owner)),
        hook.updates.callback(owner, f"ord:list:{-huge}", chat=private(owner)),
    ]
    for update in buttons:
        answered = len(hook.api.answers())
        assert (await hook.post(update)).status == 200, update.callback_query.data
        assert len(hook.api.answers()) == answered + 1, update.callback_query.data
    commands = [
        (chat, member, f"/buy D{big} 2"),
        (chat, member, f"/buy D1 {huge}"),
        (chat, member, f"/cancel D{huge}"),
        (private(owner), owner, f"/orders D{big}"),
        (private(owner), owner, f"/commission D{big} 5"),
        (private(owner), owner, f"/pickup {'9' * 40}"),
        (private(owner), owner, f"/digest {big}d"),
        (private(owner), owner, f"/digest time {huge} 08:00"),
        (private(member), member, f"/start deal_{big}"),
        (private(member), member, f"/start inv_{huge}"),
        (private(owner), owner, f"/members core {huge}"),
    ]
    for where, who, text in commands:
        sent = len(hook.api.sent(where.id))
        assert (await hook.post(hook.updates.command(where, who, text))).status == 200, text
        assert len(hook.api.sent(where.id)) == sent + 1, text
        assert "Something went wrong" not in hook.api.texts(where.id)[-1], text
    assert await changed_rows(hook.db) == before  # no deal, order or failure record


@pytest.mark.parametrize("kind", ["data", "integrity"])
async def test_a_permanent_database_error_is_answered_recorded_and_acknowledged(
    hook, monkeypatch, kind
) -> None:
    owner = person(861, "Nia")
    start = hook.updates.command(private(owner), owner, "/start")

    async def broken(session, user_id):
        if kind == "integrity":  # a real one: the same group chat twice
            for _ in range(2):
                session.add(
                    Group(
                        chat_id=-1009999, title="x", timezone="UTC", currency="CNY", language="en"
                    )
                )
            await session.flush()
        raise DataError("UPDATE users", {"id": user_id}, Exception("value out of int range"))

    monkeypatch.setattr(people, "mark_started", broken)
    assert (await hook.post(start)).status == 200  # acknowledged: a retry would fail the same
    assert hook.api.texts(owner.id) == ["Something went wrong. Please try again."]
    [row] = await failed_rows(hook.db)
    assert (row.update_id, row.status, row.attempts) == (start.update_id, "failed", 1)
    assert (row.update_type, row.chat_id, row.user_id) == ("message", owner.id, owner.id)
    assert row.reason.startswith("IntegrityError: " if kind == "integrity" else "DataError: ")
    assert '"command": "/start"' in row.detail
    assert await processed(hook.db, start.update_id)
    assert await count(hook.db, User) == 0 and await count(hook.db, Group) == 0

    assert (await hook.post(start)).status == 200  # redelivered: changes nothing
    assert len(hook.api.texts(owner.id)) == 1
    assert len(await failed_rows(hook.db)) == 1


@pytest.mark.parametrize("kind", ["locked", "network"])
async def test_a_transient_failure_is_retried_then_set_aside(hook, monkeypatch, kind) -> None:
    owner = person(871, "Oli")
    start = hook.updates.command(private(owner), owner, "/start")
    calls = 0

    async def broken(session, user_id):
        nonlocal calls
        calls += 1
        if kind == "locked":
            raise LOCKED
        raise TelegramNetworkError(m.SendMessage(chat_id=user_id, text="x"), "Request timeout")

    monkeypatch.setattr(people, "mark_started", broken)
    statuses = []
    for _ in range(3):
        statuses.append((await hook.post(start)).status)
        [row] = await failed_rows(hook.db)
        assert row.attempts == len(statuses)
    assert statuses == [500, 500, 200]  # UPDATE_ATTEMPTS = 3
    assert (row.update_id, row.status) == (start.update_id, "set_aside")
    assert row.reason.startswith("OperationalError: database is locked" if kind == "locked"
                                 else "TelegramNetworkError: ")  # fmt: skip
    assert row.first_at <= row.last_at
    assert await processed(hook.db, start.update_id)
    assert (await hook.post(start)).status == 200  # set aside: a redelivery changes nothing
    assert calls == 3
    assert await count(hook.db, User) == 0
    assert hook.api.texts(owner.id) == ["Something went wrong. Please try again."]  # once


async def test_a_transient_failure_that_clears_leaves_no_record(hook, monkeypatch) -> None:
    owner = person(881, "Pia")
    start = hook.updates.command(private(owner), owner, "/start")
    real = people.mark_started

    async def once(session, user_id):
        monkeypatch.setattr(people, "mark_started", real)
        raise LOCKED

    monkeypatch.setattr(people, "mark_started", once)
    assert (await hook.post(start)).status == 500
    assert [r.status for r in await failed_rows(hook.db)] == ["retrying"]
    assert (await hook.post(start)).status == 200
    assert await failed_rows(hook.db) == []  # went through: no record left
    assert hook.api.texts(owner.id)[-1].startswith("Hello, Pia!")


async def test_a_button_that_fails_transiently_is_answered_at_every_attempt(
    hook, monkeypatch
) -> None:
    """The client waits for an answer to each press it sees delivered; a message gets its
    apology once."""
    owner = person(891, "Quinn")
    press = hook.updates.callback(owner, LangCB(code="en").pack())

    async def locked(session, tg_user):
        raise LOCKED

    monkeypatch.setattr(people, "remember", locked)
    assert [(await hook.post(press)).status for _ in range(3)] == [500, 500, 200]
    assert [a.text for a in hook.api.answers()] == ["Something went wrong. Please try again."] * 3
    [row] = await failed_rows(hook.db)
    assert (row.status, row.update_type, row.attempts) == ("set_aside", "callback_query", 3)
    assert row.detail == '{"data": "lang:en", "message_id": 1}'
