"""/status for the operators (ADMIN_IDS): the sender's figures, the last failure per chat and
the next deals to open and close; anyone else is refused."""

from __future__ import annotations

from datetime import timedelta

from aiogram.methods import SendMessage

from services import calendar, outbox
from services.timezones import utcnow
from tests.builders import person
from tests.test_deal_post import GROUP, add_group, create_deal

ADMIN = person(42, "Operator")  # settings fixture: ADMIN_IDS=42
STRANGER = person(43, "Stranger")


async def status(harness, user) -> str:
    harness.api.clear()
    return (await harness.say(user, "/status", expect=1)).text


async def test_admin_sees_the_figures_and_the_next_deals(harness) -> None:
    group_id = await add_group(harness)
    soon = await create_deal(harness, [group_id], title="Lychees")
    later = await create_deal(
        harness,
        [group_id],
        title="Durian",
        opens_at=utcnow() + timedelta(days=1),
        closes_at=utcnow() + timedelta(days=2),
    )
    sender = harness.app.sender
    harness.api.fail_next("bad_request", SendMessage, chat_id=GROUP.id, message="Bad Request: nope")
    assert await sender.send(SendMessage(chat_id=GROUP.id, text="x"), chat_id=GROUP.id) is None
    assert await sender.send(SendMessage(chat_id=7, text="y"), chat_id=7) is not None

    text = await status(harness, ADMIN)
    assert "Queue (waiting for a slot): 0" in text
    assert "In flight: 0 · pending in all: 0" in text
    assert "Sent: 1 · failed: 1" in text
    assert f"<code>{GROUP.id}</code>" in text and "SendMessage: 400 Bad Request: nope" in text
    opening = text.split("Next deals to open")[1].split("Next deals to close")[0]
    closing = text.split("Next deals to close")[1]
    assert f"D{later} Durian" in opening and "Lychees" not in opening
    assert f"D{soon} Lychees" in closing and "Durian" not in closing


async def test_nothing_to_report(harness) -> None:
    text = await status(harness, ADMIN)
    assert "Sent: 0 · failed: 0" in text and text.count("None") == 4
    assert "Not sent yet: 0 (due now: 0)" in text


async def test_admin_sees_the_outbox(harness) -> None:
    now = utcnow()
    async with harness.db.transaction() as s:
        for i, chat in enumerate((7, 8, 9)):
            payload = {"message_id": 1, "text": "x"}
            await outbox.promise(
                s, key=f"k{i}", chat_id=chat, kind="edit_text", payload=payload, now=now
            )
        await outbox.promise(
            s, key="later", chat_id=7, kind="edit_text", payload={}, now=now,
            due_at=now + timedelta(hours=1),
        )  # fmt: skip
        [first, *_rest] = await outbox.claim(s, now, limit=1, lease=timedelta(seconds=-1))
        await outbox.mark_sent(s, first, now)
    text = await status(harness, ADMIN)
    assert "Not sent yet: 3 (due now: 2)" in text
    assert "Sent: 1 · failed: 0 · possibly sent twice: 0" in text


async def test_admin_sees_the_next_scheduled_posts(harness) -> None:
    group_id = await add_group(harness)
    async with harness.db.transaction() as session:
        post = await calendar.create(
            session,
            ADMIN.id,
            calendar.PostSpec(
                text="Fresh mangoes", kind="daily", group_ids=[group_id], at_time="09:00"
            ),
            utcnow(),
        )
    text = await status(harness, ADMIN)
    scheduled = text.split("Next scheduled posts")[1]
    assert f"#{post.id} → " in scheduled and "None" not in scheduled


async def test_others_are_refused(harness) -> None:
    text = await status(harness, STRANGER)
    assert text == "Only the operators of this bot can see its status."
