"""Parked outbox rows: a private message refused with 403 (the person never started the bot,
blocked it, or is deactivated) waits (`waiting`) instead of failing, and goes out when the
person sends /start (or unblocks the bot), after the /start reply; stale kinds (digests, a
missing-rights note older than a day) are dropped then; parked rows older than 30 days are
pruned; /forgetme erases them. A group's 403 still fails the row."""

from __future__ import annotations

from datetime import date, timedelta

from aiogram.exceptions import TelegramForbiddenError
from aiogram.methods import SendMessage
from sqlalchemy import select, update

from models import OutboxMessage, User
from services import notices, outbox, privacy
from services.timezones import utcnow
from tests.builders import private
from tests.test_deal_closing import due, started
from tests.test_deal_post import ALICE, GROUP, OWNER, add_group, press, ready

CANNOT_INITIATE = "Forbidden: bot can't initiate conversation with a user"
BLOCKED = "Forbidden: bot was blocked by the user"


def refuse(harness, chats: dict[int, str], kind: type = object) -> None:
    """Telegram refuses every request (of `kind`) to these chats (chat id → its 403) while
    they are in `chats`: the person has not started the bot, or blocked it."""

    def check(method) -> None:
        chat_id = getattr(method, "chat_id", None)
        if chat_id in chats and isinstance(method, kind):
            raise TelegramForbiddenError(method=method, message=chats[chat_id])

    harness.api.on_request = check


async def rows_of(harness, chat_id: int) -> list[OutboxMessage]:
    async with harness.db.read() as s:
        found = await s.scalars(
            select(OutboxMessage).where(OutboxMessage.chat_id == chat_id).order_by(OutboxMessage.id)
        )
        return list(found)


async def add_bot(harness, actor=OWNER, chat=GROUP) -> None:
    harness.api.set_admins(chat.id, actor)
    await harness.feed(harness.updates.my_chat_member(chat, actor, "left", "administrator"))
    await harness.settle()


async def test_the_note_to_an_owner_who_never_started_the_bot_waits_for_their_start(
    harness,
) -> None:
    refusing = {OWNER.id: CANNOT_INITIATE}
    refuse(harness, refusing)
    await add_bot(harness)
    [tried] = harness.api.texts(OWNER.id)  # refused by Telegram
    assert tried.startswith("You added me to Fruit Lovers.")
    [row] = await rows_of(harness, OWNER.id)
    assert (row.kind, row.status) == ("added_note", "waiting") and "initiate" in row.reason
    await harness.settle()
    assert len(harness.api.texts(OWNER.id)) == 1  # parked: not tried again meanwhile

    del refusing[OWNER.id]  # the owner opens the chat and presses Start
    await harness.say(OWNER, "/start")
    await harness.settle()
    texts = harness.api.texts(OWNER.id)
    assert len(texts) == 3
    assert texts[1].startswith("Hello, Owen!")  # the /start reply first, then what waited
    assert texts[2].startswith("You added me to Fruit Lovers.")
    assert [r.status for r in await rows_of(harness, OWNER.id)] == ["sent"]

    await harness.say(OWNER, "/start")  # a second /start: nothing is sent twice
    await harness.settle()
    assert [t for t in harness.api.texts(OWNER.id) if t.startswith("You added me")] == [
        tried,
        texts[2],
    ]


async def test_a_member_who_blocked_the_bot_gets_the_closing_notice_at_start_again(
    harness,
) -> None:
    _group_id, deal_id = await ready(harness)
    await press(harness, ALICE, deal_id, "qty", 2)
    await started(harness, ALICE)
    refusing = {ALICE.id: BLOCKED}
    refuse(harness, refusing)
    await due(harness)
    [row] = await rows_of(harness, ALICE.id)
    assert (row.kind, row.status) == ("closing_member", "waiting")
    async with harness.db.read() as s:
        assert (await s.get(User, ALICE.id)).started is False  # the sender saw the 403

    del refusing[ALICE.id]
    await harness.say(ALICE, "/start")
    await harness.settle()
    notice = harness.api.texts(ALICE.id)[-1]
    assert "succeeded" in notice and "Pickup code: <code>" in notice
    assert [r.status for r in await rows_of(harness, ALICE.id)] == ["sent"]


async def test_unblocking_the_bot_releases_what_waited(harness) -> None:
    _group_id, deal_id = await ready(harness)
    await press(harness, ALICE, deal_id, "join")
    await started(harness, ALICE)
    refusing = {ALICE.id: BLOCKED}  # blocked (the bot has not been told yet)
    refuse(harness, refusing)
    await due(harness)
    assert [r.status for r in await rows_of(harness, ALICE.id)] == ["waiting"]

    del refusing[ALICE.id]
    await harness.feed(harness.updates.my_chat_member(private(ALICE), ALICE, "kicked", "member"))
    await harness.settle()
    assert "Pickup code" in harness.api.texts(ALICE.id)[-1]
    assert [r.status for r in await rows_of(harness, ALICE.id)] == ["sent"]


async def test_a_stale_digest_is_dropped_on_resume_and_the_rest_delivered(harness) -> None:
    group_id = await add_group(harness)
    await started(harness, OWNER)
    long_ago = utcnow() - timedelta(days=2)
    async with harness.db.transaction() as s:
        await notices.digest(s, OWNER.id, group_id, date.today() - timedelta(days=3), long_ago)
        await notices.added_note(s, OWNER.id, group_id, long_ago, long_ago)
        await s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.chat_id == OWNER.id)
            .values(status="waiting", created_at=long_ago)
        )
        await s.execute(update(User).where(User.id == OWNER.id).values(started=False))
    await harness.settle()
    assert harness.api.sent(OWNER.id) == []  # parked rows are not claimed

    await harness.say(OWNER, "/start")
    await harness.settle()
    texts = harness.api.texts(OWNER.id)
    assert len(texts) == 2 and texts[1].startswith("You added me to Fruit Lovers.")
    by_kind = {r.kind: r for r in await rows_of(harness, OWNER.id)}
    assert by_kind["added_note"].status == "sent"
    for kind in ("digest_text", "digest_chart"):
        assert by_kind[kind].status == "failed" and "stale" in by_kind[kind].reason
    assert harness.api.of(SendMessage)[-1].text == texts[1]


async def test_parked_rows_older_than_thirty_days_are_pruned(harness) -> None:
    group_id = await add_group(harness)
    now = utcnow()
    async with harness.db.transaction() as s:
        await notices.added_note(s, OWNER.id, group_id, now - timedelta(days=31), now)
        await notices.added_note(s, ALICE.id, group_id, now - timedelta(days=1), now)
        await s.execute(update(OutboxMessage).values(status="waiting"))
        await s.execute(
            update(OutboxMessage)
            .where(OutboxMessage.chat_id == OWNER.id)
            .values(created_at=now - timedelta(days=31))
        )
    async with harness.db.transaction() as s:
        assert await outbox.prune(s, now - timedelta(days=7), now) == 1
        figures = await outbox.stats(s, now)
    assert await rows_of(harness, OWNER.id) == []
    assert [r.status for r in await rows_of(harness, ALICE.id)] == ["waiting"]
    assert (figures.waiting, figures.pending) == (1, 0)


async def test_forgetting_a_person_erases_what_waited_for_them(harness) -> None:
    refuse(harness, {OWNER.id: CANNOT_INITIATE})
    await add_bot(harness)
    assert [r.status for r in await rows_of(harness, OWNER.id)] == ["waiting"]
    async with harness.db.transaction() as s:
        await privacy.forget(s, OWNER.id)
    assert await rows_of(harness, OWNER.id) == []


async def test_a_start_between_the_refusal_and_the_parking_sends_the_row_again(harness) -> None:
    """The refusal came before the person's /start committed: the row is not parked (nobody
    would release it), it is tried again."""
    group_id = await add_group(harness)
    async with harness.db.transaction() as s:
        await notices.added_note(s, OWNER.id, group_id, utcnow(), utcnow())
        [row] = await outbox.claim(s, utcnow(), limit=10, lease=timedelta(seconds=60))
    await harness.say(OWNER, "/start")  # commits before the refusal is recorded
    async with harness.db.transaction() as s:
        assert await outbox.park(s, row, "403 " + CANNOT_INITIATE, utcnow())
    [parked] = await rows_of(harness, OWNER.id)
    assert parked.status == "pending" and parked.lease_token is None
    await harness.settle()
    assert harness.api.texts(OWNER.id)[-1].startswith("You added me")


async def test_a_groups_403_still_fails_the_row(harness) -> None:
    _group_id, deal_id = await ready(harness)
    await press(harness, ALICE, deal_id, "join")
    refuse(harness, {GROUP.id: "Forbidden: bot was kicked from the supergroup chat"}, SendMessage)
    await due(harness)
    [row] = [r for r in await rows_of(harness, GROUP.id) if r.kind == "closing_post"]
    assert row.status == "failed" and "kicked" in row.reason
