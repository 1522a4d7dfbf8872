"""/forgetme forgets completely: other people's unfinished forms lose the member's id (every
FSM storage), and the group posts that listed the member's name are re-rendered without it —
also when the process dies right after the commit (the catch-up at the next start)."""

from __future__ import annotations

import json

from aiogram.fsm.storage.base import DefaultKeyBuilder, StorageKey
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage
from sqlalchemy import select

from bot import forms
from handlers.callbacks import CommissionCB, ForgetCB
from models import CreditEntry, FsmState
from services import fulfilment, privacy
from services.timezones import utcnow
from tests.builders import person
from tests.fake_api import BOT_ID
from tests.test_credit import REF, attributed_deal
from tests.test_deal_post import GROUP, press, ready, refresher
from tests.test_fsm import redis_url  # noqa: F401 - the fixture
from tests.test_owner_orders import ALICE, OWNER

NAME = "Zelda"
ZELDA = person(631, NAME)


async def forget(harness, user) -> None:
    await harness.say(user, "/forgetme")
    await harness.tap(user, ForgetCB(action="confirm"))
    await harness.settle()


async def test_the_deal_post_no_longer_shows_a_forgotten_member(harness) -> None:
    _group_id, deal_id = await ready(harness)
    await press(harness, ZELDA, deal_id)
    await harness.settle()
    assert NAME in harness.last_edit(GROUP).text
    await forget(harness, ZELDA)
    post = harness.last_edit(GROUP).text
    assert NAME not in post
    assert "a member" in post  # still one sign-up, without a name


async def test_the_post_is_re_rendered_after_a_crash_right_after_the_commit(harness) -> None:
    _group_id, deal_id = await ready(harness)
    await press(harness, ZELDA, deal_id)
    await harness.settle()
    assert NAME in harness.last_edit(GROUP).text
    effects, harness.db.effects = harness.db.effects, None  # the process dies at the commit
    try:
        async with harness.db.transaction() as s:
            summary = await privacy.forget(s, ZELDA.id)
    finally:
        harness.db.effects = effects
    assert summary.deals == [deal_id]
    assert NAME in harness.last_edit(GROUP).text  # nothing re-rendered it yet
    assert await refresher(harness).catch_up() == 1  # the next start
    await harness.settle()
    assert NAME not in harness.last_edit(GROUP).text


async def fsm_rows(harness) -> dict[str, tuple[str | None, dict]]:
    async with harness.db.read() as s:
        return {r.key: (r.state, json.loads(r.data)) for r in await s.scalars(select(FsmState))}


async def payouts(harness) -> list[int]:
    async with harness.db.read() as s:
        return list(await s.scalars(select(CreditEntry.amount).where(CreditEntry.kind == "payout")))


async def test_an_owners_open_payout_form_forgets_the_member(harness) -> None:
    _deal_id, group_id, ids = await attributed_deal(harness)
    async with harness.db.transaction() as s:
        await fulfilment.mark(s, ids[ALICE.id], OWNER.id, "picked_up", utcnow())
    await harness.tap(
        OWNER, CommissionCB(action="pay", group_id=group_id, user_id=REF.id, cur="CNY")
    )
    assert "How much did you pay out to Rita" in harness.last(OWNER).text
    [(state, data)] = [v for k, v in (await fsm_rows(harness)).items() if str(OWNER.id) in k]
    assert data[forms.PERSON_KEY] == REF.id

    await forget(harness, REF)
    rows = await fsm_rows(harness)
    assert all(str(REF.id) not in k + json.dumps(v) for k, v in rows.items()), rows
    [(state_after, data_after)] = [v for k, v in rows.items() if str(OWNER.id) in k]
    assert state_after == state and forms.PERSON_KEY not in data_after

    reply = (await harness.say(OWNER, "1")).text
    assert "no longer known" in reply and "nothing was recorded" in reply
    assert await payouts(harness) == []
    assert await fsm_rows(harness) == {}  # the form is over
    assert "no longer known" not in (await harness.say(OWNER, "1")).text


async def test_the_finishing_step_rechecks_the_member(harness) -> None:
    """A form written after the scrub (or never scrubbed) still cannot pay a forgotten one."""
    _deal_id, group_id, ids = await attributed_deal(harness)
    async with harness.db.transaction() as s:
        await fulfilment.mark(s, ids[ALICE.id], OWNER.id, "picked_up", utcnow())
    await harness.tap(
        OWNER, CommissionCB(action="pay", group_id=group_id, user_id=REF.id, cur="CNY")
    )
    async with harness.db.transaction() as s:  # forgotten without touching the forms
        await privacy.forget(s, REF.id)
    reply = (await harness.say(OWNER, "1")).text
    assert "no longer known" in reply
    assert await payouts(harness) == []


def _key(user_id: int) -> StorageKey:
    return StorageKey(bot_id=BOT_ID, chat_id=user_id, user_id=user_id)


async def _fill(storage) -> None:
    await storage.set_state(_key(OWNER.id), "CommissionForm:payout")
    await storage.set_data(_key(OWNER.id), {"group_id": 1, forms.PERSON_KEY: REF.id, "cur": "CNY"})
    await storage.set_state(_key(ALICE.id), "CommissionForm:payout")
    await storage.set_data(_key(ALICE.id), {"group_id": 2, forms.PERSON_KEY: 999, "cur": "CNY"})


async def _check(storage) -> None:
    assert await forms.forget_person(storage, REF.id) == 1
    assert await storage.get_data(_key(OWNER.id)) == {
        "group_id": 1,
        "cur": "CNY",
        forms.PERSON_GONE: True,
    }
    assert await storage.get_state(_key(OWNER.id)) == "CommissionForm:payout"
    untouched = {"group_id": 2, forms.PERSON_KEY: 999, "cur": "CNY"}
    assert await storage.get_data(_key(ALICE.id)) == untouched
    assert await forms.forget_person(storage, REF.id) == 0


async def test_memory_storage_forgets_the_member() -> None:
    storage = MemoryStorage()
    await _fill(storage)
    await _check(storage)
    assert all(REF.id not in r.data.values() for r in storage.storage.values())


async def test_redis_storage_forgets_the_member(redis_url: str) -> None:  # noqa: F811
    storage = RedisStorage.from_url(
        redis_url, key_builder=DefaultKeyBuilder(prefix="tuan", with_bot_id=True, with_destiny=True)
    )
    try:
        await _fill(storage)
        await _check(storage)
        values = [await storage.redis.get(k) async for k in storage.redis.scan_iter("tuan:*")]
        assert values and all(str(REF.id).encode() not in v for v in values if v)
    finally:
        await storage.close()
