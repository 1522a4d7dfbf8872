"""Deal share links: the Share button gives the presser their own t.me/<bot>?start=<code>,
opening it shows the deal in private with Join buttons and records a click, and orders placed
afterwards are attributed to the last sharer within the group's window — never to oneself,
never from another group, never after the window, never through unknown or revoked links."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiogram.methods import EditMessageText, SendPhoto
from sqlalchemy import delete, func, select, update

from handlers.callbacks import DealCB, PrivateDealCB
from models import Deal, DealPost, Group, Order, ShareClick, ShareLink
from services import orders as order_service
from services import referrals
from services.timezones import utcnow
from tests.builders import person
from tests.test_deal_post import (
    GROUP,
    OTHER,
    add_group,
    create_deal,
    press,
    publish_deal,
    ready,
    refresher,
)

ALICE = person(601, "Alice")
BOB = person(602, "Bob")
CAROL = person(603, "Carol")
DAVE = person(604, "Dave")


async def share(harness, user, deal_id, chat=GROUP) -> str:
    """Press Share in the group; the code of the presser's link."""
    answer = await press(harness, user, deal_id, "share", chat=chat)
    prefix = "https://t.me/tuan_test_bot?start="
    assert answer.url.startswith(prefix) and answer.url in answer.text
    code = answer.url.removeprefix(prefix)
    assert referrals.looks_like_code(code) and len(code) <= 32
    return code


async def start(harness, user, payload: str) -> list:
    before = len(harness.api.requests)
    await harness.send(user, f"/start {payload}")
    return [
        r
        for r in harness.api.requests[before:]
        if getattr(r, "chat_id", None) == user.id and hasattr(r, "reply_markup")
    ]


async def clicks(harness) -> list[tuple[str, int]]:
    async with harness.db.read() as s:
        rows = await s.scalars(select(ShareClick).order_by(ShareClick.id))
        return [(c.code, c.user_id) for c in rows]


async def order_of(harness, deal_id: int, user_id: int) -> Order:
    async with harness.db.read() as s:
        return await s.scalar(
            select(Order).where(Order.deal_id == deal_id, Order.user_id == user_id)
        )


async def age_clicks(harness, user_id: int, days: float) -> None:
    async with harness.db.transaction() as s:
        for click in await s.scalars(select(ShareClick).where(ShareClick.user_id == user_id)):
            click.clicked_at -= timedelta(days=days)


# ---------------------------------------------------------------- the Share button


async def test_share_button_gives_each_member_their_own_link(harness) -> None:
    group_id, deal_id = await ready(harness)
    alice = await share(harness, ALICE, deal_id)
    assert await share(harness, ALICE, deal_id) == alice  # the same link again
    bob = await share(harness, BOB, deal_id)
    assert bob != alice
    async with harness.db.read() as s:
        rows = {r.user_id: r for r in await s.scalars(select(ShareLink))}
    assert set(rows) == {ALICE.id, BOB.id}
    assert (rows[ALICE.id].code, rows[ALICE.id].deal_id, rows[ALICE.id].group_id) == (
        alice,
        deal_id,
        group_id,
    )
    # a deal not posted in this chat, and forged ids: refused, nothing stored
    for data in (DealCB(action="share", deal_id=deal_id + 1).pack(), f"dp:share:{2**40}:0"):
        await harness.feed(harness.updates.callback(CAROL, data, chat=GROUP))
        assert harness.api.answers()[-1].show_alert and harness.api.answers()[-1].url is None
    async with harness.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(ShareLink)) == 2


async def test_sharer_opening_their_own_link_gets_it_ready_to_forward(harness) -> None:
    _group_id, deal_id = await ready(harness)
    code = await share(harness, ALICE, deal_id)
    note, forward = await start(harness, ALICE, code)
    assert "This is your personal link for Mangoes" in note.text and "7 days" in note.text
    assert "Mangoes" in forward.text
    assert f"https://t.me/tuan_test_bot?start={code}" in forward.text
    assert await clicks(harness) == []


# ---------------------------------------------------------------- opening a link, Join


async def test_opening_a_link_shows_the_deal_and_join_from_private_is_attributed(
    harness,
) -> None:
    group_id, deal_id = await ready(harness)
    code = await share(harness, ALICE, deal_id)

    [card] = await start(harness, BOB, code)
    assert "A group-buy in Fruit Lovers" in card.text and "<b>Mangoes</b>" in card.text
    assert "/buy" not in card.text  # a group command, useless here
    data = harness.callbacks(card)
    assert PrivateDealCB(action="join", deal_id=deal_id, group_id=group_id).pack() in data
    assert await clicks(harness) == [(code, BOB.id)]

    joined = await harness.tap(
        BOB, PrivateDealCB(action="join", deal_id=deal_id, group_id=group_id)
    )
    assert joined.text == "You're in: Mangoes ×1."
    order = await order_of(harness, deal_id, BOB.id)
    assert (order.group_id, order.quantity, order.referrer_id, order.share_code) == (
        group_id,
        1,
        ALICE.id,
        code,
    )
    more = await harness.tap(
        BOB, PrivateDealCB(action="qty", deal_id=deal_id, group_id=group_id, qty=3)
    )
    assert more.text == "Your order for Mangoes is now ×3."
    await harness.app.settle()
    edits = [e for e in harness.api.of(EditMessageText) if e.chat_id == GROUP.id]
    assert "1. Bob ×3" in edits[-1].text  # the group's list follows

    # the replayed /start changes nothing; a forged group or deal id is refused
    assert len(await clicks(harness)) == 1
    for forged in (
        PrivateDealCB(action="join", deal_id=deal_id, group_id=group_id + 1),
        PrivateDealCB(action="join", deal_id=deal_id + 1, group_id=group_id),
        f"pdj:join:{2**40}:{group_id}:0",  # out of range: does not unpack, still answered
        f"pdj:qty:{deal_id}:{group_id}:-1",
        PrivateDealCB(action="bogus", deal_id=deal_id, group_id=group_id),
        PrivateDealCB(action="qty", deal_id=deal_id, group_id=group_id, qty=0),
    ):
        assert (await harness.tap(CAROL, forged)).show_alert
    assert await order_of(harness, deal_id, CAROL.id) is None


async def test_photo_deal_and_closed_deal_from_a_link(harness) -> None:
    group_id = await add_group(harness)
    deal_id = await create_deal(harness, [group_id], photo_file_id="AgADphoto")
    refresher(harness).interval = 0.05
    assert await publish_deal(harness, deal_id) == 1
    code = await share(harness, ALICE, deal_id)
    [card] = await start(harness, BOB, code)
    assert isinstance(card, SendPhoto) and len(card.caption) <= 1024

    async with harness.db.transaction() as s:
        await s.execute(update(Deal).where(Deal.id == deal_id).values(status="failed"))
    [closed] = await start(harness, CAROL, code)
    assert closed.reply_markup is None and "Closed" in closed.caption
    refused = await harness.tap(
        CAROL, PrivateDealCB(action="join", deal_id=deal_id, group_id=group_id)
    )
    assert refused.show_alert and "closed" in refused.text.lower()


async def test_unknown_revoked_and_unposted_links_record_nothing(harness) -> None:
    group_id, deal_id = await ready(harness)
    other_id = await add_group(harness, OTHER)
    code = await share(harness, ALICE, deal_id)
    async with harness.db.transaction() as s:
        # a link for a deal that is not posted in the link's group
        s.add(ShareLink(code="unposted123", deal_id=deal_id, group_id=other_id, user_id=DAVE.id))
        revoked = await referrals.share_link(s, deal_id, group_id, CAROL.id, utcnow())
        revoked_code = revoked.code
        await referrals.revoke_share(s, revoked_code, utcnow())

    for payload in ("nosuchcode", revoked_code, "unposted123", "deal_999999", "deal_x"):
        [reply] = await start(harness, BOB, payload)
        assert "This link is unknown or no longer valid" in reply.text
    assert await clicks(harness) == []

    # the deal's post is gone from the group: its links stop working too
    async with harness.db.transaction() as s:
        await s.execute(delete(DealPost).where(DealPost.deal_id == deal_id))
    [reply] = await start(harness, BOB, code)
    assert "This link is unknown or no longer valid" in reply.text
    assert await clicks(harness) == []

    # /start settings still reaches the settings screen, /start alone the welcome
    await start(harness, BOB, "settings")
    assert "You don't run any group with me yet" in harness.last(BOB).text


async def test_old_deal_payload_shows_the_deal_without_attribution(harness) -> None:
    group_id, deal_id = await ready(harness)
    [card] = await start(harness, BOB, f"deal_{deal_id}")
    assert "A group-buy in Fruit Lovers" in card.text and "Mangoes" in card.text
    assert await clicks(harness) == []
    data = PrivateDealCB(action="join", deal_id=deal_id, group_id=group_id)
    await harness.tap(BOB, data)
    order = await order_of(harness, deal_id, BOB.id)
    assert order.group_id == group_id and order.referrer_id is None and order.share_code is None


# ---------------------------------------------------------------- attribution rules


async def test_attribution_last_click_wins_and_applies_to_group_joins(harness) -> None:
    _group_id, deal_id = await ready(harness)
    alice = await share(harness, ALICE, deal_id)
    carol = await share(harness, CAROL, deal_id)
    await start(harness, BOB, alice)
    await start(harness, BOB, carol)  # the second sharer's link, opened later
    # Bob joins in the group itself: still the last click
    assert (await press(harness, BOB, deal_id, "join")).text.startswith("You're in")
    order = await order_of(harness, deal_id, BOB.id)
    assert (order.referrer_id, order.share_code) == (CAROL.id, carol)

    # a quantity change is not a new order: the attribution stays
    await start(harness, BOB, alice)
    await press(harness, BOB, deal_id, "qty", 2)
    assert (await order_of(harness, deal_id, BOB.id)).referrer_id == CAROL.id
    # cancelled and placed again: attributed anew (Alice's link was opened last)
    await press(harness, BOB, deal_id, "cancel")
    await press(harness, BOB, deal_id, "join")
    order = await order_of(harness, deal_id, BOB.id)
    assert (order.referrer_id, order.share_code) == (ALICE.id, alice)


async def test_attribution_never_to_oneself(harness) -> None:
    group_id, deal_id = await ready(harness)
    alice = await share(harness, ALICE, deal_id)
    await start(harness, ALICE, alice)  # opening her own link is not a click
    bob = await share(harness, BOB, deal_id)
    await start(harness, ALICE, bob)
    # a click on one's own link that got stored anyway (forged row) is ignored too
    async with harness.db.transaction() as s:
        s.add(ShareClick(code=alice, group_id=group_id, user_id=ALICE.id, clicked_at=utcnow()))
    await press(harness, ALICE, deal_id, "join")
    order = await order_of(harness, deal_id, ALICE.id)
    assert (order.referrer_id, order.share_code) == (BOB.id, bob)

    # only her own click: nobody is credited
    await press(harness, CAROL, deal_id, "join")
    assert (await order_of(harness, deal_id, CAROL.id)).referrer_id is None
    async with harness.db.transaction() as s:
        found = await referrals.attribute(s, user_id=ALICE.id, group_id=group_id, now=utcnow())
    assert found == referrals.Attribution(BOB.id, bob)
    async with harness.db.transaction() as s:
        await s.execute(delete(ShareClick).where(ShareClick.code == bob))
        found = await referrals.attribute(s, user_id=ALICE.id, group_id=group_id, now=utcnow())
    assert found is None


async def test_attribution_window_is_the_groups_setting(harness) -> None:
    group_id, deal_id = await ready(harness)
    code = await share(harness, ALICE, deal_id)
    await start(harness, BOB, code)
    await start(harness, CAROL, code)
    await age_clicks(harness, BOB.id, 7.01)  # just outside the default 7 days
    await age_clicks(harness, CAROL.id, 6.99)  # just inside
    await press(harness, BOB, deal_id, "join")
    await press(harness, CAROL, deal_id, "join")
    assert (await order_of(harness, deal_id, BOB.id)).referrer_id is None
    assert (await order_of(harness, deal_id, CAROL.id)).referrer_id == ALICE.id

    # the owner widens the window to 10 days: Bob's next order counts; 0 turns it off
    async with harness.db.transaction() as s:
        await s.execute(update(Group).where(Group.id == group_id).values(attribution_days=10))
    await press(harness, BOB, deal_id, "cancel")
    await press(harness, BOB, deal_id, "join")
    assert (await order_of(harness, deal_id, BOB.id)).referrer_id == ALICE.id
    async with harness.db.transaction() as s:
        await s.execute(update(Group).where(Group.id == group_id).values(attribution_days=0))
    await press(harness, CAROL, deal_id, "cancel")
    await press(harness, CAROL, deal_id, "join")
    assert (await order_of(harness, deal_id, CAROL.id)).referrer_id is None


async def test_a_click_in_one_group_does_not_credit_orders_in_another(harness) -> None:
    refresher(harness).interval = 0.05
    first = await add_group(harness, GROUP)
    second = await add_group(harness, OTHER)
    deal_id = await create_deal(harness, [first, second])
    assert await publish_deal(harness, deal_id) == 2
    code = await share(harness, ALICE, deal_id, chat=GROUP)
    await start(harness, BOB, code)
    await press(harness, BOB, deal_id, "join", chat=OTHER)
    order = await order_of(harness, deal_id, BOB.id)
    assert order.group_id == second and order.referrer_id is None

    # a revoked link's earlier clicks stop counting as well
    await start(harness, CAROL, code)
    async with harness.db.transaction() as s:
        await referrals.revoke_share(s, code, utcnow())
    await press(harness, CAROL, deal_id, "join", chat=GROUP)
    assert (await order_of(harness, deal_id, CAROL.id)).referrer_id is None
    # and the sharer's next Share press gives a fresh, working link
    fresh = await share(harness, ALICE, deal_id, chat=GROUP)
    assert fresh != code
    [card] = await start(harness, DAVE, fresh)
    assert "A group-buy in Fruit Lovers" in card.text


async def test_concurrent_orders_are_attributed_exactly(harness) -> None:
    group_id, deal_id = await ready(harness, stock=25)
    sharers = [person(700 + i, f"Sharer{i}") for i in range(3)]
    codes = [await share(harness, p, deal_id) for p in sharers]
    buyers = [person(800 + i, f"Buyer{i}") for i in range(40)]
    for i, buyer in enumerate(buyers):
        if i % 2 == 0:  # half of them came through a link
            await start(harness, buyer, codes[i % 3])
    taps = []
    for i, buyer in enumerate(buyers):
        data = PrivateDealCB(action="join", deal_id=deal_id, group_id=group_id)
        taps.append(harness.updates.callback(buyer, data.pack()))
        if i % 5 == 0:
            taps.append(taps[-1])  # a replay of the same tap
    results = await asyncio.gather(*(harness.feed(u) for u in taps), return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)]

    async with harness.db.read() as s:
        orders = list(await s.scalars(select(Order).where(Order.status == "active")))
    assert len(orders) == 25  # the stock, never more
    by_buyer = {b.id: i for i, b in enumerate(buyers)}
    for order in orders:
        i = by_buyer[order.user_id]
        expected = sharers[i % 3].id if i % 2 == 0 else None
        assert order.referrer_id == expected
        assert order.share_code == (codes[i % 3] if i % 2 == 0 else None)


async def test_attribute_service_without_a_group(harness) -> None:
    group_id, deal_id = await ready(harness)
    async with harness.db.transaction() as s:
        assert await referrals.attribute(s, user_id=BOB.id, group_id=None, now=utcnow()) is None
        change = await order_service.set_quantity(s, deal_id, BOB.id, 1, utcnow())
        assert change.order.referrer_id is None and change.order.group_id is None
