"""/status for the operators (ADMIN_IDS): the sender's figures, the last failure per chat and
the next deals to open and close; anyone else is refused."""

from __future__ import annotations

from datetime import timedelta

from aiogram.methods import SendMessage

from services import calendar, failures, outbox
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
        [first, second] = await outbox.claim(s, now, limit=2, lease=timedelta(seconds=-1))
        await outbox.mark_sent(s, first, now)
        assert await outbox.park(s, second, "403 Forbidden", now)  # chat 8 never started
    text = await status(harness, ADMIN)
    assert "Not sent yet: 2 (due now: 1)" in text
    assert "Sent: 1 · failed: 0 · possibly sent twice: 0" in text
    assert "Parked until the person starts the bot: 1" in text


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


# ---------------------------------------------------------------- failed updates


async def fail(harness, update_id: int, *, transient: bool, times: int = 1, when=None, reason="X"):
    for _ in range(times):
        async with harness.db.transaction() as s:
            await failures.record(
                s,
                bot_id=harness.app.bot.id,
                update_id=update_id,
                transient=transient,
                bound=harness.app.settings.update_attempts,
                reason=reason,
                now=when or utcnow(),
                update_type="callback_query",
                chat_id=7,
                user_id=7,
            )


async def test_status_counts_the_failed_updates_of_the_last_day(harness) -> None:
    await fail(harness, 101, transient=False)
    await fail(harness, 102, transient=False)
    await fail(harness, 103, transient=True, times=3)  # set aside
    await fail(harness, 104, transient=True)  # being retried
    await fail(harness, 105, transient=False, when=utcnow() - timedelta(hours=25))  # older
    text = await status(harness, ADMIN)
    assert "Failed updates (last 24 h)" in text
    assert "Failed for good: 2 · set aside after retries: 1" in text
    assert "Being retried: 1 · the last ones: /failures" in text


async def test_failures_lists_the_last_ten_within_the_limit(harness) -> None:
    harness.api.clear()
    assert "None" in (await harness.say(ADMIN, "/failures", expect=1)).text
    start = utcnow() - timedelta(hours=2)
    for n in range(12):
        await fail(
            harness,
            200 + n,
            transient=n % 2 == 0,
            times=3 if n % 2 == 0 else 1,
            when=start + timedelta(minutes=n),
            reason="DataError: <b>" + "x" * 500,
        )
    await fail(harness, 300, transient=True)  # being retried: not listed
    text = (await harness.say(ADMIN, "/failures", expect=1)).text
    assert len(text) <= 4096
    listed = [int(line.split("<code>")[1].split("</code>")[0]) for line in text.splitlines()
              if line.startswith("• ")]  # fmt: skip
    assert listed == list(range(211, 201, -1))  # the last ten, newest first
    assert "<code>211</code> callback_query · failed, attempts: 1" in text
    assert "<code>210</code> callback_query · set aside, attempts: 3" in text
    assert "DataError: &lt;b&gt;xxx" in text and "<b>x" not in text  # escaped, cut

    harness.app.locales.set_user(ADMIN.id, "zh_Hans")
    text = (await harness.say(ADMIN, "/failures", expect=1)).text
    assert "最近失败的更新" in text and "已搁置，尝试次数：3" in text


async def test_others_cannot_list_failures(harness) -> None:
    await fail(harness, 101, transient=False, reason="secret")
    text = (await harness.say(STRANGER, "/failures", expect=1)).text
    assert text == "Only the operators of this bot can see its status."
