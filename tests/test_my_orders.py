"""/myorders through the real Dispatcher: open and past orders in the member's language and
in the group's timezone, cancelling while open, refusals after closing and for forged ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiogram import methods as m
from sqlalchemy import select

from handlers.callbacks import MyOrdersCB
from models import Deal, Group, GroupAdmin, Order
from services import deals, orders, people
from services.money import format_money
from services.people import Person
from services.timezones import to_local, utcnow
from tests.builders import person

OWNER = person(701, "Olivia")
ALICE = person(711, "Alice")
BOB = person(712, "Bob")


def tomorrow_noon_utc() -> datetime:
    day = utcnow().date() + timedelta(days=1)
    return datetime(day.year, day.month, day.day, 12, 0, tzinfo=UTC)


async def make_group(harness, chat_id: int, timezone: str) -> int:
    harness.api.set_admins(chat_id, OWNER)
    async with harness.db.transaction() as session:
        group = Group(chat_id=chat_id, title=f"G{chat_id}", type="supergroup", timezone=timezone,
                      currency="CNY", language="en", is_active=True,
                      admins_refreshed_at=utcnow())  # fmt: skip
        session.add(group)
        await session.flush()
        session.add(GroupAdmin(group_id=group.id, user_id=OWNER.id, status="creator"))
        return group.id


async def make_deal(
    harness, group_id: int, members: list[tuple[object, int]], *, close: bool = False, **spec
) -> tuple[int, dict[int, int]]:
    now = utcnow()
    async with harness.db.transaction() as session:
        values = {
            "title": "Mangoes",
            "currency": "CNY",
            "unit_price": 1250,
            "closes_at": tomorrow_noon_utc(),
            "group_ids": [group_id],
        }
        values.update(spec)
        deal = await deals.create(session, OWNER.id, deals.DealSpec(**values), now)
        ids = {}
        for member, quantity in members:
            await people.remember(session, Person(member.id, member.first_name, language_code="en"))
            change = await orders.set_quantity(
                session, deal.id, member.id, quantity, now, group_id=group_id
            )
            ids[member.id] = change.order.id
        if close:
            await deals.close(session, deal.id, now)
        return deal.id, ids


async def order_state(harness, order_id: int) -> tuple[str, int]:
    async with harness.db.read() as s:
        order = await s.get(Order, order_id)
        return order.status, order.quantity


def money(minor: int) -> str:
    return format_money(minor, "CNY", "en")


async def test_no_orders(harness) -> None:
    reply = await harness.say(ALICE, "/myorders")
    assert reply.text.startswith("You have no orders yet.") and harness.callbacks(reply) == []


async def test_open_and_past_orders_in_the_groups_timezone(harness) -> None:
    shanghai = await make_group(harness, -100801, "Asia/Shanghai")
    berlin = await make_group(harness, -100802, "Europe/Berlin")
    open_id, open_ids = await make_deal(
        harness, shanghai, [(ALICE, 2), (BOB, 1)], title="<b>Fresh</b> & co", tiers=[(3, 1100)]
    )
    past_id, past_ids = await make_deal(harness, berlin, [(ALICE, 1)], close=True)
    async with harness.db.read() as s:
        past = await s.get(Deal, past_id)
        codes = dict((await s.execute(select(Order.id, Order.pickup_code))).all())

    reply = await harness.say(ALICE, "/myorders")
    text = reply.text
    assert text.startswith("<b>Your orders</b>\n\n<b>Open</b>\n")
    assert text.index("<b>Open</b>") < text.index(f"(D{open_id})") < text.index("<b>Past</b>")
    assert text.index("<b>Past</b>") < text.index(f"(D{past_id})")
    open_block = text[text.index("• <b>&lt;b&gt;Fresh") : text.index("<b>Past</b>")]
    assert f"• <b>&lt;b&gt;Fresh&lt;/b&gt; &amp; co</b> (D{open_id})" in open_block
    assert f"×2 · {money(2200)} expected · joined" in open_block  # tier reached: 11.00
    assert f"Pickup code: <code>{codes[open_ids[ALICE.id]]}</code>" in open_block
    # closes at 12:00 UTC, shown in the group's time: 20:00 in Shanghai
    local_day = tomorrow_noon_utc().strftime("%Y-%m-%d")
    assert f"Closes {local_day} 20:00 (Asia/Shanghai)" in open_block
    past_block = text[text.index("<b>Past</b>") :]
    assert f"×1 · {money(1250)} · confirmed · not handed over yet" in past_block
    closed_local = to_local(past.closed_at, "Europe/Berlin")
    assert f"Closed {closed_local:%Y-%m-%d %H:%M} (Europe/Berlin)" in past_block
    assert f"Pickup code: <code>{codes[past_ids[ALICE.id]]}</code>" in past_block
    # a Cancel button for the open order only
    assert harness.callbacks(reply) == [f"my:cancel:{open_ids[ALICE.id]}:0"]
    assert "Bob" not in text


async def test_pickup_codes_only_for_orders_that_can_still_be_picked_up(harness) -> None:
    """Joined in a running deal, or confirmed and not yet handed over: the code. Failed,
    cancelled (by the member, the owner or a refund), picked up or delivered: none."""
    from services import fulfilment

    gid = await make_group(harness, -100803, "Asia/Shanghai")
    running, running_ids = await make_deal(harness, gid, [(ALICE, 1)], title="Running")
    failed, failed_ids = await make_deal(
        harness, gid, [(ALICE, 1)], close=True, title="Failed", min_kind="units", min_value=50
    )
    cancelled, cancelled_ids = await make_deal(harness, gid, [(ALICE, 1)], title="Cancelled")
    done, done_ids = await make_deal(harness, gid, [(ALICE, 1)], close=True, title="Picked")
    waiting, waiting_ids = await make_deal(harness, gid, [(ALICE, 1)], close=True, title="Wait")
    refunded, refunded_ids = await make_deal(harness, gid, [(ALICE, 1)], close=True, title="Ref")
    now = utcnow()
    async with harness.db.transaction() as s:
        await deals.close(s, cancelled, now, cancel=True)
        await fulfilment.mark(s, done_ids[ALICE.id], OWNER.id, "picked_up", now)
        await fulfilment.refund(s, refunded_ids[ALICE.id], OWNER.id, now)
        codes = dict((await s.execute(select(Order.id, Order.pickup_code))).all())
        statuses = dict((await s.execute(select(Order.id, Order.status))).all())
    assert statuses[failed_ids[ALICE.id]] == "failed"
    assert statuses[cancelled_ids[ALICE.id]] == statuses[refunded_ids[ALICE.id]] == "cancelled"
    await harness.settle()

    text = (await harness.say(ALICE, "/myorders")).text

    def block(deal_id: int) -> str:
        start = text.index(f"(D{deal_id})")
        end = text.find("• ", start)
        return text[start : end if end != -1 else len(text)]

    for deal_id, ids in ((running, running_ids), (waiting, waiting_ids)):
        assert f"Pickup code: <code>{codes[ids[ALICE.id]]}</code>" in block(deal_id)
    for deal_id, ids in (
        (failed, failed_ids), (cancelled, cancelled_ids), (done, done_ids),
        (refunded, refunded_ids),
    ):  # fmt: skip
        assert "Pickup code" not in block(deal_id) and codes[ids[ALICE.id]] not in text


async def test_cancel_while_open(harness) -> None:
    group_id = await make_group(harness, -100801, "Asia/Shanghai")
    deal_id, ids = await make_deal(harness, group_id, [(ALICE, 2), (BOB, 1)], stock=10)
    await harness.say(ALICE, "/myorders")
    answer = await harness.tap(ALICE, MyOrdersCB(action="cancel", order_id=ids[ALICE.id]))
    assert answer.text == "Order cancelled." and not answer.show_alert
    edit = harness.api.of(m.EditMessageText)[-1]
    assert edit.text.startswith("You have no orders yet.")
    assert await order_state(harness, ids[ALICE.id]) == ("cancelled", 0)
    async with harness.db.read() as s:
        deal = await s.get(Deal, deal_id)
    assert (deal.total_qty, deal.participants, deal.stock_left) == (1, 1, 9)

    # tapping the old button again: already cancelled, nothing changes
    answer = await harness.tap(ALICE, MyOrdersCB(action="cancel", order_id=ids[ALICE.id]))
    assert answer.show_alert and "already cancelled" in answer.text
    async with harness.db.read() as s:
        assert (await s.get(Deal, deal_id)).stock_left == 9


async def test_cancel_refused_after_closing(harness) -> None:
    group_id = await make_group(harness, -100801, "Asia/Shanghai")
    deal_id, ids = await make_deal(harness, group_id, [(ALICE, 2)])
    reply = await harness.say(ALICE, "/myorders")
    button = MyOrdersCB(action="cancel", order_id=ids[ALICE.id])
    assert harness.callbacks(reply) == [button.pack()]
    async with harness.db.transaction() as session:  # the deal closes meanwhile
        await deals.close(session, deal_id, utcnow())
    answer = await harness.tap(ALICE, button)
    assert answer.show_alert
    assert answer.text == f"D{deal_id} has closed; the order can no longer be cancelled."
    assert await order_state(harness, ids[ALICE.id]) == ("confirmed", 2)
    reply = await harness.say(ALICE, "/myorders")
    assert harness.callbacks(reply) == [] and "<b>Past</b>" in reply.text


async def test_cancel_refused_when_paused(harness) -> None:
    group_id = await make_group(harness, -100801, "Asia/Shanghai")
    deal_id, ids = await make_deal(harness, group_id, [(ALICE, 1)])
    async with harness.db.transaction() as session:
        await deals.set_paused(session, deal_id, OWNER.id, True, utcnow())
    reply = await harness.say(ALICE, "/myorders")
    assert harness.callbacks(reply) == []  # no button while paused
    answer = await harness.tap(ALICE, MyOrdersCB(action="cancel", order_id=ids[ALICE.id]))
    assert answer.show_alert and "paused" in answer.text
    assert await order_state(harness, ids[ALICE.id]) == ("active", 1)


async def test_forged_cancels_are_refused(harness) -> None:
    group_id = await make_group(harness, -100801, "Asia/Shanghai")
    _deal_id, ids = await make_deal(harness, group_id, [(ALICE, 2)])
    for order_id in (ids[ALICE.id], 999_999, 0):
        answer = await harness.tap(BOB, MyOrdersCB(action="cancel", order_id=order_id))
        assert answer.show_alert and "not yours" in answer.text
    for forged in (f"my:cancel:{2**40}:0", "my:cancel:-1:0", "my:page:0:-1"):
        answer = await harness.tap(BOB, forged)  # out of range: answered, not unpacked
        assert answer.show_alert and "out of date" in answer.text
    answer = await harness.tap(ALICE, MyOrdersCB(action="nuke", order_id=ids[ALICE.id]))
    assert answer.show_alert
    assert await order_state(harness, ids[ALICE.id]) == ("active", 2)
    assert harness.api.of(m.EditMessageText) == []


async def test_many_orders_are_paginated(harness) -> None:
    group_id = await make_group(harness, -100801, "Asia/Shanghai")
    for n in range(13):
        await make_deal(harness, group_id, [(ALICE, 1)], title=f"Deal number {n} " + "y" * 80)
    reply = await harness.say(ALICE, "/myorders")
    assert len(reply.text) <= 4096 and "Page 1 of 2" in reply.text
    assert "my:page:0:1" in harness.callbacks(reply)
    cancel_buttons = [c for c in harness.callbacks(reply) if c.startswith("my:cancel")]
    await harness.tap(ALICE, MyOrdersCB(action="page", page=1))
    edit = harness.api.of(m.EditMessageText)[-1]
    assert "Page 2 of 2" in edit.text
    more = [c for c in harness.callbacks(edit) if c.startswith("my:cancel")]
    assert len(cancel_buttons) + len(more) == 13
    assert reply.text.count("• <b>") + edit.text.count("• <b>") == 13
