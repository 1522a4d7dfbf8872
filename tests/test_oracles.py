"""Oracles (issue 12, class 5), through the real Dispatcher on both databases: an answer to
someone without rights does not tell what exists. Another owner's pickup code, deal, order
or group, typed or forged, gets exactly the answer (text and buttons) of one that does not
exist, and changes nothing."""

from __future__ import annotations

from sqlalchemy import select

from handlers.callbacks import OrdersCB, SettingsCB
from models import Deal, Order
from tests.test_deal_wizard import add_group
from tests.test_owner_orders import OTHER_OWNER, OWNER, WANG, make_deal, order_rows


def same(one, two, *, typed: tuple[str, str] = ("", "")) -> None:
    """The two answers are identical, but for the echo of what was typed."""
    assert one.text.replace(typed[0], "«typed»") == two.text.replace(typed[1], "«typed»")
    assert one.reply_markup == two.reply_markup


async def test_pickup_code_of_another_owner_is_answered_like_an_unknown_one(harness) -> None:
    deal_id, ids = await make_deal(harness, [(WANG, 1)], owner=OTHER_OWNER, close=True)
    async with harness.db.read() as s:
        code = await s.scalar(select(Order.pickup_code).where(Order.id == ids[WANG.id]))
    unknown = "ZZ" + code[2:] if not code.startswith("ZZ") else "YY" + code[2:]
    theirs = await harness.say(OWNER, f"/pickup {code}")
    nobody = await harness.say(OWNER, f"/pickup {unknown}")
    same(theirs, nobody, typed=(code, unknown))
    assert "No order has the pickup code" in theirs.text
    assert await order_rows(harness, deal_id) == [(WANG.id, "confirmed", "none")]
    await harness.settle()
    assert harness.api.sent(WANG.id) == []


async def test_a_deal_of_another_owner_is_answered_like_an_unknown_one(harness) -> None:
    deal_id, ids = await make_deal(harness, [(WANG, 1)], owner=OTHER_OWNER, close=True)
    missing = deal_id + 1000
    for command in ("/orders D{}", "/commission D{} 8", "/commission D{} off"):
        theirs = await harness.say(OWNER, command.format(deal_id))
        nobody = await harness.say(OWNER, command.format(missing))
        same(theirs, nobody)
    for data in (
        OrdersCB(action="list", deal_id=deal_id),
        OrdersCB(action="csv", deal_id=deal_id),
        OrdersCB(action="all", deal_id=deal_id, state="ready"),
        OrdersCB(action="order", deal_id=deal_id, order_id=ids[WANG.id]),
        OrdersCB(action="mark", deal_id=deal_id, order_id=ids[WANG.id], state="ready"),
    ):
        theirs = await harness.tap(OWNER, data)
        nobody = await harness.tap(
            OWNER, data.model_copy(update={"deal_id": missing, "order_id": missing})
        )
        assert (theirs.text, theirs.show_alert) == (nobody.text, nobody.show_alert), data
    async with harness.db.read() as s:
        assert (await s.get(Deal, deal_id)).commission_bp is None
    assert await order_rows(harness, deal_id) == [(WANG.id, "confirmed", "none")]


async def test_a_group_one_does_not_run_is_answered_like_an_unknown_one(harness) -> None:
    gid = await add_group(harness, owner=OTHER_OWNER)
    for action in ("open", "tz", "cur"):
        theirs = await harness.tap(OWNER, SettingsCB(action=action, group_id=gid))
        nobody = await harness.tap(OWNER, SettingsCB(action=action, group_id=gid + 1000))
        assert (theirs.text, theirs.show_alert) == (nobody.text, nobody.show_alert), action
        assert theirs.show_alert
