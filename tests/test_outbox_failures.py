"""The outbox when things go wrong: a long 429 leaves the row for later instead of holding the
deliverer, a render that fails for a moment is tried again, a deliverer whose lease ran out
cannot settle a row another instance took, rows give up after their last attempt, and a
closing an older version never announced is promised once."""

from __future__ import annotations

import time
from datetime import timedelta

from aiogram.methods import SendMessage
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from bot import notices as renderers
from bot.outbox import MAX_ATTEMPTS
from models import Deal, OutboxMessage
from scheduler.deals import run_due
from services import outbox
from services.timezones import utcnow
from tests.test_outbox import ALICE, WANG, closed_deal, remember, rows


async def test_a_long_429_leaves_the_row_for_later_without_waiting(harness) -> None:
    await remember(harness, ALICE, WANG)
    await closed_deal(harness, [ALICE, WANG])
    harness.api.fail_next("retry_after", SendMessage, chat_id=ALICE.id, retry_after=600)
    started = time.monotonic()
    await harness.app.outbox.run_once()
    assert time.monotonic() - started < 5  # nobody waited ten minutes
    by_chat = {r.chat_id: r for r in await rows(harness) if r.key.endswith(str(r.chat_id))}
    alice = by_chat[ALICE.id]
    assert alice.status == "pending" and "429" in alice.reason
    assert alice.due_at >= utcnow() + timedelta(seconds=590)  # due when Telegram said
    assert by_chat[WANG.id].status == "sent"  # the others went out meanwhile


async def test_a_render_that_fails_for_a_moment_is_tried_again(harness, monkeypatch) -> None:
    await remember(harness, ALICE)
    await closed_deal(harness, [ALICE])
    real = renderers.RENDERERS["closing_member"]
    calls = []

    async def flaky(ctx, payload):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("SELECT", {}, ConnectionError("connection reset"))
        return await real(ctx, payload)

    monkeypatch.setitem(renderers.RENDERERS, "closing_member", flaky)
    await harness.app.outbox.run_once()
    [row] = [r for r in await rows(harness) if r.kind == "closing_member"]
    assert row.status == "pending" and "render failed" in row.reason
    async with harness.db.transaction() as s:  # its backoff passes
        await s.execute(update(OutboxMessage).values(due_at=utcnow()))
    await harness.settle()
    [row] = [r for r in await rows(harness) if r.kind == "closing_member"]
    assert row.status == "sent" and len(calls) == 2


async def test_a_holder_whose_lease_ran_out_cannot_settle_the_row(harness) -> None:
    await remember(harness, ALICE)
    await closed_deal(harness, [ALICE])
    now = utcnow()
    async with harness.db.transaction() as s:
        old = await outbox.claim(s, now, limit=10, lease=timedelta(seconds=-1))  # ran out
    async with harness.db.transaction() as s:
        new = await outbox.claim(s, now, limit=10, lease=timedelta(seconds=60))
        assert {r.id for r in new} == {r.id for r in old}
        assert not await outbox.mark_failed(s, old[0], "late", now)  # not the holder any more
        assert await outbox.mark_sent(s, new[0], now)
    statuses = {r.id: r.status for r in await rows(harness)}
    assert statuses[old[0].id] == "sent"


async def test_a_row_gives_up_after_its_last_attempt(harness) -> None:
    await remember(harness, ALICE)
    await closed_deal(harness, [ALICE])
    harness.app.sender.backoff = 0.001
    async with harness.db.transaction() as s:
        await s.execute(update(OutboxMessage).values(attempts=MAX_ATTEMPTS - 1))
    harness.api.fail_next("network", SendMessage, times=harness.app.sender.network_attempts * 2)
    await harness.app.outbox.run_once()
    assert {r.status for r in await rows(harness)} == {"failed"}
    assert all("gave up after" in r.reason for r in await rows(harness))


async def test_a_closing_an_older_version_never_announced_is_promised_once(harness) -> None:
    await remember(harness, ALICE)
    deal_id = await closed_deal(harness, [ALICE])
    async with harness.db.transaction() as s:  # as an older version left it: no notices
        await s.execute(update(Deal).values(announced_at=None))
        await s.execute(OutboxMessage.__table__.delete())
    app = harness.app
    first = await run_due(app.bot, app.db, app.i18n, app.sender, utcnow())
    again = await run_due(app.bot, app.db, app.i18n, app.sender, utcnow())
    assert (first.announced_late, again.announced_late) == ([deal_id], [])
    await harness.settle()
    assert len(harness.api.sent(ALICE.id)) == 2  # her outcome, and her owner's summary
    async with harness.db.read() as s:
        assert (await s.get(Deal, deal_id)).announced_at is not None
        assert len(list(await s.scalars(select(OutboxMessage)))) == 2
