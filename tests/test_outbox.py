"""The outbox (services.outbox, bot/outbox.py): promises commit or roll back with their change,
are unique by key, are rendered in the recipient's language when sent, and are delivered
once — through 429s (waiting exactly retry_after), network errors (tried again later), 403s
(a person's: parked until they /start, test_parked.py), a deliverer that died holding rows
(its lease runs out), and two instances sharing one database."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest
from aiogram.methods import SendMessage
from sqlalchemy import func, select, update

from bot.factory import create_app
from bot.outbox import OutboxSender
from models import Database, Deal, Group, OutboxMessage, User
from services import deals, outbox, people
from services.timezones import utcnow
from tests.builders import person
from tests.conftest import Harness
from tests.fake_api import FakeTelegram

ALICE = person(701, "Alice")
WANG = person(702, "小王", language="zh-hans")


async def remember(harness, *users) -> None:
    async with harness.db.transaction() as s:
        for u in users:
            await people.remember(
                s, people.Person(u.id, u.first_name, None, u.username, False, u.language_code)
            )
            await people.mark_started(s, u.id)


async def rows(harness) -> list[OutboxMessage]:
    async with harness.db.read() as s:
        return list(await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


async def closed_deal(harness, members, outcome_minimum: int | None = None) -> int:
    """A deal with orders of `members`, closed (succeeded unless a minimum is not met)."""
    now = utcnow()
    async with harness.db.transaction() as s:
        group = Group(chat_id=-100555, title="Fruit", type="supergroup", timezone="Asia/Shanghai",
                      currency="CNY", language="en", is_active=True)  # fmt: skip
        s.add(group)
        await s.flush()
        spec = deals.DealSpec(
            title="Mangoes",
            currency="CNY",
            unit_price=1000,
            closes_at=now + timedelta(hours=1),
            group_ids=[group.id],
            min_kind="units" if outcome_minimum else None,
            min_value=outcome_minimum,
        )
        deal = await deals.create(s, ALICE.id, spec, now)
        from services import orders

        for member in members:
            await orders.set_quantity(s, deal.id, member.id, 2, now, group_id=group.id)
        await deals.close(s, deal.id, now)
        return deal.id


async def test_a_promise_is_unique_by_key_and_rolls_back_with_its_change(harness: Harness) -> None:
    now = utcnow()
    async with harness.db.transaction() as s:
        first = await outbox.promise(
            s, key="k:1", chat_id=ALICE.id, kind="edit_text", payload={}, now=now
        )
        again = await outbox.promise(
            s, key="k:1", chat_id=ALICE.id, kind="edit_text", payload={}, now=now
        )
    assert (first, again) == (True, False)
    with pytest.raises(RuntimeError):
        async with harness.db.transaction() as s:
            await outbox.promise(
                s, key="k:2", chat_id=ALICE.id, kind="edit_text", payload={}, now=now
            )
            raise RuntimeError("the change failed")
    assert [r.key for r in await rows(harness)] == ["k:1"]


async def test_closing_notices_are_rendered_in_each_recipients_language_when_sent(
    harness: Harness,
) -> None:
    await remember(harness, ALICE, WANG)
    deal_id = await closed_deal(harness, [ALICE, WANG])
    assert harness.api.sent() == []  # promised, not sent yet
    keys = sorted(r.key for r in await rows(harness))
    assert keys == sorted(
        [f"closing:D{deal_id}:{ALICE.id}", f"closing:D{deal_id}:{WANG.id}",
         f"closing:D{deal_id}:owner"]
    )  # fmt: skip
    async with harness.db.transaction() as s:  # Wang chooses English after the closing
        await s.execute(update(User).where(User.id == WANG.id).values(language="en"))
    await harness.settle()
    [wang] = harness.api.sent(WANG.id)
    assert "succeeded! Your order: 2 ×" in wang.text  # English: the language at sending time
    alice = harness.api.texts(ALICE.id)
    assert len(alice) == 2 and any("Revenue" in t for t in alice)  # as member and as owner
    assert {r.status for r in await rows(harness)} == {"sent"}
    await harness.settle()
    assert len(harness.api.sent()) == 3  # nothing twice


async def test_429_waits_exactly_retry_after_and_a_persons_403_parks_the_row(
    harness: Harness,
) -> None:
    await remember(harness, ALICE, WANG)
    await closed_deal(harness, [ALICE, WANG])
    harness.api.fail_next("retry_after", SendMessage, chat_id=ALICE.id, retry_after=1)
    harness.api.fail_next(
        "forbidden", SendMessage, chat_id=WANG.id, message="Forbidden: bot was blocked by the user"
    )
    started = time.monotonic()
    await harness.settle()
    alice_times = [
        t for r, t in zip(harness.api.requests, harness.api.times, strict=True)
        if isinstance(r, SendMessage) and r.chat_id == ALICE.id
    ]  # fmt: skip
    assert alice_times[1] - alice_times[0] >= 1.0 and time.monotonic() - started < 5
    by_chat = {r.chat_id: r for r in await rows(harness)}
    # A person who blocked the bot: the row waits for their next /start (test_parked.py).
    assert by_chat[WANG.id].status == "waiting" and "403" in by_chat[WANG.id].reason
    assert "blocked by the user" in by_chat[WANG.id].reason
    assert all(r.status == "sent" for r in by_chat.values() if r.chat_id == ALICE.id)


async def test_network_errors_leave_the_row_pending_for_a_later_try(harness: Harness) -> None:
    await remember(harness, ALICE)
    sender = harness.app.sender
    sender.backoff = 0.01
    await closed_deal(harness, [ALICE])
    harness.api.fail_next("network", SendMessage, times=sender.network_attempts * 2)
    await harness.app.outbox.run_once()
    pending = [r for r in await rows(harness) if r.status == "pending"]
    assert pending and all(r.attempts == 1 and r.due_at > utcnow() for r in pending)
    assert all("Network" in r.reason for r in pending)
    async with harness.db.transaction() as s:  # time passes
        await s.execute(update(OutboxMessage).values(due_at=utcnow()))
    await harness.settle()
    assert {r.status for r in await rows(harness)} == {"sent"}
    tries = sender.network_attempts  # the sender's own tries of each of the two rows, then one
    assert len(harness.api.texts(ALICE.id)) == 2 * tries + 2


async def test_rows_of_a_deliverer_that_died_go_out_once_its_lease_ran_out(
    harness: Harness,
) -> None:
    await remember(harness, ALICE, WANG)
    await closed_deal(harness, [ALICE, WANG])
    async with harness.db.transaction() as s:  # the dead process's claim
        held = await outbox.claim(s, utcnow(), limit=10, lease=timedelta(seconds=60))
    assert len(held) == 3
    await harness.settle()
    assert harness.api.sent() == []  # leased: nobody else may send them
    async with harness.db.transaction() as s:  # the lease runs out
        await s.execute(update(OutboxMessage).values(lease_until=utcnow() - timedelta(seconds=1)))
    await harness.settle()
    assert len(harness.api.sent()) == 3
    assert [r.expired_leases for r in await rows(harness)] == [1, 1, 1]
    async with harness.db.read() as s:
        figures = await outbox.stats(s, utcnow())
    assert (figures.sent, figures.pending, figures.expired_leases) == (3, 0, 3)


async def test_a_lease_is_renewed_while_a_slow_send_is_in_flight(harness: Harness) -> None:
    await remember(harness, ALICE)
    await closed_deal(harness, [ALICE])
    deliverer = OutboxSender(harness.db, harness.app.sender, harness.app.i18n, lease=1.0)
    harness.api.block = asyncio.Event()
    deliverer.start()
    await asyncio.sleep(1.6)  # longer than the lease: renewed meanwhile
    async with harness.db.transaction() as s:
        assert await outbox.claim(s, utcnow(), limit=10, lease=timedelta(seconds=5)) == []
    harness.api.block.set()
    await deliverer.stop()
    assert len(harness.api.sent()) == 2


def slowed(request):
    async def slow(*args, **kwargs):
        await asyncio.sleep(0.02)
        return await request(*args, **kwargs)

    return slow


async def test_two_instances_on_one_database_deliver_every_row_once(
    harness: Harness, settings
) -> None:
    api2 = FakeTelegram()
    second = create_app(settings, session=api2, db=Database(settings.database_url))
    apps, apis = [harness.app, second], [harness.api, api2]
    try:
        now = utcnow()
        async with harness.db.transaction() as s:
            for i in range(400):
                s.add(User(id=10_000 + i, first_name=f"M{i}", started=True, is_bot=False))
            await s.flush()
            for i in range(400):
                payload = {"message_id": 1, "text": f"notice {i}"}
                await outbox.promise(
                    s, key=f"n:{i}", chat_id=10_000 + i, kind="edit_text", payload=payload, now=now
                )
        for app, api in zip(apps, apis, strict=True):
            app.sender.chat_interval = 0.0
            app.sender.global_limit = 10_000
            app.outbox.batch = 25
            app.outbox.concurrency = 5
            api.make_request = slowed(api.make_request)  # a send takes a little while
        # The second instance takes a first batch alone, so both take part however the
        # machine schedules them; then both deliver the rest at once.
        assert await second.outbox.run_once() == 25
        await asyncio.wait_for(asyncio.gather(*(app.settle() for app in apps)), timeout=120)
        delivered = [(r.chat_id, r.text) for api in apis for r in api.requests]
        assert len(delivered) == 400 == len(set(delivered))
        assert all(api.requests for api in apis), [len(api.requests) for api in apis]
        async with harness.db.read() as s:
            count = await s.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == "sent")
            )
        assert count == 400
    finally:
        await second.close()


async def test_forgetting_a_person_deletes_what_was_promised_to_them(harness: Harness) -> None:
    await remember(harness, ALICE, WANG)
    deal_id = await closed_deal(harness, [ALICE, WANG])
    from services import privacy

    async with harness.db.transaction() as s:
        await privacy.forget(s, WANG.id)
    assert f"closing:D{deal_id}:{WANG.id}" not in {r.key for r in await rows(harness)}
    await harness.settle()
    assert harness.api.sent(WANG.id) == []


async def test_a_notice_whose_subject_is_gone_is_settled_without_a_send(harness: Harness) -> None:
    await remember(harness, ALICE)
    deal_id = await closed_deal(harness, [ALICE])
    async with harness.db.transaction() as s:
        await s.execute(update(Deal).where(Deal.id == deal_id).values(title="x"))
        from sqlalchemy import delete

        await s.execute(delete(Deal).where(Deal.id == deal_id))
    await harness.settle()
    assert harness.api.sent() == []
    assert {r.status for r in await rows(harness)} == {"failed"}
