"""Rights are current (services.rights): a deal is managed by its creator while they are an
administrator of the deal's group, else by every current administrator of it; nobody else.
Checked at each action, also at the finishing step of a form."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiogram.methods import SendDocument
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select

from handlers.callbacks import OrdersCB, OwnerDealCB, ScheduleItemCB
from models import Deal, Group, GroupAdmin, Order, ScheduledPost
from services import calendar, deals, rights
from services.parsing import ParseError
from services.timezones import utcnow
from tests.builders import group, person
from tests.test_owner_orders import ALICE, OWNER, WANG, make_deal

CHAT = group(-100777, "Fruit 团")
BOSS = person(621, "Bea")  # the group's creator
HELPER = person(622, "Hal")  # another administrator
NOT_YOURS = "does not exist, or it is not yours"  # one answer: no oracle (class 5)


async def staffed(harness, *, stock: int | None = 20) -> tuple[int, int, dict[int, int]]:
    """OWNER (an administrator, not the group's creator) made a closed deal with orders of
    Alice and 小王 and an open one; BOSS created the group, HELPER administers it.
    Returns (closed deal, open deal, {user id: order id of the closed deal})."""
    closed, ids = await make_deal(harness, [(ALICE, 2), (WANG, 1)], close=True)
    async with harness.db.transaction() as s:
        group_id = await s.scalar(select(Group.id).where(Group.chat_id == CHAT.id))
        await s.execute(delete(GroupAdmin).where(GroupAdmin.group_id == group_id))
        s.add(GroupAdmin(group_id=group_id, user_id=BOSS.id, status="creator"))
        s.add(GroupAdmin(group_id=group_id, user_id=OWNER.id, status="administrator"))
        s.add(GroupAdmin(group_id=group_id, user_id=HELPER.id, status="administrator"))
    harness.api.set_admins(CHAT.id, BOSS, OWNER, HELPER)
    async with harness.db.transaction() as s:
        spec = deals.DealSpec(
            title="Lychees",
            currency="CNY",
            unit_price=900,
            closes_at=utcnow() + timedelta(hours=3),
            group_ids=[group_id],
            stock=stock,
        )
        opened = (await deals.create(s, OWNER.id, spec, utcnow())).id
    return closed, opened, ids


async def demote(harness, user, new: str = "member") -> None:
    """A chat_member update: `user` is no longer an administrator (and Telegram agrees)."""
    await harness.feed(harness.updates.chat_member(CHAT, user, "administrator", new, actor=BOSS))
    remaining = [u for u in (OWNER, HELPER) if u.id != user.id]
    harness.api.set_admins(CHAT.id, BOSS, *remaining)


async def promote(harness, user) -> None:
    await harness.feed(harness.updates.promoted(CHAT, user, BOSS))
    harness.api.set_admins(CHAT.id, BOSS, OWNER, HELPER)


async def snapshot(harness) -> tuple:
    async with harness.db.read() as s:
        orders = (
            await s.execute(
                select(Order.id, Order.status, Order.fulfilment, Order.paid_at).order_by(Order.id)
            )
        ).all()
        deals = (
            await s.execute(
                select(Deal.id, Deal.status, Deal.stock_total, Deal.description, Deal.reminders)
            )
        ).all()
    return tuple(orders), tuple(deals)


async def pickup_code(harness, order_id: int) -> str:
    async with harness.db.read() as s:
        return await s.scalar(select(Order.pickup_code).where(Order.id == order_id))


async def test_demoted_creator_loses_every_owner_action(harness) -> None:
    closed, opened, ids = await staffed(harness)
    page = await harness.say(OWNER, f"/orders D{closed}")
    assert "Alice" in page.text  # while an administrator: the orders with buyers' names
    await harness.tap(OWNER, OwnerDealCB(action="open", deal_id=opened))
    assert "Lychees" in harness.last(OWNER).text

    await demote(harness, OWNER)
    before = await snapshot(harness)
    sent_before = len(harness.api.sent(OWNER.id))
    alice = ids[ALICE.id]
    for data in (
        OrdersCB(action="list", deal_id=closed),
        OrdersCB(action="csv", deal_id=closed),
        OrdersCB(action="xlsx", deal_id=closed),
        OrdersCB(action="order", deal_id=closed, order_id=alice),
        OrdersCB(action="paid", deal_id=closed, order_id=alice),
        OrdersCB(action="refund", deal_id=closed, order_id=alice),
        OrdersCB(action="mark", deal_id=closed, order_id=alice, state="ready"),
        OrdersCB(action="all", deal_id=closed, state="delivered"),
    ):
        answer = await harness.tap(OWNER, data)
        assert answer.show_alert and NOT_YOURS in answer.text, (data, answer.text)
    for action in ("open", "pause", "stock", "desc", "later", "rem", "remoff", "dup", "close"):
        answer = await harness.tap(OWNER, OwnerDealCB(action=action, deal_id=opened))
        assert answer.show_alert and "not yours" in answer.text, (action, answer.text)
    answer = await harness.tap(OWNER, OwnerDealCB(action="cancel_yes", deal_id=opened))
    assert answer.show_alert and "not yours" in answer.text
    assert NOT_YOURS in (await harness.say(OWNER, f"/orders D{closed}")).text
    code = await pickup_code(harness, alice)
    assert "No order has the pickup code" in (await harness.say(OWNER, f"/pickup {code}")).text
    assert "no deals" in (await harness.say(OWNER, "/deals")).text
    assert "no deals" in (await harness.say(OWNER, "/orders")).text
    assert await snapshot(harness) == before
    assert harness.api.of(SendDocument) == []
    texts = [m.text for m in harness.api.sent(OWNER.id)[sent_before:]]
    assert not any("Alice" in t for t in texts)


async def test_a_form_started_while_admin_is_refused_at_its_finishing_step(harness) -> None:
    _closed, opened, _ids = await staffed(harness)
    await harness.tap(OWNER, OwnerDealCB(action="stock", deal_id=opened))
    assert "How many units do you add?" in harness.last(OWNER).text
    await demote(harness, OWNER)
    before = await snapshot(harness)
    reply = await harness.say(OWNER, "10")
    assert "not yours" in reply.text
    assert await snapshot(harness) == before
    # the form is over: another number is no stock change either
    await harness.say(OWNER, "10")
    assert await snapshot(harness) == before


async def test_the_orphaned_deal_is_managed_by_the_current_administrators(harness) -> None:
    closed, opened, ids = await staffed(harness)
    await demote(harness, OWNER)
    page = await harness.say(HELPER, f"/orders D{closed}")
    assert "Alice" in page.text and "小王" in page.text
    answer = await harness.tap(
        HELPER, OrdersCB(action="paid", deal_id=closed, order_id=ids[ALICE.id])
    )
    assert answer.text == "Marked paid."
    answer = await harness.tap(BOSS, OwnerDealCB(action="stock", deal_id=opened))
    assert not answer.show_alert
    assert "How many units do you add?" in harness.last(BOSS).text
    await harness.say(BOSS, "5")
    assert "Stock of" in harness.last(BOSS).text
    listed = await harness.say(HELPER, "/deals")
    assert f"D{closed}" in listed.text and f"D{opened}" in listed.text
    async with harness.db.read() as s:
        paid = await s.scalar(select(Order.paid_at).where(Order.id == ids[ALICE.id]))
        stock = await s.scalar(select(Deal.stock_total).where(Deal.id == opened))
    assert paid is not None and stock == 25


async def test_an_admin_who_did_not_create_the_deal_cannot_manage_it(harness) -> None:
    closed, opened, ids = await staffed(harness)
    before = await snapshot(harness)
    assert NOT_YOURS in (await harness.say(HELPER, f"/orders D{closed}")).text
    answer = await harness.tap(
        HELPER, OrdersCB(action="paid", deal_id=closed, order_id=ids[ALICE.id])
    )
    assert answer.show_alert and NOT_YOURS in answer.text
    answer = await harness.tap(BOSS, OwnerDealCB(action="close", deal_id=opened))
    assert answer.show_alert and "not yours" in answer.text
    assert "no deals" in (await harness.say(HELPER, "/deals")).text
    assert await snapshot(harness) == before


async def test_leaving_the_group_loses_rights_and_promotion_restores_them(harness) -> None:
    closed, opened, ids = await staffed(harness)
    await demote(harness, OWNER, "left")
    answer = await harness.tap(OWNER, OrdersCB(action="list", deal_id=closed))
    assert answer.show_alert and NOT_YOURS in answer.text
    assert "Alice" in (await harness.say(HELPER, f"/orders D{closed}")).text

    await promote(harness, OWNER)
    assert "Alice" in (await harness.say(OWNER, f"/orders D{closed}")).text
    answer = await harness.tap(OWNER, OwnerDealCB(action="pause", deal_id=opened))
    assert answer.text == "Paused."
    answer = await harness.tap(HELPER, OrdersCB(action="list", deal_id=closed))
    assert answer.show_alert and NOT_YOURS in answer.text  # the creator is back in charge


async def test_a_stale_list_is_asked_again_before_an_action(harness) -> None:
    """No chat_member update arrived, but Telegram no longer lists the creator: once the
    stored list is older than its time to live, the action asks Telegram and is refused."""
    closed, _opened, ids = await staffed(harness)
    harness.api.set_admins(CHAT.id, BOSS, HELPER)
    async with harness.db.transaction() as s:
        g = await s.scalar(select(Group).where(Group.chat_id == CHAT.id))
        g.admins_refreshed_at = None
    answer = await harness.tap(
        OWNER, OrdersCB(action="paid", deal_id=closed, order_id=ids[ALICE.id])
    )
    assert answer.show_alert and NOT_YOURS in answer.text


async def scheduled_post(harness) -> int:
    async with harness.db.transaction() as s:
        group_id = await s.scalar(select(Group.id).where(Group.chat_id == CHAT.id))
        spec = calendar.PostSpec(text="Fresh mangoes every day", kind="daily",
                                 group_ids=[group_id], at_time="09:00")  # fmt: skip
        return (await calendar.create(s, OWNER.id, spec, utcnow())).id


async def paused(harness, post_id: int) -> bool:
    async with harness.db.read() as s:
        return bool(await s.scalar(select(ScheduledPost.paused).where(ScheduledPost.id == post_id)))


async def test_scheduled_posts_follow_the_same_rule(harness) -> None:
    await staffed(harness)
    post_id = await scheduled_post(harness)
    answer = await harness.tap(HELPER, ScheduleItemCB(action="pause", post_id=post_id))
    assert answer.show_alert and "no longer exists" in answer.text  # the creator is admin
    assert "#" not in (await harness.say(HELPER, "/schedule list")).text
    assert f"#{post_id}" in (await harness.say(OWNER, "/schedule list")).text

    await demote(harness, OWNER)
    answer = await harness.tap(OWNER, ScheduleItemCB(action="pause", post_id=post_id))
    assert answer.show_alert and "no longer exists" in answer.text
    answer = await harness.tap(OWNER, ScheduleItemCB(action="delete", post_id=post_id))
    assert answer.show_alert and "no longer exists" in answer.text
    assert f"#{post_id}" not in (await harness.say(OWNER, "/schedule list")).text
    assert not await paused(harness, post_id)

    assert f"#{post_id}" in (await harness.say(HELPER, "/schedule list")).text
    answer = await harness.tap(HELPER, ScheduleItemCB(action="pause", post_id=post_id))
    assert not answer.show_alert
    assert await paused(harness, post_id)


async def test_a_post_button_links_only_a_deal_the_person_manages(harness) -> None:
    _closed, opened, _ids = await staffed(harness)
    async with harness.db.read() as s:
        group_id = await s.scalar(select(Group.id).where(Group.chat_id == CHAT.id))
    spec = calendar.PostSpec(text="Lychees!", kind="daily", group_ids=[group_id],
                             at_time="09:00", deal_id=opened)  # fmt: skip
    async with harness.db.transaction() as s:
        with pytest.raises(ParseError):
            await calendar.create(s, HELPER.id, spec, utcnow())
    await demote(harness, OWNER)
    async with harness.db.transaction() as s:
        with pytest.raises(ParseError):
            await calendar.create(s, OWNER.id, spec, utcnow())
        assert (await calendar.create(s, HELPER.id, spec, utcnow())).deal_id == opened


class _Lists:
    """Stands in for the AdminDirectory: each group's current administrators."""

    def __init__(self, lists: dict[int, set[int]]) -> None:
        self.lists = lists

    async def admins_of(self, _session, group) -> set[int]:
        return self.lists[group.id]


CREATOR, ASKER, SOMEONE = 1, 2, 3


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sets(st.sampled_from([CREATOR, ASKER, SOMEONE])), min_size=1, max_size=4))
async def test_the_rule_over_any_administrator_lists(lists: list[set[int]]) -> None:
    groups = [Group(id=i + 1) for i in range(len(lists))]
    directory = _Lists({g.id: admins for g, admins in zip(groups, lists, strict=True)})
    creator_is_admin = any(CREATOR in a for a in lists)
    asker_is_admin = any(ASKER in a for a in lists)
    creator_manages = await rights.may_manage_in(None, directory, CREATOR, groups, CREATOR)
    asker_manages = await rights.may_manage_in(None, directory, CREATOR, groups, ASKER)
    assert creator_manages == creator_is_admin
    assert asker_manages == (asker_is_admin and not creator_is_admin)
    # never orphaned: if anyone administers one of the groups, somebody manages it
    if creator_is_admin or asker_is_admin:
        assert creator_manages or asker_manages
