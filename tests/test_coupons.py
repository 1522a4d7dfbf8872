"""Coupons and coupon packs through the real Dispatcher (services.coupons, handlers/coupons.py):
the owner's /coupon, claims from a group's /coupons (the per-member limit, replays, the last
coupon under concurrency), the best coupon at closing and on a flash sale's hold, switching
(a new invoice), giving back on cancellations and refunds (not when expired), and packs: one
level, never to oneself, once, the weekly limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from aiogram.methods import SendInvoice
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from bot.factory import create_app
from handlers.callbacks import CouponCB
from models import Coupon, CouponClaim, Database, Membership, Order, PackClaim
from services import coupons, fulfilment
from services.timezones import utcnow
from tests.builders import Updates, person
from tests.conftest import Harness, SettableClock, make_settings
from tests.fake_api import FakeTelegram
from tests.test_deal_closing import close_now, started
from tests.test_deal_post import ALICE, BOB, CAROL, GROUP, OWNER, press, ready

PROVIDER = "284685063:TEST:fake-provider-token"
DAVE = person(604, "Dave")


@pytest.fixture
async def harness(database_url, tmp_path, db: Database) -> AsyncIterator[Harness]:
    """The app with a payment provider configured (card payments)."""
    settings = make_settings(database_url, tmp_path, payment_provider_token=PROVIDER)
    api = FakeTelegram()
    app = create_app(settings, session=api, db=db, clock=SettableClock())
    yield Harness(app, api, Updates())
    await app.close()
    assert not api.refused, f"sent beyond Telegram's limits: {api.refused[0]!r}"[:500]


# ---------------------------------------------------------------- helpers


async def new_coupon(harness, rules: str) -> Coupon:
    answer = await harness.say(OWNER, f"/coupon 1 {rules}")
    assert "Coupon created" in answer.text, answer.text
    async with harness.db.read() as s:
        return await s.scalar(select(Coupon).order_by(Coupon.id.desc()).limit(1))


async def claim(harness, user, coupon_id: int):
    return await harness.tap(user, CouponCB(action="claim", id=coupon_id), GROUP)


async def claims(harness, user=None) -> list[CouponClaim]:
    async with harness.db.read() as s:
        query = select(CouponClaim).order_by(CouponClaim.id)
        if user is not None:
            query = query.where(CouponClaim.user_id == user.id)
        return list(await s.scalars(query))


async def coupon_row(harness, coupon_id: int) -> Coupon:
    async with harness.db.read() as s:
        return await s.get(Coupon, coupon_id)


async def order_of(harness, deal_id: int, user) -> Order:
    async with harness.db.read() as s:
        return await s.scalar(
            select(Order).where(Order.deal_id == deal_id, Order.user_id == user.id)
        )


async def invoices(harness, user) -> list[SendInvoice]:
    await harness.settle()
    return [i for i in harness.api.of(SendInvoice) if i.chat_id == user.id]


async def member(harness, group_id: int, *users) -> None:
    async with harness.db.transaction() as s:
        for user in users:
            s.add(Membership(group_id=group_id, user_id=user.id, status="member"))


async def hand_over(harness, order_id: int) -> None:
    async with harness.db.transaction() as s:
        await fulfilment.mark(s, order_id, OWNER.id, "picked_up", utcnow())
    await harness.settle()


# ---------------------------------------------------------------- the owner's rules


async def test_owner_creates_a_coupon_and_bad_rules_change_nothing(harness) -> None:
    group_id, deal_id = await ready(harness)
    text = (await harness.say(OWNER, "/coupon")).text
    assert "1. <b>Fruit Lovers</b>" in text and "/coupon 1 5.00" in text
    for rules, says in [
        ("95%", "1 to 90 %"),
        ("abc", "is not an amount or a percent"),
        ("5 days 0", "1 to 365"),
        ("5 days 3 until 2027-01-01", "not both"),
        ("5 deals D999", "name deals of that group"),
        ("5 limit", "/coupon 1 5.00"),
    ]:
        assert says in (await harness.say(OWNER, f"/coupon 1 {rules}")).text, rules
    # Someone who runs no group has no group number 1.
    assert "You do not run any group" in (await harness.say(ALICE, "/coupon 1 5")).text
    async with harness.db.read() as s:
        assert await s.scalar(select(func.count(Coupon.id))) == 0

    coupon = await new_coupon(harness, f"10% min 30 days 7 limit 2 total 50 deals D{deal_id}")
    assert (coupon.kind, coupon.value, coupon.min_order) == ("percent", 10, 3000)
    assert (coupon.valid_days, coupon.per_member, coupon.total) == (7, 2, 50)
    assert coupon.group_id == group_id and coupon.currency == "CNY"
    listed = (await harness.say(OWNER, "/coupon")).text
    assert f"C{coupon.id}</b> 10% off" in listed and f"only D{deal_id}" in listed

    # Ending stops new claims, and only an administrator of the group may end it.
    assert "does not exist" in (await harness.say(ALICE, f"/coupon end C{coupon.id}")).text
    assert "no new claims" in (await harness.say(OWNER, f"/coupon end C{coupon.id}")).text
    assert "can no longer be claimed" in (await claim(harness, ALICE, coupon.id)).text


# ---------------------------------------------------------------- claiming


async def test_members_claim_from_the_group_once_per_limit_and_replays_change_nothing(
    harness,
) -> None:
    await ready(harness)
    coupon = await new_coupon(harness, "5.00 min 10 days 7 limit 1 total 5")
    post = await harness.say(ALICE, "/coupons", GROUP)
    assert f"C{coupon.id}" in post.text
    assert list(harness.buttons(post).values()) == [CouponCB(action="claim", id=coupon.id).pack()]

    answer = await claim(harness, ALICE, coupon.id)
    assert answer.show_alert and "is yours" in answer.text
    assert "as many of this coupon" in (await claim(harness, ALICE, coupon.id)).text
    # The same update delivered twice: one claim.
    replay = harness.updates.callback(
        BOB, CouponCB(action="claim", id=coupon.id).pack(), chat=GROUP
    )
    await harness.feed(replay)
    await harness.feed(replay)
    assert [(c.user_id, c.seq) for c in await claims(harness)] == [(ALICE.id, 1), (BOB.id, 1)]
    assert (await coupon_row(harness, coupon.id)).claimed == 2
    # From private chat: only members of the coupon's group (Carol is none).
    assert (
        "does not exist" in (await harness.tap(CAROL, CouponCB(action="claim", id=coupon.id))).text
    )
    # A pack coupon is never claimed directly.
    pack = await new_coupon(harness, "3.00 total 5 pack")
    assert "does not exist" in (await claim(harness, ALICE, pack.id)).text


async def test_the_last_coupons_go_to_exactly_as_many_members(harness) -> None:
    await ready(harness)
    coupon = await new_coupon(harness, "5.00 limit 1 total 3")
    people = [person(7000 + n, f"M{n}") for n in range(10)]
    taps = [
        harness.updates.callback(p, CouponCB(action="claim", id=coupon.id).pack(), chat=GROUP)
        for p in people
    ]
    # and one member tapping five times at once: still one coupon for them
    eager = person(7100, "Eager")
    big = await new_coupon(harness, "1.00 limit 1 total 100")
    taps += [
        harness.updates.callback(eager, CouponCB(action="claim", id=big.id).pack(), chat=GROUP)
        for _ in range(5)
    ]
    await asyncio.gather(*(harness.feed(t) for t in taps))
    made = await claims(harness)
    assert len([c for c in made if c.coupon_id == coupon.id]) == 3
    assert len({c.user_id for c in made if c.coupon_id == coupon.id}) == 3
    assert [(c.user_id, c.seq) for c in made if c.coupon_id == big.id] == [(eager.id, 1)]
    assert (await coupon_row(harness, coupon.id)).claimed == 3
    assert (await coupon_row(harness, big.id)).claimed == 1
    assert "All of these coupons have been claimed" in (await claim(harness, ALICE, coupon.id)).text


# ---------------------------------------------------------------- redemption


async def test_closing_applies_the_best_coupon_once_and_the_member_can_switch(harness) -> None:
    _group, deal_id = await ready(
        harness, pay_method="card", min_kind="participants", min_value=1, stock=10
    )
    five = await new_coupon(harness, "5.00 min 20 limit 1 total 10")
    tenth = await new_coupon(harness, "10% limit 1 total 10")
    big_min = await new_coupon(harness, "9.00 min 100 total 10")  # over the order: never
    for c in (five, tenth, big_min):
        await claim(harness, ALICE, c.id)
    await started(harness, ALICE, BOB)
    await press(harness, ALICE, deal_id, "qty", 2)  # 2 × 12.50 = 25.00
    await press(harness, BOB, deal_id, "join")  # Bob has no coupon
    await close_now(harness, deal_id, OWNER.id)

    order = await order_of(harness, deal_id, ALICE)
    assert (order.amount, order.coupon_discount) == (2500, 500)
    [invoice] = await invoices(harness, ALICE)
    assert invoice.prices[0].amount == 2000 and "Coupon: −CN¥5.00" in invoice.description
    told = [m.text for m in harness.api.sent(ALICE.id) if "succeeded" in (m.text or "")]
    assert told and "Coupon: −CN¥5.00 (/coupons to choose another)" in told[-1]
    mine = {c.coupon_id: c for c in await claims(harness, ALICE)}
    assert mine[five.id].order_id == order.id and mine[five.id].redeemed_at is not None
    assert mine[tenth.id].order_id is None and mine[big_min.id].order_id is None
    assert (await order_of(harness, deal_id, BOB)).coupon_discount == 0

    # /coupons proposes the other coupon that applies (and none); switching re-invoices.
    shown = await harness.say(ALICE, "/coupons")
    buttons = harness.buttons(shown)
    use_tenth = CouponCB(action="use", id=mine[tenth.id].id, order=order.id).pack()
    assert buttons[f"D{deal_id}: use C{tenth.id} (−CN¥2.50)"] == use_tenth
    assert CouponCB(action="use", id=0, order=order.id).pack() in buttons.values()
    assert CouponCB(action="use", id=mine[big_min.id].id, order=order.id).pack() not in (
        buttons.values()
    )
    answer = await harness.tap(ALICE, use_tenth)
    assert "changed" in answer.text
    order = await order_of(harness, deal_id, ALICE)
    assert order.coupon_discount == 250
    assert (await invoices(harness, ALICE))[-1].prices[0].amount == 2250
    mine = {c.coupon_id: c for c in await claims(harness, ALICE)}
    assert mine[five.id].order_id is None and mine[five.id].redeemed_at is None
    assert mine[tenth.id].order_id == order.id
    # A forged switch: Bob cannot use Alice's claim, nor touch her order.
    forged = CouponCB(action="use", id=mine[five.id].id, order=order.id).pack()
    assert "cannot change its coupon" in (await harness.tap(BOB, forged)).text
    bob_order = await order_of(harness, deal_id, BOB)
    forged = CouponCB(action="use", id=mine[five.id].id, order=bob_order.id).pack()
    assert "cannot be used" in (await harness.tap(BOB, forged)).text


async def test_a_refund_gives_the_coupon_back_unless_it_expired(harness) -> None:
    _group, deal_id = await ready(harness, min_kind="participants", min_value=1)  # cash
    short = await new_coupon(harness, "2.00 days 1 limit 1 total 10")
    await claim(harness, ALICE, short.id)
    await claim(harness, BOB, short.id)
    await press(harness, ALICE, deal_id, "join")
    await press(harness, BOB, deal_id, "join")
    await close_now(harness, deal_id, OWNER.id)
    alice, bob = await order_of(harness, deal_id, ALICE), await order_of(harness, deal_id, BOB)
    assert alice.coupon_discount == bob.coupon_discount == 200

    async with harness.db.transaction() as s:
        await fulfilment.refund(s, alice.id, OWNER.id, utcnow())
    [back] = await claims(harness, ALICE)
    assert (back.order_id, back.redeemed_at, back.discount) == (None, None, 0)
    # Bob's claim expires before his refund: it stays spent.
    async with harness.db.transaction() as s:
        await fulfilment.refund(s, bob.id, OWNER.id, utcnow() + timedelta(days=2))
    [spent] = await claims(harness, BOB)
    assert spent.order_id == bob.id and spent.redeemed_at is not None


async def test_a_flash_hold_takes_a_coupon_and_gives_it_back_when_cancelled(harness) -> None:
    _group, deal_id = await ready(harness, pay_method="card", stock=5)  # a flash sale
    coupon = await new_coupon(harness, "3.00 limit 1 total 10")
    await claim(harness, ALICE, coupon.id)
    await started(harness, ALICE)
    await press(harness, ALICE, deal_id, "join")
    order = await order_of(harness, deal_id, ALICE)
    assert order.coupon_discount == 300
    assert (await invoices(harness, ALICE))[-1].prices[0].amount == 1250 - 300
    await press(harness, ALICE, deal_id, "qty", 2)  # the hold grows: the coupon stays
    assert (await invoices(harness, ALICE))[-1].prices[0].amount == 2500 - 300
    await press(harness, ALICE, deal_id, "cancel")
    [back] = await claims(harness, ALICE)
    assert back.order_id is None and back.redeemed_at is None
    assert (await order_of(harness, deal_id, ALICE)).coupon_discount == 0


async def test_a_failed_deal_redeems_nothing(harness) -> None:
    _group, deal_id = await ready(harness, min_kind="participants", min_value=3)
    coupon = await new_coupon(harness, "3.00 limit 1 total 10")
    await claim(harness, ALICE, coupon.id)
    await press(harness, ALICE, deal_id, "join")
    await close_now(harness, deal_id, OWNER.id)
    [mine] = await claims(harness, ALICE)
    assert mine.order_id is None and mine.redeemed_at is None


# ---------------------------------------------------------------- packs


async def pack_link_of(harness, user) -> str:
    text = (await harness.say(user, "/coupons")).text
    assert "start=pack_" in text, text
    start = text.index("start=pack_") + len("start=")
    return text[start : start + len("pack_") + 10]


async def test_a_pack_rewards_the_sharer_and_the_friend_once_one_level_never_oneself(
    harness,
) -> None:
    group_id, deal_id = await ready(harness, min_kind="participants", min_value=1, stock=20)
    reward = await new_coupon(harness, "4.00 days 30 total 10 pack")
    await member(harness, group_id, ALICE, BOB)
    alice_link = await pack_link_of(harness, ALICE)
    assert alice_link == await pack_link_of(harness, ALICE)  # one link per member and group

    assert "your own coupon pack" in (await harness.say(ALICE, f"/start {alice_link}")).text
    assert "You opened a coupon pack" in (await harness.say(BOB, f"/start {alice_link}")).text
    assert "You opened a coupon pack" in (await harness.say(BOB, f"/start {alice_link}")).text
    assert "unknown" in (await harness.say(BOB, "/start pack_zzzzzzzzzz")).text
    # Bob's own pack; Carol opens it (one level: Alice is never rewarded for Carol).
    bob_link = await pack_link_of(harness, BOB)
    assert "your own coupon pack" in (await harness.say(BOB, f"/start {bob_link}")).text
    await harness.say(CAROL, f"/start {bob_link}")
    assert "another member's" in (await harness.say(CAROL, f"/start {alice_link}")).text

    await started(harness, ALICE, BOB, CAROL)
    await press(harness, BOB, deal_id, "join")
    await press(harness, CAROL, deal_id, "join")
    await press(harness, DAVE, deal_id, "join")
    # Dave has ordered in the group: a pack is not for him.
    assert "not ordered in that group" in (await harness.say(DAVE, f"/start {alice_link}")).text
    await close_now(harness, deal_id, OWNER.id)
    bob_order = await order_of(harness, deal_id, BOB)
    await hand_over(harness, bob_order.id)
    await hand_over(harness, bob_order.id)  # a second mark changes nothing
    got = {(c.user_id, c.source) for c in await claims(harness)}
    assert got == {(ALICE.id, "pack"), (BOB.id, "pack")}
    assert "coupon pack paid off" in harness.last(ALICE).text

    await hand_over(harness, (await order_of(harness, deal_id, CAROL)).id)
    rewarded = [(c.user_id, c.coupon_id) for c in await claims(harness)]
    assert sorted(rewarded) == sorted(
        [(ALICE.id, reward.id), (BOB.id, reward.id), (BOB.id, reward.id), (CAROL.id, reward.id)]
    )
    assert (await coupon_row(harness, reward.id)).claimed == 4
    async with harness.db.read() as s:
        outcomes = sorted(o for o in await s.scalars(select(PackClaim.outcome)))
    assert outcomes == ["both", "both"]


async def test_the_sharer_is_rewarded_within_the_weekly_limit(harness, monkeypatch) -> None:
    monkeypatch.setattr(coupons, "PACK_WEEKLY_LIMIT", 1)
    group_id, deal_id = await ready(harness, min_kind="participants", min_value=1, stock=20)
    await new_coupon(harness, "4.00 total 10 pack")
    await member(harness, group_id, ALICE)
    link = await pack_link_of(harness, ALICE)
    for friend in (BOB, CAROL):
        await harness.say(friend, f"/start {link}")
        await press(harness, friend, deal_id, "join")
    await close_now(harness, deal_id, OWNER.id)
    for friend in (BOB, CAROL):
        await hand_over(harness, (await order_of(harness, deal_id, friend)).id)
    got = sorted(c.user_id for c in await claims(harness))
    assert got == sorted([ALICE.id, BOB.id, CAROL.id])  # Alice once, each friend once
    async with harness.db.read() as s:
        outcomes = sorted(o for o in await s.scalars(select(PackClaim.outcome)))
    assert outcomes == ["both", "friend"]


# ---------------------------------------------------------------- money and digests


@given(
    kind=st.sampled_from(["amount", "percent"]),
    value=st.integers(1, 10_000),
    amount=st.integers(0, 10**9),
    credit=st.integers(0, 10**9),
    minimum=st.integers(0, 10**6),
)
def test_a_discount_never_exceeds_what_is_left_and_percents_floor(
    kind, value, amount, credit, minimum
) -> None:
    if kind == "percent":
        value = value % 90 + 1
    coupon = Coupon(kind=kind, value=value, min_order=minimum, currency="CNY")
    room = max(amount - credit, 0)
    off = coupons.discount_of(coupon, amount, room)
    assert 0 <= off <= room
    if amount < minimum:
        assert off == 0
    elif kind == "percent":
        assert off == min(amount * value // 100, room)


async def test_the_digest_counts_claims_and_redemptions(harness) -> None:
    group_id, deal_id = await ready(harness, min_kind="participants", min_value=1)
    coupon = await new_coupon(harness, "1.00 total 10")
    await claim(harness, ALICE, coupon.id)
    await claim(harness, BOB, coupon.id)
    await press(harness, ALICE, deal_id, "join")
    await close_now(harness, deal_id, OWNER.id)
    now = utcnow()
    async with harness.db.read() as s:
        counted = await coupons.counts(s, [group_id], now - timedelta(hours=1), now)
    assert counted == (2, 1)
    # Changing a claim's time out of the period takes it out of the count.
    async with harness.db.transaction() as s:
        await s.execute(update(CouponClaim).values(claimed_at=now - timedelta(days=3)))
    async with harness.db.read() as s:
        assert await coupons.counts(s, [group_id], now - timedelta(hours=1), now) == (0, 1)


async def test_a_filled_team_takes_the_best_coupon_before_its_invoices(harness) -> None:
    from handlers.callbacks import TeamCB
    from models import Team

    _group, deal_id = await ready(
        harness, pay_method="card", min_kind="participants", min_value=5, stock=10
    )
    assert "Team buy" in (await harness.say(OWNER, f"/teambuy D{deal_id} 2 8.50 24")).text
    coupon = await new_coupon(harness, "10% min 5 limit 1 total 10")
    await claim(harness, BOB, coupon.id)
    await started(harness, ALICE, BOB)
    await harness.tap(ALICE, TeamCB(action="start", id=deal_id), GROUP)
    async with harness.db.read() as s:
        team_id = await s.scalar(select(Team.id))
    await harness.tap(BOB, TeamCB(action="join", id=team_id), GROUP)
    bob = await order_of(harness, deal_id, BOB)
    assert (bob.status, bob.amount, bob.coupon_discount) == ("confirmed", 850, 85)
    assert (await invoices(harness, BOB))[-1].prices[0].amount == 765
    assert (await order_of(harness, deal_id, ALICE)).coupon_discount == 0


WORDS = st.sampled_from(
    ["5.00", "10%", "95%", "0", "min", "30", "days", "7", "until", "2026-12-31", "limit", "1",
     "total", "100", "deals", "D3,D4", "pack", "0%", "１０％", "x", "", "-3", "9" * 12]
)  # fmt: skip


@given(st.lists(WORDS | st.text(max_size=8), max_size=10))
def test_coupon_rules_never_raise_anything_but_a_refusal_and_stay_in_bounds(words) -> None:
    from datetime import UTC, datetime

    from models import Group

    now = datetime(2026, 12, 1, tzinfo=UTC)
    shop = Group(chat_id=-1, title="g", timezone="Asia/Shanghai", currency="CNY", language="en")
    try:
        spec = coupons.parse_spec(words, shop, now)
    except coupons.BadCoupon:
        return
    assert (spec.valid_days is None) != (spec.valid_until is None)
    if spec.kind == "percent":
        assert 1 <= spec.value <= coupons.MAX_PERCENT
    else:
        assert spec.value > 0
    assert 1 <= spec.per_member <= coupons.MAX_PER_MEMBER and 1 <= spec.total <= coupons.MAX_TOTAL
    assert spec.min_order >= 0 and all(d > 0 for d in spec.deal_ids)
    if spec.valid_until is not None:
        assert now < spec.valid_until
    assert not (spec.pack and spec.deal_ids)
