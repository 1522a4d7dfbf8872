"""Offline events (线下活动): the owner's /event, the event post with Join / Cancel my place,
tickets (check-in code as text and a QR image) in private, the waitlist when full (a
cancellation admits the first waiter, who is told), /checkin once and only by an
administrator of the event's group at that moment, reminders on the heartbeat once each,
attendance in /members and the digest; replays change nothing; many simultaneous sign-ups
for the last seat give exactly one seat and put the rest on the waitlist."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from aiogram.methods import SendInvoice, SendPhoto
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select

from bot.factory import create_app
from handlers.callbacks import EventCB
from models import (
    Deal,
    EventCheckin,
    Group,
    GroupAdmin,
    OfflineEvent,
    Order,
    OutboxMessage,
    WaitlistEntry,
)
from scheduler import jobs
from services import activity, gatherings
from services import digest as digest_service
from services.digest import Period
from services.parsing import ParseError
from services.timezones import utcnow
from tests.builders import Updates, person, private
from tests.conftest import Harness, SettableClock, make_settings
from tests.fake_api import FakeTelegram
from tests.test_deal_post import GROUP, OWNER, add_group, refresher

ALICE = person(601, "Alice")
BOB = person(602, "Bob")
CAROL = person(603, "Carol")
DAVE = person(604, "Dave")
TZ = "Asia/Shanghai"
PROVIDER = "284685063:TEST:fake-provider-token"


def local(moment: datetime) -> str:
    """`moment` as the group's wall clock, as owners type it."""
    return moment.astimezone(ZoneInfo(TZ)).strftime("%Y-%m-%d %H:%M")


async def make_event(
    harness,
    capacity: int = 3,
    *,
    hours: float = 30,
    extra: str = "free",
    title="Book club",
    language: str = "en",
) -> int:
    """The owner creates an event in GROUP starting in `hours`: its deal id."""
    refresher(harness).interval = 0.05
    await add_group(harness, timezone=TZ, language=language)
    starts = utcnow() + timedelta(hours=hours)
    answer = await harness.say(
        OWNER, f"/event 1 {local(starts)} {capacity} {extra} {title} | Cafe Lu, 2F"
    )
    assert "is created and is being posted" in answer.text, answer.text
    await harness.settle()
    async with harness.db.read() as s:
        return await s.scalar(select(func.max(Deal.id)))


def join(harness, user, deal_id):
    return harness.tap(user, EventCB(action="join", deal_id=deal_id), GROUP)


def cancel(harness, user, deal_id):
    return harness.tap(user, EventCB(action="cancel", deal_id=deal_id), GROUP)


async def order_of(harness, deal_id: int, user) -> Order | None:
    async with harness.db.read() as s:
        return await s.scalar(
            select(Order).where(Order.deal_id == deal_id, Order.user_id == user.id)
        )


async def waiting(harness, deal_id: int) -> list[int]:
    async with harness.db.read() as s:
        rows = await s.scalars(
            select(WaitlistEntry.user_id)
            .where(WaitlistEntry.deal_id == deal_id, WaitlistEntry.served_at.is_(None))
            .order_by(WaitlistEntry.created_at, WaitlistEntry.user_id)
        )
        return list(rows)


def photos(harness, user) -> list[SendPhoto]:
    return [p for p in harness.api.of(SendPhoto) if p.chat_id == user.id]


# ---------------------------------------------------------------- the owner's command


NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


def test_parse_spec_reads_every_part_in_local_time() -> None:
    spec = gatherings.parse_spec(
        "2026-06-20 19:30 30 2026-06-19 12:00 25.50 Book club night | Cafe Lu, 2F", TZ, "CNY", NOW
    )
    assert spec.starts_at == datetime(2026, 6, 20, 11, 30, tzinfo=UTC)
    assert spec.closes_at == datetime(2026, 6, 19, 4, 0, tzinfo=UTC)
    assert (spec.capacity, spec.price, spec.title, spec.place) == (
        30,
        2550,
        "Book club night",
        "Cafe Lu, 2F",
    )
    free = gatherings.parse_spec("2026-06-20 19:30 5 free Walk | Park gate", TZ, "CNY", NOW)
    assert (free.price, free.closes_at, free.title) == (0, free.starts_at, "Walk")
    plain = gatherings.parse_spec("2026-06-20 19:30 5 Walk | Park gate", TZ, "CNY", NOW)
    assert (plain.price, plain.title) == (0, "Walk")


def test_parse_spec_refuses_what_is_wrong_with_a_reason() -> None:
    cases = {
        "": "event_usage",
        "2026-06-20 19:30 5 Walk": "event_usage",  # no place
        "tomorrow 19:30 5 Walk | Park": "event_usage",
        "2026-06-20 19:30 5 Walk |  ": "event_place",
        "2026-06-20 19:30 0 Walk | Park": "quantity_positive",
        "2026-06-20 19:30 10001 Walk | Park": "quantity_too_large",
        "2026-05-20 19:30 5 Walk | Park": "time_past",
        "2026-06-20 19:30 5 2026-06-21 10:00 Walk | Park": "event_deadline",
        "2028-06-20 19:30 5 Walk | Park": "event_far",
        "2026-06-20 19:30 5 free | Park": "title_empty",
        "2026-06-20 19:30 5 Walk | " + "x" * 201: "event_place_long",
        "2026-02-30 19:30 5 Walk | Park": "date_invalid",
    }
    for text, reason in cases.items():
        try:
            gatherings.parse_spec(text, TZ, "CNY", NOW)
        except ParseError as err:
            assert err.reason == reason, (text, err.reason)
        else:
            raise AssertionError(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_parse_spec_never_raises_but_a_refusal(text) -> None:
    try:
        spec = gatherings.parse_spec(text, TZ, "CNY", NOW)
    except ParseError:
        return
    assert NOW < spec.closes_at <= spec.starts_at <= NOW + gatherings.MAX_AHEAD
    assert 1 <= spec.capacity <= gatherings.MAX_CAPACITY
    assert 0 <= spec.price and spec.title and 0 < len(spec.place) <= gatherings.MAX_PLACE


@settings(max_examples=200, deadline=None)
@given(
    days=st.integers(min_value=1, max_value=300),
    minute=st.integers(min_value=0, max_value=24 * 60 - 1),
    capacity=st.integers(min_value=1, max_value=gatherings.MAX_CAPACITY),
    cents=st.integers(min_value=0, max_value=10**6),
    title=st.text(alphabet="abcdefghij 中文", min_size=1, max_size=40).filter(
        lambda t: t.strip() and not t.strip()[0].isdigit()
    ),
)
def test_parse_spec_reads_back_what_was_written(days, minute, capacity, cents, title) -> None:
    start = (
        (NOW + timedelta(days=days))
        .astimezone(ZoneInfo(TZ))
        .replace(hour=minute // 60, minute=minute % 60, second=0, microsecond=0)
    )
    price = "free" if cents == 0 else f"{cents // 100}.{cents % 100:02d}"
    text = f"{start:%Y-%m-%d %H:%M} {capacity} {price} {title} | Hall A"
    spec = gatherings.parse_spec(text, TZ, "CNY", NOW)
    assert spec.starts_at == start.astimezone(UTC)
    assert (spec.capacity, spec.price, spec.place) == (capacity, cents, "Hall A")
    assert spec.title == " ".join(title.split())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_checkin_links_parse_only_their_shape(text) -> None:
    code = gatherings.parse_link(text)
    if code is not None:
        assert text == gatherings.LINK_PREFIX + code and code.isalnum() and 4 <= len(code) <= 16


async def test_owner_creates_an_event_posted_with_seats_and_buttons(harness) -> None:
    assert "Usage" in (await harness.say(OWNER, "/event")).text
    deal_id = await make_event(harness, 3)
    async with harness.db.read() as s:
        deal = await s.get(Deal, deal_id)
        event = await s.get(OfflineEvent, deal_id)
    assert (deal.stock_total, deal.stock_left, deal.per_person_limit, deal.min_kind) == (
        3,
        3,
        1,
        None,
    )
    assert (deal.unit_price, deal.pay_method, deal.closes_at) == (0, "cash", event.starts_at)
    assert event.place == "Cafe Lu, 2F"
    post = harness.last(GROUP)
    assert "🎟 <b>Book club</b>" in post.text and "Cafe Lu, 2F" in post.text
    assert "3 of 3 seats left" in post.text and "Free" in post.text
    assert local(event.starts_at)[11:] in post.text  # the local time
    assert harness.callbacks(post) == [
        EventCB(action="join", deal_id=deal_id).pack(),
        EventCB(action="cancel", deal_id=deal_id).pack(),
    ]


async def test_the_event_post_and_ticket_speak_chinese_in_a_chinese_group(harness) -> None:
    deal_id = await make_event(harness, 2, language="zh_Hans", title="读书会")
    post = harness.last(GROUP)
    assert "剩余 2/2 个名额" in post.text and "免费" in post.text and "读书会" in post.text
    assert "报名截止" in post.text
    await join(harness, ALICE, deal_id)
    await harness.settle()
    alice = await order_of(harness, deal_id, ALICE)
    [ticket] = photos(harness, ALICE)  # Alice's language is English: her own choice first
    assert "Check-in code" in ticket.caption and alice.pickup_code in ticket.caption


async def test_bad_event_commands_change_nothing(harness) -> None:
    await add_group(harness, timezone=TZ)
    starts = local(utcnow() + timedelta(days=2))
    answers = {
        f"/event 2 {starts} 5 Walk | Park": "Choose the group by its number",
        f"/event 1 {starts} 5 Walk": "Usage",
        f"/event 1 {starts} 0 Walk | Park": "",
        "/event 1 2020-01-01 10:00 5 Walk | Park": "",
    }
    for text, expected in answers.items():
        answer = await harness.say(OWNER, text)
        assert expected in answer.text and "is created" not in answer.text, (text, answer.text)
    assert "administer no group" in (await harness.say(ALICE, f"/event 1 {starts} 5 W | P")).text
    async with harness.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Deal)) == 0
        assert await s.scalar(select(func.count()).select_from(OfflineEvent)) == 0


# ---------------------------------------------------------------- sign-ups and the waitlist


async def test_sign_up_sends_a_ticket_with_a_qr_code_and_a_cancel_admits_the_first_waiter(
    harness,
) -> None:
    deal_id = await make_event(harness, 1)
    joined = (await join(harness, ALICE, deal_id)).text
    assert "You're in" in joined and "press Start" in joined  # Alice never started the bot
    await harness.settle()
    alice = await order_of(harness, deal_id, ALICE)
    [ticket] = photos(harness, ALICE)
    assert alice.pickup_code in ticket.caption and "Cafe Lu, 2F" in ticket.caption
    assert ticket.photo.data.startswith(b"\x89PNG")  # a QR image made here, no network
    assert "Full: join the waitlist" in harness.last_edit(GROUP).text

    assert "waitlist (number 1)" in (await join(harness, BOB, deal_id)).text
    assert "waitlist (number 2)" in (await join(harness, CAROL, deal_id)).text
    assert "already (number 1)" in (await join(harness, BOB, deal_id)).text
    assert "already have a place" in (await join(harness, ALICE, deal_id)).text
    assert await waiting(harness, deal_id) == [BOB.id, CAROL.id]

    assert "cancelled" in (await cancel(harness, ALICE, deal_id)).text
    await harness.settle()
    bob = await order_of(harness, deal_id, BOB)
    assert (bob.status, bob.quantity, bob.via) == ("active", 1, "waitlist")
    assert (await order_of(harness, deal_id, ALICE)).status == "cancelled"
    [bob_ticket] = photos(harness, BOB)
    assert "A seat freed up" in bob_ticket.caption and bob.pickup_code in bob_ticket.caption
    assert await waiting(harness, deal_id) == [CAROL.id]  # the others stay
    assert photos(harness, CAROL) == []
    async with harness.db.read() as s:
        assert (await s.get(Deal, deal_id)).stock_left == 0

    assert "left the waitlist" in (await cancel(harness, CAROL, deal_id)).text
    assert "no place" in (await cancel(harness, DAVE, deal_id)).text
    assert await waiting(harness, deal_id) == []


async def test_a_replayed_sign_up_or_cancel_changes_nothing(harness) -> None:
    deal_id = await make_event(harness, 2)
    update = harness.updates.callback(
        ALICE, EventCB(action="join", deal_id=deal_id).pack(), chat=GROUP
    )
    for _ in range(3):
        await harness.feed(update)
    await harness.settle()
    async with harness.db.read() as s:
        orders = list(await s.scalars(select(Order).where(Order.deal_id == deal_id)))
        tickets = await s.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == gatherings.TICKET)
        )
        deal = await s.get(Deal, deal_id)
    assert [(o.user_id, o.quantity) for o in orders] == [(ALICE.id, 1)]
    assert (tickets, deal.stock_left) == (1, 1)
    assert len(photos(harness, ALICE)) == 1
    leave = harness.updates.callback(
        ALICE, EventCB(action="cancel", deal_id=deal_id).pack(), chat=GROUP
    )
    for _ in range(3):
        await harness.feed(leave)
    async with harness.db.read() as s:
        assert (await s.get(Deal, deal_id)).stock_left == 2


async def test_many_simultaneous_sign_ups_for_the_last_seat_give_exactly_one(harness) -> None:
    deal_id = await make_event(harness, 2)
    await join(harness, ALICE, deal_id)
    members = [person(20_000 + n, f"M{n}") for n in range(20)]
    updates = [
        harness.updates.callback(m, EventCB(action="join", deal_id=deal_id).pack(), chat=GROUP)
        for m in members
    ]
    before = len(harness.api.answers())
    await asyncio.gather(*(harness.feed(u) for u in updates))
    answers = [a.text for a in harness.api.answers()[before:]]
    assert len(answers) == 20
    assert sum("You're in" in a for a in answers) == 1, answers
    assert sum("on the waitlist (number" in a for a in answers) == 19, answers
    async with harness.db.read() as s:
        deal = await s.get(Deal, deal_id)
        seated = await s.scalar(
            select(func.count())
            .select_from(Order)
            .where(Order.deal_id == deal_id, Order.status == "active", Order.quantity > 0)
        )
    assert (deal.stock_left, deal.participants, seated) == (0, 2, 2)
    queue = await waiting(harness, deal_id)
    assert len(queue) == 19 and set(queue) <= {m.id for m in members}
    # the seat freed goes to the first of them, through the one order action
    await cancel(harness, ALICE, deal_id)
    assert (await order_of(harness, deal_id, person(queue[0]))).status == "active"
    assert await waiting(harness, deal_id) == queue[1:]


# ---------------------------------------------------------------- check-in


async def test_checkin_marks_attendance_once_by_an_admin_of_the_group_now(harness) -> None:
    deal_id = await make_event(harness, 3)
    await join(harness, ALICE, deal_id)
    await join(harness, BOB, deal_id)
    code = (await order_of(harness, deal_id, ALICE)).pickup_code
    assert "Usage" in (await harness.say(OWNER, "/checkin")).text
    assert "Only an owner or administrator" in (await harness.say(BOB, f"/checkin {code}")).text
    assert "No event place" in (await harness.say(OWNER, "/checkin ZZZZ99")).text
    answer = await harness.say(OWNER, f"/checkin {code.lower()}")
    assert "✅ Alice is checked in at Book club" in answer.text
    again = await harness.say(OWNER, f"/checkin {code}")
    assert "already checked in" in again.text and "nothing changed" in again.text
    # a scan of Bob's QR code: /start ci_<code>
    bob_code = (await order_of(harness, deal_id, BOB)).pickup_code
    scanned = await harness.say(OWNER, f"/start {gatherings.link_payload(bob_code)}")
    assert "Bob is checked in" in scanned.text
    replay = harness.updates.message(private(OWNER), OWNER, f"/checkin {bob_code}")
    for _ in range(2):
        await harness.feed(replay)
    async with harness.db.read() as s:
        rows = list(await s.scalars(select(EventCheckin).order_by(EventCheckin.user_id)))
    assert [(r.user_id, r.checked_by) for r in rows] == [(ALICE.id, OWNER.id), (BOB.id, OWNER.id)]

    # a cancelled place cannot be checked in; rights are checked at the moment
    await join(harness, CAROL, deal_id)
    carol = await order_of(harness, deal_id, CAROL)
    await cancel(harness, CAROL, deal_id)
    assert "was cancelled" in (await harness.say(OWNER, f"/checkin {carol.pickup_code}")).text
    await join(harness, CAROL, deal_id)
    harness.api.set_admins(GROUP.id, DAVE)
    async with harness.db.transaction() as s:
        await s.execute(delete(GroupAdmin).where(GroupAdmin.user_id == OWNER.id))
        group_id = await s.scalar(select(OfflineEvent.group_id))
        s.add(GroupAdmin(group_id=group_id, user_id=DAVE.id, status="creator"))
    refused = await harness.say(OWNER, f"/checkin {carol.pickup_code}")
    assert "Only an owner or administrator" in refused.text
    assert "Carol is checked in" in (await harness.say(DAVE, f"/checkin {carol.pickup_code}")).text


# ---------------------------------------------------------------- reminders


async def test_reminders_go_once_each_to_who_holds_a_place(harness) -> None:
    deal_id = await make_event(harness, 3, hours=30)
    await join(harness, ALICE, deal_id)
    await join(harness, BOB, deal_id)
    await cancel(harness, BOB, deal_id)
    async with harness.db.read() as s:
        starts = (await s.get(OfflineEvent, deal_id)).starts_at
    texts = lambda user: [t for t in harness.api.texts(user.id) if "⏰" in t]  # noqa: E731
    assert (await jobs.tick(harness.app, starts - timedelta(hours=25))).event_reminders == 0
    first = await jobs.tick(harness.app, starts - timedelta(hours=23, minutes=59))
    again = await jobs.tick(harness.app, starts - timedelta(hours=23))
    await harness.settle()
    assert (first.event_reminders, again.event_reminders) == (1, 0)
    [day] = texts(ALICE)
    assert "Tomorrow" in day and "Book club" in day and "Cafe Lu" in day
    assert texts(BOB) == []
    soon = await jobs.tick(harness.app, starts - timedelta(hours=1, minutes=59))
    await jobs.tick(harness.app, starts - timedelta(hours=1))
    await harness.settle()
    assert soon.event_reminders == 1
    assert [t for t in texts(ALICE) if "Starting soon" in t] != []
    assert len(texts(ALICE)) == 2
    after = await jobs.tick(harness.app, starts + timedelta(minutes=1))
    assert after.event_reminders == 0


async def test_an_event_created_inside_a_reminders_window_skips_it(harness) -> None:
    deal_id = await make_event(harness, 3, hours=5)
    await join(harness, ALICE, deal_id)
    async with harness.db.read() as s:
        starts = (await s.get(OfflineEvent, deal_id)).starts_at
    assert (await jobs.tick(harness.app, starts - timedelta(hours=4))).event_reminders == 0
    assert (await jobs.tick(harness.app, starts - timedelta(hours=1))).event_reminders == 1


# ---------------------------------------------------------------- paid events


async def test_a_paid_event_at_the_door_shows_its_price(harness) -> None:
    deal_id = await make_event(harness, 2, extra="25.50")
    async with harness.db.read() as s:
        deal = await s.get(Deal, deal_id)
    assert (deal.unit_price, deal.pay_method) == (2550, "cash")
    post = harness.last(GROUP)
    assert "25.50" in post.text and "Paid at the door" in post.text


# ---------------------------------------------------------------- /members and the digest


async def test_attendance_counts_in_core_members_and_the_digest(harness) -> None:
    deal_id = await make_event(harness, 5)
    await join(harness, ALICE, deal_id)
    await join(harness, BOB, deal_id)
    code = (await order_of(harness, deal_id, ALICE)).pickup_code
    await harness.say(OWNER, f"/checkin {code}")
    async with harness.db.transaction() as s:
        group_id = await s.scalar(select(OfflineEvent.group_id))
        group = await s.get(Group, group_id)
        group.core_min_days = 1
    async with harness.db.read() as s:
        group = await s.get(Group, group_id)
        core = await activity.core_members(s, group)
        today = digest_service.local_today(utcnow(), TZ)
        digest = await digest_service.build(s, group, Period(today, today), utcnow())
    assert [(m.user_id, m.events) for m in core] == [(ALICE.id, 1)]
    assert (digest.events.signups, digest.events.attended) == (2, 1)
    from views.digest_texts import group_text

    with harness.app.i18n.context(), harness.app.i18n.use_locale("en"):
        text = group_text(digest)
    assert "Event sign-ups: 2 · Event attendance: 1" in text
    digest.events = gatherings.Counts()
    with harness.app.i18n.context(), harness.app.i18n.use_locale("en"):
        assert "Event sign-ups" not in group_text(digest)  # shown only when not zero
    from views.activity import report_text

    async with harness.db.read() as s:
        report = await activity.member_report(s, await s.get(Group, group_id))
    with harness.app.i18n.context(), harness.app.i18n.use_locale("en"):
        text = report_text(report)
    assert "Alice (1) 🎟1" in text and "offline events attended" in text


# ---------------------------------------------------------------- the sign-up deadline


async def test_at_the_deadline_sign_up_closes_quietly_and_check_in_still_works(harness) -> None:
    deal_id = await make_event(harness, 3, hours=30)
    await join(harness, ALICE, deal_id)
    async with harness.db.read() as s:
        deal = await s.get(Deal, deal_id)
    await jobs.tick(harness.app, deal.closes_at + timedelta(seconds=5))
    await harness.settle()
    async with harness.db.read() as s:
        deal = await s.get(Deal, deal_id)
        kinds = set(await s.scalars(select(OutboxMessage.kind)))
    assert deal.status == "succeeded"
    assert "closing_member" not in kinds and "closing_post" not in kinds  # members hold tickets
    assert "closing_owner" in kinds
    edit = harness.last_edit(GROUP)
    assert "Sign-up is closed" in edit.text and edit.reply_markup is None
    code = (await order_of(harness, deal_id, ALICE)).pickup_code
    assert "Alice is checked in" in (await harness.say(OWNER, f"/checkin {code}")).text


# ---------------------------------------------------------------- paid in the chat


@pytest.fixture
async def paid(database_url, tmp_path, db):
    """The app with a card payment provider: paid events are paid in the chat."""
    settings = make_settings(database_url, tmp_path, payment_provider_token=PROVIDER)
    api = FakeTelegram()
    app = create_app(settings, session=api, db=db, clock=SettableClock())
    yield Harness(app, api, Updates())
    await app.close()


async def test_a_paid_event_holds_the_seat_and_an_unpaid_hold_goes_to_the_waitlist(paid) -> None:
    harness = paid
    deal_id = await make_event(harness, 1, extra="30")
    async with harness.db.read() as s:
        deal = await s.get(Deal, deal_id)
    assert (deal.unit_price, deal.pay_method) == (3000, "card")
    await join(harness, ALICE, deal_id)
    await harness.settle()
    assert [i.prices[0].amount for i in harness.api.of(SendInvoice) if i.chat_id == ALICE.id] == [
        3000
    ]
    assert "Pay the invoice" in photos(harness, ALICE)[0].caption
    code = (await order_of(harness, deal_id, ALICE)).pickup_code
    assert "not paid yet" in (await harness.say(OWNER, f"/checkin {code}")).text
    assert "waitlist (number 1)" in (await join(harness, BOB, deal_id)).text
    result = await jobs.tick(harness.app, utcnow() + timedelta(minutes=deal.hold_minutes + 3))
    await harness.settle()
    assert result.lapsed == 1
    assert (await order_of(harness, deal_id, ALICE)).status == "cancelled"
    bob = await order_of(harness, deal_id, BOB)
    assert (bob.status, bob.quantity, bob.pay_by is not None) == ("active", 1, True)
    assert [i.chat_id for i in harness.api.of(SendInvoice)] == [ALICE.id, BOB.id]
    assert "A seat freed up" in photos(harness, BOB)[0].caption
    assert await waiting(harness, deal_id) == []
