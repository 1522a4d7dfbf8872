"""Bargains with friends (砍价): the owner's /bargain, a member's bargain started from the deal
post, its page in private from its link, friends' helps (once each, never one's own, never a
bot or an anonymous sender, a daily cap), the buy at the price reached through the one
order action, expiry and the deal's closing; replays and many simultaneous helps change
each thing exactly once; the cuts are seeded, auditable and sum exactly to start − floor."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from aiogram.methods import SendInvoice
from aiogram.types import User as TgUser
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.factory import create_app
from handlers.callbacks import BargainCB
from models import Bargain, BargainHelp, Deal, HelpDay, Order, OutboxMessage
from scheduler.jobs import TickResult, expire_bargains
from services import bargains, deals, privacy
from services.timezones import utcnow
from tests.builders import Updates, person
from tests.conftest import Harness, SettableClock, make_settings
from tests.fake_api import FakeTelegram
from tests.test_deal_post import GROUP, OWNER, press, ready

ALICE = person(601, "Alice")
BOB = person(602, "Bob")
CAROL = person(603, "Carol")
DAVE = person(604, "Dave")
ROBOT = TgUser(id=777_000_001, is_bot=True, first_name="Robo")
ANONYMOUS = person(1087968824, "Group")
LINK = "https://t.me/tuan_test_bot?start="
PROVIDER = "284685063:TEST:fake-provider-token"


# ---------------------------------------------------------------- the cuts


@settings(max_examples=300, deadline=None)
@given(
    seed=st.text(max_size=40),
    k=st.integers(min_value=1, max_value=50),
    extra=st.integers(min_value=0, max_value=10**9),
)
def test_cuts_are_at_least_one_unit_sum_exactly_and_are_reproducible(seed, k, extra) -> None:
    total = k + extra
    drawn = bargains.cuts(seed, total, k)
    assert len(drawn) == k
    assert sum(drawn) == total
    assert all(cut >= 1 for cut in drawn)
    assert drawn == sorted(drawn, reverse=True)  # the first friends cut most
    assert bargains.cuts(seed, total, k) == drawn  # the same seed, the same schedule


def test_cuts_depend_on_the_seed_and_refuse_an_impossible_schedule() -> None:
    schedules = {tuple(bargains.cuts(f"seed-{n}", 400, 5)) for n in range(20)}
    assert len(schedules) > 10
    assert bargains.cuts("x", 5, 5) == [1, 1, 1, 1, 1]
    for total, k in ((4, 5), (10, 0)):
        try:
            bargains.cuts("x", total, k)
        except ValueError:
            continue
        raise AssertionError((total, k))


# ---------------------------------------------------------------- helpers


async def offer(harness, rules: str = "12.00 8.00 5 24", **overrides) -> tuple[int, int]:
    """A published deal (unit price 12.50) whose owner offers bargains: (group, deal)."""
    group_id, deal_id = await ready(harness, **overrides)
    answer = await harness.say(OWNER, f"/bargain D{deal_id} {rules}")
    assert answer.text.startswith(f"D{deal_id}: ✂️ Bargain: from"), answer.text
    return group_id, deal_id


async def begin(harness, user, deal_id) -> str:
    """`user` taps ✂️ Bargain on the group's post: the code of their bargain's link."""
    answer = await harness.tap(user, BargainCB(action="start", id=deal_id), GROUP)
    assert answer.url is not None and answer.url.startswith(LINK + "bargain_"), answer
    return answer.url.removeprefix(LINK + "bargain_")


async def bargain_of(harness, code: str) -> Bargain:
    async with harness.db.read() as s:
        return await s.scalar(select(Bargain).where(Bargain.code == code))


async def helps_of(harness, bargain_id: int) -> list[tuple[int, int, int]]:
    async with harness.db.read() as s:
        rows = await s.scalars(
            select(BargainHelp)
            .where(BargainHelp.bargain_id == bargain_id)
            .order_by(BargainHelp.seq)
        )
        return [(h.seq, h.helper_id, h.amount) for h in rows]


async def help_(harness, user, bargain_id: int):
    return await harness.tap(user, BargainCB(action="help", id=bargain_id))


# ---------------------------------------------------------------- the owner's rules


async def test_owner_sets_checks_shows_and_removes_the_bargain_offer(harness) -> None:
    _group_id, deal_id = await ready(harness)
    code = f"D{deal_id}"
    assert "offers no bargain" in (await harness.say(OWNER, f"/bargain {code}")).text
    refusals = {
        "13.00 8.00 5 24": "at most the unit price",  # unit price 12.50
        "12.00 12.00 5 24": "below its start",
        "12.00 8.00 51 24": "2 to 50 helps",
        "12.00 8.00 1 24": "2 to 50 helps",
        "0.05 0 10 24": "smallest unit",
        "12.00 8.00 5 73": "1 to 72 hours",
        "12.00 8.00 5": "Usage",
        "12 abc 5 24": "",
    }
    for rules, expected in refusals.items():
        answer = await harness.say(OWNER, f"/bargain {code} {rules}")
        assert expected in answer.text, (rules, answer.text)
        assert "offers no bargain" not in answer.text
    async with harness.db.read() as s:
        assert (await s.get(Deal, deal_id)).bargain_helps is None  # nothing was stored
    assert "Usage" in (await harness.say(ALICE, "/bargain")).text
    assert "Bargain" not in (await harness.say(ALICE, f"/bargain {code} 12 8 5 24")).text

    answer = await harness.say(OWNER, f"/bargain {code} 12 0 5 24h")
    assert "from CN¥12.00 down to <b>CN¥0.00</b> with 5 friends' helps within 24 h" in answer.text
    answer = await harness.say(OWNER, f"/bargain {code} off")
    assert "offers no bargain" in answer.text
    await harness.say(OWNER, f"/bargain {code} 12.00 8.00 5 24")
    async with harness.db.read() as s:
        deal = await s.get(Deal, deal_id)
    assert (deal.bargain_start_price, deal.bargain_floor_price, deal.bargain_helps) == (
        1200,
        800,
        5,
    )
    assert deal.bargain_hours == 24
    # the post shows the offer and a ✂️ Bargain button
    await harness.settle()
    post = harness.last_edit(GROUP)
    assert "✂️ Bargain: from" in post.text
    assert BargainCB(action="start", id=deal_id).pack() in harness.callbacks(post)
    # fixed once a bargain exists
    await begin(harness, ALICE, deal_id)
    answer = await harness.say(OWNER, f"/bargain {code} off")
    assert "can no longer change" in answer.text


# ---------------------------------------------------------------- the whole conversation


async def test_friends_cut_the_price_and_the_starter_buys_at_the_price_reached(harness) -> None:
    _group_id, deal_id = await offer(harness)
    code = await begin(harness, ALICE, deal_id)
    assert await begin(harness, ALICE, deal_id) == code  # tapping again: the same bargain
    bargain = await bargain_of(harness, code)
    schedule = json.loads(bargain.schedule)
    assert schedule == bargains.cuts(bargain.seed, 400, 5)  # auditable from its seed
    assert (bargain.price, bargain.helps, bargain.helps_needed, bargain.status) == (
        1200,
        0,
        5,
        "open",
    )

    # Alice's own page: progress, Buy at the price now, her link; no Help button
    page = await harness.say(ALICE, f"/start bargain_{code}")
    assert (
        "From CN¥12.00 down to CN¥8.00" in page.text and "Price now: <b>CN¥12.00</b>" in page.text
    )
    assert "Helps: 0/5" in page.text and f"{LINK}bargain_{code}" in page.text
    buttons = harness.buttons(page)
    assert buttons["🛒 Buy at CN¥12.00"] == BargainCB(action="buy", id=bargain.id).pack()
    assert not any("Help" in text for text in buttons)
    # her own help is refused
    own = await help_(harness, ALICE, bargain.id)
    assert own.show_alert and "your own bargain" in own.text

    # Bob opens the link: the page with Help cut; he helps once
    page = await harness.say(BOB, f"/start bargain_{code}")
    assert "Started by Alice in Fruit Lovers" in page.text
    assert harness.callbacks(page) == [BargainCB(action="help", id=bargain.id).pack()]
    answer = await help_(harness, BOB, bargain.id)
    first = schedule[0]
    assert (
        answer.text
        == f"You cut CN¥{first / 100:.2f} off! The price is now CN¥{(1200 - first) / 100:.2f}."
    )
    again = await help_(harness, BOB, bargain.id)
    assert "already helped" in again.text
    # a bot and an anonymous sender cannot help (the gate for people refuses them first;
    # the service refuses them too)
    for who in (ROBOT, ANONYMOUS):
        refused = await help_(harness, who, bargain.id)
        assert refused.show_alert and "from your own account" in refused.text
        try:
            bargains.check_helper(bargain, who.id, who.is_bot)
        except bargains.NotAPerson:
            continue
        raise AssertionError(who)
    await help_(harness, CAROL, bargain.id)
    assert await helps_of(harness, bargain.id) == [
        (1, BOB.id, schedule[0]),
        (2, CAROL.id, schedule[1]),
    ]
    bargain = await bargain_of(harness, code)
    reached = 1200 - schedule[0] - schedule[1]
    assert (bargain.helps, bargain.price) == (2, reached)

    # Alice is told of each help, in private (the outbox)
    await harness.settle()
    notes = [t for t in harness.api.texts(ALICE.id) if "A friend cut the price" in t]
    assert len(notes) == 2 and f"now CN¥{reached / 100:.2f}" in notes[-1]
    assert "3 more helps to reach the floor" in notes[-1]
    # Bob's page shows the progress, Bob cannot buy at Alice's price
    page = await harness.say(BOB, f"/start bargain_{code}")
    assert "Helps: 2/5 · 2 friends helped" in page.text
    assert (
        "Only the member who started"
        in (await harness.tap(BOB, BargainCB(action="buy", id=bargain.id))).text
    )

    # Alice buys: one order, confirmed at once at the price reached
    bought = await harness.tap(ALICE, BargainCB(action="buy", id=bargain.id))
    assert bought.text == f"Bought at CN¥{reached / 100:.2f}! Details in private chat."
    async with harness.db.read() as s:
        order = await s.scalar(select(Order).where(Order.deal_id == deal_id))
        deal = await s.get(Deal, deal_id)
    assert (order.user_id, order.status, order.unit_price, order.amount) == (
        ALICE.id,
        "confirmed",
        reached,
        reached,
    )
    assert (order.bargain_id, order.quantity, order.via) == (bargain.id, 1, "bargain")
    assert (deal.total_qty, deal.participants) == (1, 1)
    bargain = await bargain_of(harness, code)
    assert bargain.status == "bought"
    await harness.settle()
    assert "1. Alice ×1 ✂️" in harness.last_edit(GROUP).text  # the post's sign-up list
    assert any(
        "You bought Mangoes" in t and order.pickup_code in t for t in harness.api.texts(ALICE.id)
    )
    # over now: no more helps, no second buy, no changing the order from the post
    assert "already bought" in (await help_(harness, DAVE, bargain.id)).text
    assert (
        "already bought" in (await harness.tap(ALICE, BargainCB(action="buy", id=bargain.id))).text
    )
    cancel = await press(harness, ALICE, deal_id, "cancel")
    assert "bought through a bargain" in cancel.text
    page = await harness.say(ALICE, f"/start bargain_{code}")
    assert "Bought at" in page.text and page.reply_markup is None

    # the owner's books count the bargain's order at its own price
    books = await harness.say(OWNER, f"/orders D{deal_id}")
    assert f"Expected revenue: CN¥{reached / 100:.2f} (CNY)" in books.text, books.text
    # the owner sees the bargain and its helpers
    listing = await harness.say(OWNER, f"/bargains D{deal_id}")
    assert "1 bargain" in listing.text and "Alice:" in listing.text and "bought" in listing.text
    assert "Helped by: Bob, Carol" in listing.text
    assert "Usage" in (await harness.say(OWNER, "/bargains")).text
    assert "Helped by" not in (await harness.say(BOB, f"/bargains D{deal_id}")).text

    # the deal succeeds: the bargain's order keeps its price, and is not confirmed twice
    async with harness.db.transaction() as s:
        closing = await deals.close(s, deal_id, utcnow())
    assert closing is not None and order.id not in [o.id for o in closing.orders]
    async with harness.db.read() as s:
        order = await s.get(Order, order.id)
    assert (order.status, order.unit_price) == ("confirmed", reached)


async def test_a_member_holding_an_order_cannot_bargain_and_the_floor_is_the_end(harness) -> None:
    _group_id, deal_id = await offer(harness, "12.00 11.97 3 24")
    await press(harness, BOB, deal_id, "join")
    refused = await harness.tap(BOB, BargainCB(action="start", id=deal_id), GROUP)
    assert "already ordered this deal" in refused.text
    code = await begin(harness, ALICE, deal_id)
    bargain = await bargain_of(harness, code)
    assert json.loads(bargain.schedule) == [1, 1, 1]
    for helper in (BOB, CAROL, DAVE):
        await help_(harness, helper, bargain.id)
    done = await help_(harness, person(605, "Eve"), bargain.id)
    assert "all its helps" in done.text
    bargain = await bargain_of(harness, code)
    assert (bargain.helps, bargain.price) == (3, 1197)
    await harness.settle()
    assert any("The floor price is reached" in t for t in harness.api.texts(ALICE.id))
    # a forged bargain id
    assert "does not exist" in (await help_(harness, BOB, 2**31 - 1)).text
    for payload in ("bargain_nope", "bargain_" + "x" * 10, f"bargain_{bargain.code}!"):
        page = await harness.say(BOB, f"/start {payload}")
        assert page.text.startswith("This link is unknown"), (payload, page.text)


async def test_the_daily_cap_counts_helps_across_bargains(harness) -> None:
    _group_id, deal_id = await offer(harness, closes_at=utcnow() + timedelta(days=2))
    starters = [person(700 + n, f"S{n}") for n in range(bargains.DAILY_HELPS + 1)]
    ids = []
    for starter in starters:
        ids.append((await bargain_of(harness, await begin(harness, starter, deal_id))).id)
    for bargain_id in ids[:-1]:
        answer = await help_(harness, BOB, bargain_id)
        assert answer.text.startswith("You cut")
    capped = await help_(harness, BOB, ids[-1])
    assert "5 bargains a day" in capped.text
    async with harness.db.read() as s:
        day = await s.scalar(select(HelpDay).where(HelpDay.helper_id == BOB.id))
        last = await s.get(Bargain, ids[-1])
    assert day.helps == bargains.DAILY_HELPS and last.helps == 0
    # the next UTC day (within the bargains' 24 hours), Bob may help again
    tomorrow = (utcnow() + timedelta(days=1)).replace(hour=0, minute=1, second=0)
    harness.clock.set(tomorrow)
    assert (await help_(harness, BOB, ids[-1])).text.startswith("You cut")


async def test_a_replayed_help_changes_nothing(harness) -> None:
    _group_id, deal_id = await offer(harness)
    bargain = await bargain_of(harness, await begin(harness, ALICE, deal_id))
    update = harness.updates.callback(BOB, BargainCB(action="help", id=bargain.id).pack())
    for _ in range(3):
        await harness.feed(update)
    assert len(await helps_of(harness, bargain.id)) == 1
    async with harness.db.read() as s:
        again = await s.get(Bargain, bargain.id)
        day = await s.scalar(select(HelpDay.helps).where(HelpDay.helper_id == BOB.id))
        notes = await s.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.chat_id == ALICE.id)
        )
    assert (again.helps, again.price, day, notes) == (
        1,
        1200 - json.loads(bargain.schedule)[0],
        1,
        1,
    )


async def test_twenty_simultaneous_helps_take_exactly_the_five_cuts(harness) -> None:
    _group_id, deal_id = await offer(harness, "12.00 8.00 5 24")
    bargain = await bargain_of(harness, await begin(harness, ALICE, deal_id))
    helpers = [person(10_000 + n, f"H{n}") for n in range(20)]
    updates = [
        harness.updates.callback(h, BargainCB(action="help", id=bargain.id).pack()) for h in helpers
    ]
    before = len(harness.api.answers())
    await asyncio.gather(*(harness.feed(u) for u in updates))
    answers = [a.text for a in harness.api.answers()[before:]]
    assert len(answers) == 20
    assert sum(a.startswith("You cut") for a in answers) == 5, answers
    assert sum("all its helps" in a for a in answers) == 15, answers
    bargain = await bargain_of(harness, bargain.code)
    assert (bargain.helps, bargain.price) == (5, 800)
    helps = await helps_of(harness, bargain.id)
    assert [seq for seq, _h, _a in helps] == [1, 2, 3, 4, 5]
    assert [amount for _s, _h, amount in helps] == json.loads(bargain.schedule)
    async with harness.db.read() as s:
        counted = await s.scalar(select(func.sum(HelpDay.helps)))
    assert counted == 5  # the refused helps used none of their helpers' day


async def test_a_bargain_not_bought_in_time_expires_once(harness) -> None:
    _group_id, deal_id = await offer(harness, "12.00 8.00 5 1")
    bargain = await bargain_of(harness, await begin(harness, ALICE, deal_id))
    await help_(harness, BOB, bargain.id)
    later = utcnow() + timedelta(hours=1, minutes=1)
    harness.clock.set(later)
    assert "over" in (await help_(harness, CAROL, bargain.id)).text
    assert "over" in (await harness.tap(ALICE, BargainCB(action="buy", id=bargain.id))).text
    for _ in range(2):
        result = TickResult()
        await expire_bargains(harness.app, later, result)
    bargain = await bargain_of(harness, bargain.code)
    assert bargain.status == "expired" and bargain.closed_at is not None
    await harness.settle()
    assert sum("ran out of time" in t for t in harness.api.texts(ALICE.id)) == 1
    async with harness.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Order)) == 0


async def test_the_deals_closing_ends_its_open_bargains_and_a_cancel_takes_bought_ones(
    harness,
) -> None:
    _group_id, deal_id = await offer(harness)
    open_one = await bargain_of(harness, await begin(harness, ALICE, deal_id))
    bought_one = await bargain_of(harness, await begin(harness, BOB, deal_id))
    await help_(harness, CAROL, bought_one.id)
    await harness.tap(BOB, BargainCB(action="buy", id=bought_one.id))
    async with harness.db.transaction() as s:
        closing = await deals.close(s, deal_id, utcnow(), cancel=True)
    assert closing.outcome == "cancelled"
    assert [o.user_id for o in closing.orders] == [BOB.id]  # told and refunded with the deal
    async with harness.db.read() as s:
        assert (await s.get(Bargain, open_one.id)).status == "expired"
        assert (await s.get(Bargain, bought_one.id)).status == "bought"
        order = await s.scalar(select(Order).where(Order.user_id == BOB.id))
    assert order.status == "cancelled"
    await harness.settle()
    assert any("closed before you bought" in t for t in harness.api.texts(ALICE.id))


async def test_who_helped_is_in_mydata_and_forgotten_by_forgetme(harness) -> None:
    _group_id, deal_id = await offer(harness)
    bargain = await bargain_of(harness, await begin(harness, ALICE, deal_id))
    await help_(harness, BOB, bargain.id)
    async with harness.db.read() as s:
        mine = await privacy.export(s, BOB.id)
    assert [row["bargain_id"] for row in mine["tables"]["bargain_helps"]] == [bargain.id]
    assert mine["tables"]["bargain_help_days"][0]["helps"] == 1
    async with harness.db.transaction() as s:
        await privacy.forget(s, BOB.id)
    async with harness.db.read() as s:
        helps = list(await s.scalars(select(BargainHelp)))
        days = await s.scalar(select(func.count()).select_from(HelpDay))
    assert len(helps) == 1 and helps[0].helper_id != BOB.id  # the cut stays, anonymised
    assert days == 0
    listing = await harness.say(OWNER, f"/bargains D{deal_id}")
    assert "Bob" not in listing.text and "Helped by: a member" in listing.text


async def test_simultaneous_helps_of_one_account_count_once_and_never_pass_the_cap(
    harness,
) -> None:
    _group_id, deal_id = await offer(harness)
    starters = [person(800 + n, f"S{n}") for n in range(8)]
    ids = [(await bargain_of(harness, await begin(harness, s, deal_id))).id for s in starters]
    # Bob taps Help on one bargain five times at once (five updates), and on all eight
    same = [
        harness.updates.callback(BOB, BargainCB(action="help", id=ids[0]).pack()) for _ in range(5)
    ]
    others = [harness.updates.callback(BOB, BargainCB(action="help", id=i).pack()) for i in ids[1:]]
    before = len(harness.api.answers())
    await asyncio.gather(*(harness.feed(u) for u in [*same, *others]))
    answers = [a.text for a in harness.api.answers()[before:]]
    assert len(answers) == 12
    assert sum(a.startswith("You cut") for a in answers) == bargains.DAILY_HELPS, answers
    assert sum("already helped" in a for a in answers) >= 4
    async with harness.db.read() as s:
        day = await s.scalar(select(HelpDay.helps).where(HelpDay.helper_id == BOB.id))
        helps = await s.scalar(
            select(func.count()).select_from(BargainHelp).where(BargainHelp.helper_id == BOB.id)
        )
        first = await s.get(Bargain, ids[0])
    assert (day, helps, first.helps) == (bargains.DAILY_HELPS, bargains.DAILY_HELPS, 1)


async def test_the_service_counts_one_accounts_simultaneous_helps_once(harness) -> None:
    """Straight to the service, one transaction per task (no update records in between)."""
    _group_id, deal_id = await offer(harness)
    bargain = await bargain_of(harness, await begin(harness, ALICE, deal_id))
    now = utcnow()

    async def one() -> str:
        try:
            async with harness.db.transaction() as s:
                row = await bargains.get(s, bargain.id)
                await bargains.help_(s, bargain=row, helper_id=BOB.id, is_bot=False, now=now)
            return "helped"
        except bargains.AlreadyHelped:
            return "again"

    outcomes = await asyncio.gather(*(one() for _ in range(6)))
    assert sorted(outcomes) == ["again"] * 5 + ["helped"]
    async with harness.db.read() as s:
        day = await s.scalar(select(HelpDay.helps).where(HelpDay.helper_id == BOB.id))
        again = await s.get(Bargain, bargain.id)
    assert (day, again.helps) == (1, 1)


async def test_a_bargain_starts_from_the_deals_private_card_too(harness) -> None:
    from tests.test_share_links import share, start

    group_id, deal_id = await offer(harness)
    code = await share(harness, ALICE, deal_id)
    [card] = await start(harness, BOB, code)
    data = BargainCB(action="start", id=deal_id, group_id=group_id).pack()
    assert data in harness.callbacks(card)
    answer = await harness.tap(BOB, data)
    assert answer.url.startswith(LINK + "bargain_")
    bargain = await bargain_of(harness, answer.url.removeprefix(LINK + "bargain_"))
    assert (bargain.starter_id, bargain.group_id, bargain.deal_id) == (BOB.id, group_id, deal_id)
    # a group the deal is not posted in: refused, nothing stored
    other = BargainCB(action="start", id=deal_id, group_id=group_id + 1)
    assert (await harness.tap(CAROL, other)).show_alert
    async with harness.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Bargain)) == 1


@pytest.fixture
async def paid(database_url, tmp_path, db):
    """The app with Stars payments (and a card provider) offered."""
    settings = make_settings(
        database_url, tmp_path, payment_provider_token=PROVIDER, stars_payments=True
    )
    api = FakeTelegram()
    app = create_app(settings, session=api, db=db, clock=SettableClock())
    yield Harness(app, api, Updates())
    await app.close()


async def test_a_bargain_bought_in_a_paid_flash_sale_is_invoiced_at_its_price(paid) -> None:
    harness = paid
    values = dict(pay_method="stars", digital=True, currency="XTR", unit_price=50, stock=2)
    _group_id, deal_id = await ready(harness, **values)
    answer = await harness.say(OWNER, f"/bargain D{deal_id} 50 30 5 24")
    assert "Bargain: from" in answer.text, answer.text
    bargain = await bargain_of(harness, await begin(harness, ALICE, deal_id))
    await help_(harness, BOB, bargain.id)
    await help_(harness, CAROL, bargain.id)
    reached = 50 - sum(json.loads(bargain.schedule)[:2])
    await harness.tap(ALICE, BargainCB(action="buy", id=bargain.id))
    await harness.settle()
    sent = [i for i in harness.api.of(SendInvoice) if i.chat_id == ALICE.id]
    assert [(i.currency, i.prices[0].amount) for i in sent] == [("XTR", reached)]
    async with harness.db.read() as s:
        order = await s.scalar(select(Order).where(Order.user_id == ALICE.id))
        deal = await s.get(Deal, deal_id)
    assert (order.status, order.unit_price, order.pay_by is not None) == (
        "confirmed",
        reached,
        True,
    )
    assert deal.stock_left == 1


async def test_the_owners_books_show_bargains(harness) -> None:
    import csv
    import io

    from aiogram import methods as m

    from handlers.callbacks import OrdersCB
    from models import Group
    from services import digest
    from views.digest_texts import group_text

    group_id, deal_id = await offer(harness, "12.00 8.00 2 1")
    bought = await bargain_of(harness, await begin(harness, ALICE, deal_id))
    await help_(harness, BOB, bought.id)
    answer = await harness.tap(ALICE, BargainCB(action="buy", id=bought.id))
    assert answer.text.startswith("Bought at")
    late = await bargain_of(harness, await begin(harness, CAROL, deal_id))
    await begin(harness, DAVE, deal_id)
    expired_at = late.expires_at + timedelta(seconds=1)
    await expire_bargains(harness.app, expired_at, TickResult())
    await harness.tap(OWNER, OrdersCB(action="csv", deal_id=deal_id))
    [request] = harness.api.of(m.SendDocument)
    table = list(csv.reader(io.StringIO(request.document.data.decode("utf-8-sig"))))
    assert table[0][-1] == "Bargain" and table[1][2] == "Alice" and table[1][-1] == bought.code
    now = utcnow()
    async with harness.db.read() as s:
        group = await s.get(Group, group_id)
        # the period runs from today to the (local) day the bargains expired: late in the
        # day their expiry falls on the next one
        period = digest.Period(
            digest.local_today(now, group.timezone),
            digest.local_today(expired_at, group.timezone),
        )
        built = await digest.build(s, group, period, expired_at)
    assert (built.bargains.bought, built.bargains.expired, built.bargains.open) == (1, 2, 0)
    with harness.app.i18n.context(), harness.app.i18n.use_locale("en"):
        assert "✂️ Bargains: 1 bought, 2 expired, 0 open now" in group_text(built)
