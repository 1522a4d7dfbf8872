"""Daily digests (issue 6): figures of a seeded group checked against hand-computed values on
both databases, the group's local day (a Los Angeles group, a Shanghai default and owner),
the scheduled sends (once, after downtime, two instances, opt-in / opt-out, each in their
language), the operators' digest, `/digest` with its arguments and settings, and the chart
with Chinese text and no missing glyph."""

from __future__ import annotations

import asyncio
import warnings
from datetime import UTC, date, datetime, timedelta

import pytest
from aiogram.methods import EditMessageText, SendMessage, SendPhoto
from sqlalchemy import delete, select, update

from bot.factory import create_app
from models import (
    CreditEntry,
    Database,
    Deal,
    DealPost,
    DigestRun,
    DigestSubscription,
    Group,
    GroupActivityDay,
    GroupAdmin,
    MemberActivityDay,
    Membership,
    Order,
    Referral,
    SendFailure,
    User,
)
from scheduler import digests
from services import digest as digest_service
from services.charts import font_family, render_chart
from services.digest import DigestArgError, Period, parse_period, parse_time
from tests.builders import person
from tests.fake_api import FakeTelegram

LA = "America/Los_Angeles"
D = date(2026, 11, 19)  # the reported day, in Los Angeles
NOW = datetime(2026, 11, 20, 17, 30, tzinfo=UTC)  # 09:30 in Los Angeles, 01:30 in Shanghai
OWNER = person(501, "Owner", language="zh-hans")
HELPER = person(502, "Helper", language="en")
TITLE = "小区团购群"
CHAT = -1001000000777
ALICE, BOB, CAROL, DAVE, EVE, ERIN = 1, 2, 3, 4, 5, 6
FRANK, GINA, HUGO, IVY, JACK = 7, 8, 9, 10, 11


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def seed(db: Database) -> int:
    """The hand-made dataset; its expected figures are spelt out in the tests below."""
    async with db.transaction() as s:
        names = {
            ALICE: "Alice",
            BOB: "Bob",
            CAROL: "Carol",
            DAVE: "Dave",
            EVE: "Eve",
            ERIN: "Erin",
            FRANK: "Frank",
            GINA: "Gina",
            HUGO: "Hugo",
            IVY: "Ivy",
            JACK: "Jack",
        }
        for uid, name in names.items():
            s.add(User(id=uid, first_name=name, leaderboard_hidden=uid == DAVE))
        s.add(User(id=OWNER.id, first_name="Owner", language="zh_Hans", started=True))
        s.add(User(id=HELPER.id, first_name="Helper", language_code="en", started=True))
        group = Group(
            chat_id=CHAT,
            title=TITLE,
            type="supergroup",
            timezone=LA,
            currency="CNY",
            language="en",
            added_by=OWNER.id,
            admins_refreshed_at=NOW + timedelta(days=30),
            created_at=utc(2026, 9, 1),  # registered before every day of the data
        )
        s.add(group)
        await s.flush()
        g = group.id
        s.add(GroupAdmin(group_id=g, user_id=OWNER.id, status="creator"))
        s.add(GroupAdmin(group_id=g, user_id=HELPER.id, status="administrator"))
        # Activity: 30 days up to D. Baseline week (D-7..D-1): 70 messages and 2 active a day,
        # one join on D-1. D: 120 messages, 3 joins, 1 leave, 5 active.
        for i in range(40):
            day = D - timedelta(days=i)
            if i == 0:
                s.add(
                    GroupActivityDay(
                        group_id=g, day=day, messages=120, joins=3, leaves=1, active_members=5
                    )
                )
            else:
                s.add(
                    GroupActivityDay(
                        group_id=g,
                        day=day,
                        messages=70,
                        joins=1 if i == 1 else 0,
                        leaves=0,
                        active_members=2,
                    )
                )
                for uid in (ALICE, BOB):
                    s.add(MemberActivityDay(group_id=g, day=day, user_id=uid, messages=35))
        for uid, msgs, orders in ((ALICE, 50, 1), (BOB, 40, 0), (CAROL, 20, 2), (DAVE, 100, 0)):
            s.add(MemberActivityDay(group_id=g, day=D, user_id=uid, messages=msgs, orders=orders))
        s.add(MemberActivityDay(group_id=g, day=D, user_id=EVE, messages=10))

        def deal(title, status, closed_at, currency="CNY", **kw):
            row = Deal(
                owner_id=OWNER.id,
                title=title,
                currency=currency,
                unit_price=1000,
                opens_at=utc(2026, 11, 10),
                closes_at=closed_at or NOW + timedelta(days=2),
                status=status,
                closed_at=closed_at,
                **kw,
            )
            s.add(row)
            return row

        a = deal("Mangoes", "succeeded", utc(2026, 11, 20, 7, 30))  # 23:30 on D in LA
        b = deal("Apples", "succeeded", utc(2026, 11, 19, 7, 30))  # 23:30 on D-1
        c = deal("Pears", "succeeded", utc(2026, 11, 20, 8, 30))  # 00:30 on D+1
        e = deal("Durian", "failed", utc(2026, 11, 19, 20, 0))  # noon on D
        f = deal("Lychee", "open", None, min_kind="units", min_value=10, total_qty=4)
        gd = deal("Coffee", "succeeded", utc(2026, 11, 19, 9, 0), currency="USD")  # 01:00 on D
        await s.flush()
        for d in (a, b, c, e, f, gd):
            s.add(DealPost(deal_id=d.id, group_id=g, message_id=d.id))
        n = iter(range(1, 100))

        def order(d, uid, qty, status, amount=None, discount=0, updated=NOW):
            s.add(
                Order(
                    deal_id=d.id,
                    user_id=uid,
                    group_id=g,
                    quantity=qty,
                    status=status,
                    amount=amount,
                    discount=discount,
                    pickup_code=f"P{next(n)}",
                    created_at=utc(2026, 11, 12),
                    updated_at=updated,
                )
            )

        order(a, ALICE, 2, "confirmed", 2000, 100)
        order(a, CAROL, 1, "confirmed", 1000)
        order(a, ERIN, 0, "cancelled", updated=utc(2026, 11, 19, 18, 0))  # 10:00 on D
        order(b, BOB, 1, "confirmed", 500)
        order(b, ERIN, 0, "cancelled", updated=utc(2026, 11, 16, 20, 0))  # D-3
        order(c, ALICE, 1, "confirmed", 700)
        order(e, BOB, 3, "failed")
        order(gd, BOB, 1, "confirmed", 300)
        # Members who joined and left (with inviters), around the day's boundaries in LA.
        for uid, joined in (
            (FRANK, utc(2026, 11, 19, 8, 0)),  # 00:00 on D: first instant of the day
            (GINA, utc(2026, 11, 19, 15, 0)),
            (HUGO, utc(2026, 11, 20, 7, 59)),  # 23:59 on D
            (IVY, utc(2026, 11, 20, 8, 0)),  # 00:00 on D+1: not D
        ):
            s.add(Membership(group_id=g, user_id=uid, status="member", joined_at=joined))
        s.add(Referral(group_id=g, user_id=FRANK, inviter_id=ALICE, joined_at=utc(2026, 11, 19, 8)))
        s.add(
            Membership(
                group_id=g,
                user_id=JACK,
                status="left",
                joined_at=utc(2026, 10, 1),
                left_at=utc(2026, 11, 19, 23, 0),
            )
        )
        # Referral credit: 150 + 50 on D, 70 in the baseline week, a payout that never counts.
        for amount, at, kind in (
            (150, utc(2026, 11, 19, 12), "earned"),
            (50, utc(2026, 11, 20, 7), "earned"),
            (70, utc(2026, 11, 17, 12), "earned"),
            (-200, utc(2026, 11, 19, 12), "payout"),
        ):
            s.add(
                CreditEntry(
                    group_id=g,
                    user_id=ALICE,
                    currency="CNY",
                    amount=amount,
                    kind=kind,
                    created_at=at,
                )
            )
        return g


async def test_figures_match_hand_computed_values(db) -> None:
    gid = await seed(db)
    async with db.read() as s:
        group = await s.get(Group, gid)
        d = await digest_service.build(s, group, Period(D, D), NOW)
    assert d.messages.value == 120 and d.messages.baseline == 70
    assert round(d.messages.change, 4) == round(50 / 70, 4)
    assert d.new_members.value == 3 and d.new_members.baseline == pytest.approx(1 / 7)
    assert [(p.name, p.inviter_name) for p in d.joined] == [
        ("Frank", "Alice"),
        ("Gina", None),
        ("Hugo", None),
    ]
    assert d.left.value == 1 and [p.name for p in d.leavers] == ["Jack"]
    assert d.active.value == 5 and d.active.baseline == 2
    # Top members by messages; Dave (100 messages) hides from leaderboards.
    assert [(t.name, t.messages, t.orders) for t in d.top] == [
        ("Alice", 50, 1),
        ("Bob", 40, 0),
        ("Carol", 20, 2),
        ("Eve", 10, 0),
    ]
    # Deals A (CNY) and Coffee (USD) closed on D in Los Angeles; B the day before; C after.
    assert d.orders.value == 3 and d.orders.baseline == pytest.approx(1 / 7)
    assert d.units.value == 4
    assert {c: f.value for c, f in d.revenue.items()} == {"CNY": 2900, "USD": 300}
    assert d.revenue["CNY"].baseline == pytest.approx(500 / 7)
    assert d.cancellations.value == 1 and d.cancellations.baseline == pytest.approx(1 / 7)
    assert d.credit["CNY"].value == 200 and d.credit["CNY"].baseline == pytest.approx(10)
    assert d.buyers == 3 and d.conversion.value == pytest.approx(3 / 5)
    assert d.conversion.baseline == pytest.approx(1 / 14)
    assert [(c.title, c.status, c.orders, c.revenue) for c in d.closed_deals] == [
        ("Coffee", "succeeded", 1, 300),
        ("Durian", "failed", 0, 0),
        ("Mangoes", "succeeded", 2, 2900),
    ]
    [lychee] = d.open_deals
    assert (lychee.title, lychee.total_qty, lychee.min_value) == ("Lychee", 4, 10)
    # The chart: 30 days ending on D.
    assert d.chart_days[0] == D - timedelta(days=29) and d.chart_days[-1] == D
    assert d.chart_messages[-2:] == [70, 120] and d.chart_active[-1] == 5
    assert d.chart_orders[-2:] == [1, 3] and d.chart_revenue[-2:] == [500, 2900]


async def test_the_same_data_in_a_shanghai_group_moves_across_days(db) -> None:
    gid = await seed(db)
    async with db.transaction() as s:
        await s.execute(update(Group).where(Group.id == gid).values(timezone="Asia/Shanghai"))
    async with db.read() as s:
        group = await s.get(Group, gid)
        nov20 = await digest_service.build(
            s, group, Period(date(2026, 11, 20), D.replace(day=20)), NOW
        )
    # 07:30 and 08:30 UTC on Nov 20 are both Nov 20 in Shanghai: Mangoes and Pears.
    assert nov20.orders.value == 3 and nov20.revenue["CNY"].value == 2900 + 700
    assert [p.name for p in nov20.joined] == ["Hugo", "Ivy"]


async def test_a_range_counts_distinct_members_and_sums(db) -> None:
    gid = await seed(db)
    async with db.read() as s:
        group = await s.get(Group, gid)
        d = await digest_service.build(s, group, Period(D - timedelta(days=6), D), NOW)
    assert d.messages.value == 6 * 70 + 120 and d.messages.baseline == 7 * 70
    assert d.active.value == 5  # Alice, Bob, Carol, Dave, Eve
    assert d.orders.value == 4 and d.buyers == 3


def test_period_arguments_and_their_errors() -> None:
    today = date(2026, 11, 20)
    assert parse_period("", today) == Period(D, D)
    assert parse_period("2026-11-02", today) == Period(date(2026, 11, 2), date(2026, 11, 2))
    assert parse_period("2026-11-20", today).days == 1  # today is allowed (a partial day)
    assert parse_period("7d", today) == Period(date(2026, 11, 13), D)
    assert parse_period("30D", today).days == 30
    assert parse_period("2026-11-01..2026-11-19", today) == Period(date(2026, 11, 1), D)
    assert parse_period("2025-11-20..2026-11-20", today).days == 366
    for text, code in (
        ("2026-11-21", "future"),
        ("2026-11-01..2026-11-21", "future"),
        ("367d", "too_long"),
        ("2025-11-18..2026-11-19", "too_long"),
        ("2026-11-19..2026-11-01", "reversed"),
        ("0d", "malformed"),
        ("yesterday", "malformed"),
        ("2026-13-01", "malformed"),
        ("2026-11-01..", "malformed"),
    ):
        with pytest.raises(DigestArgError) as info:
            parse_period(text, today)
        assert info.value.code == code, text
    assert parse_time("8:30") == "08:30" and parse_time("23:59") == "23:59"
    for bad in ("24:00", "8", "08:60", "noon"):
        with pytest.raises(digest_service.InvalidDigestTime):
            parse_time(bad)


def test_local_day_bounds_follow_the_timezone_and_dst() -> None:
    assert digest_service.utc_bounds(LA, D, D) == (utc(2026, 11, 19, 8), utc(2026, 11, 20, 8))
    # 2026-11-01: Los Angeles leaves daylight saving time; the day has 25 hours.
    lower, upper = digest_service.utc_bounds(LA, date(2026, 11, 1), date(2026, 11, 1))
    assert upper - lower == timedelta(hours=25)
    assert digest_service.local_today(NOW, "Asia/Shanghai") == date(2026, 11, 21)
    assert digest_service.local_today(NOW, LA) == date(2026, 11, 20)


# ---------------------------------------------------------------- the chart


def _glyph_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if "missing from" in str(w.message)]


def test_chart_renders_chinese_without_missing_glyphs() -> None:
    assert font_family(), "no CJK font: install the project (cvttf-NotoSansCJK-Regular)"
    days = [D - timedelta(days=29 - i) for i in range(30)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = render_chart(
            "小区团购群 · 每日简报",
            days,
            [
                ("活跃成员", [1] * 30),
                ("消息", list(range(30))),
                ("订单", [0] * 30),
                ("收入", [2.5] * 30),
            ],
            subtitle="最近30天（洛杉矶时间）",
        )
    assert _glyph_warnings(caught) == []
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_the_glyph_check_catches_a_font_without_chinese() -> None:
    """The check above can fail: the same text in a Latin-only font warns."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure()
    FigureCanvasAgg(figure)
    figure.text(0.1, 0.5, "小区团购群", family="DejaVu Sans")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        figure.canvas.draw()
    assert _glyph_warnings(caught)


# ---------------------------------------------------------------- scheduled digests


def texts_to(api: FakeTelegram, chat_id: int) -> list[str]:
    return api.texts(chat_id)


def photos_to(api: FakeTelegram, chat_id: int) -> list[SendPhoto]:
    return [p for p in api.of(SendPhoto) if p.chat_id == chat_id]


async def run(harness, moment: datetime) -> digests.DigestResult:
    result = await digests.run(harness.app, moment)
    await harness.settle()  # the outbox builds and sends what the run promised
    return result


async def test_sent_once_at_the_groups_local_time_in_each_language(harness) -> None:
    gid = await seed(harness.db)
    # 08:59 in Los Angeles: not yet (in Shanghai, the bot's default, it is already 00:59).
    assert (await run(harness, utc(2026, 11, 20, 16, 59))).groups_sent == []
    first = await run(harness, utc(2026, 11, 20, 17, 0, 5))
    assert first.groups_sent == [(gid, D)]
    assert first.recipients == [(gid, OWNER.id)]  # the helper has not opted in
    again = await run(harness, utc(2026, 11, 20, 17, 0, 15))
    assert again.groups_sent == []
    [text] = texts_to(harness.api, OWNER.id)
    assert "2026年11月19日" in text and TITLE in text  # the owner reads Chinese (zh_Hans)
    assert "¥29.00" in text and "US$3.00" in text
    assert "Frank" in text and "Alice" in text and "Jack" in text
    assert "Dave" not in text
    [photo] = photos_to(harness.api, OWNER.id)
    assert photo.photo.data.startswith(b"\x89PNG")
    assert texts_to(harness.api, HELPER.id) == []
    async with harness.db.read() as s:
        [row] = list(await s.scalars(select(DigestRun)))
    assert (row.scope, row.day, row.status) == (f"g{gid}", D, "sent")


async def test_opt_in_and_opt_out(harness) -> None:
    gid = await seed(harness.db)
    async with harness.db.transaction() as s:
        await digest_service.set_subscribed(s, gid, HELPER.id, True, NOW)
        await digest_service.set_subscribed(s, gid, OWNER.id, False, NOW)
    result = await run(harness, NOW)
    assert result.recipients == [(gid, HELPER.id)]
    [text] = texts_to(harness.api, HELPER.id)
    assert "Thursday, November 19, 2026" in text and "CN¥29.00" in text
    assert texts_to(harness.api, OWNER.id) == []


async def test_a_group_with_the_digest_off_gets_nothing(harness) -> None:
    gid = await seed(harness.db)
    async with harness.db.transaction() as s:
        await s.execute(update(Group).where(Group.id == gid).values(digest_enabled=False))
    assert (await run(harness, NOW)).groups_sent == []
    assert harness.api.of(SendMessage) == []


async def test_after_downtime_only_yesterday_goes_out_once(harness) -> None:
    gid = await seed(harness.db)
    # Down from Nov 20 to Nov 22 10:00 in Los Angeles: the digest of Nov 21 only.
    result = await run(harness, utc(2026, 11, 22, 18, 0))
    assert result.groups_sent == [(gid, date(2026, 11, 21))]
    # Late in the same local day (23:00 in LA): already sent, nothing more.
    assert (await run(harness, utc(2026, 11, 23, 7, 0))).groups_sent == []
    assert len(texts_to(harness.api, OWNER.id)) == 1


async def test_a_crashed_claim_is_taken_again_after_its_lease(harness) -> None:
    gid = await seed(harness.db)
    async with harness.db.transaction() as s:
        assert await digest_service.claim(s, f"g{gid}", D, NOW)
    assert (await run(harness, NOW + timedelta(minutes=1))).groups_sent == []
    later = NOW + digest_service.LEASE + timedelta(seconds=1)
    assert (await run(harness, later)).groups_sent == [(gid, D)]


async def test_two_instances_send_each_digest_once(harness, settings) -> None:
    gid = await seed(harness.db)
    async with harness.db.transaction() as s:
        await digest_service.set_subscribed(s, gid, HELPER.id, True, NOW)
    api2 = FakeTelegram()
    second = create_app(settings, session=api2, db=Database(settings.database_url))
    try:
        for delta in (0, 1, 2):
            moment = NOW + timedelta(seconds=delta)
            await asyncio.gather(digests.run(harness.app, moment), digests.run(second, moment))
        await asyncio.gather(harness.settle(), second.settle())
    finally:
        await second.close()
    for uid in (OWNER.id, HELPER.id):
        assert len(texts_to(harness.api, uid) + texts_to(api2, uid)) == 1


async def test_operators_get_the_cross_group_digest_at_nine_in_the_default_zone(harness) -> None:
    gid = await seed(harness.db)
    async with harness.db.transaction() as s:
        quiet = Group(
            chat_id=-1001000000888,
            title="Quiet",
            timezone="Asia/Shanghai",
            currency="CNY",
            language="en",
        )
        s.add(quiet)
        removed = Group(
            chat_id=-1001000000999,
            title="Gone",
            timezone="Asia/Shanghai",
            currency="CNY",
            language="en",
            is_active=False,
            updated_at=utc(2026, 11, 20, 12),
        )
        s.add(removed)
        await s.flush()
        s.add(GroupActivityDay(group_id=quiet.id, day=date(2026, 11, 10), messages=9))
        s.add(
            SendFailure(
                chat_id=CHAT,
                method="SendMessage",
                reason="Forbidden: blocked",
                created_at=utc(2026, 11, 20, 10),
            )
        )
        s.add(
            SendFailure(
                chat_id=CHAT, method="SendMessage", reason="old", created_at=utc(2026, 11, 18, 10)
            )
        )
    # 08:59 in Shanghai (the default timezone): not yet; 09:00: once.
    assert (await run(harness, utc(2026, 11, 21, 0, 59))).admin_sent is None
    assert (await run(harness, utc(2026, 11, 21, 1, 0))).admin_sent == date(2026, 11, 21)
    assert (await run(harness, utc(2026, 11, 21, 2, 0))).admin_sent is None
    [text] = texts_to(harness.api, 42)
    assert "1. " + TITLE in text and "CN¥29.00" in text  # the LA group's yesterday: Nov 19
    assert "Quiet: no activity for 7 days" in text and "Gone: the bot was removed" in text
    assert "Failed sends in the last 24 h: 1" in text and "blocked" in text
    assert gid


# ---------------------------------------------------------------- /digest


async def test_digest_command_sends_text_and_chart(harness) -> None:
    await seed(harness.db)
    await harness.send(OWNER, "/digest 2026-11-19")
    [text] = harness.api.texts(OWNER.id)
    assert TITLE in text and "¥29.00" in text
    [photo] = photos_to(harness.api, OWNER.id)
    assert photo.photo.data.startswith(b"\x89PNG")
    harness.api.clear()
    await harness.send(OWNER, "/digest 2026-11-13..2026-11-19")
    assert "消息数: <b>540</b>" in harness.api.texts(OWNER.id)[0]  # the owner reads Chinese
    # Someone who runs no group.
    harness.api.clear()
    await harness.send(person(999), "/digest")
    assert "don't run any group" in harness.api.texts(999)[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("2999-01-01", "in the future"),
        ("400d", "at most 366 days"),
        ("2026-11-19..2026-11-01", "the end comes before the start"),
        ("last week", "I do not understand"),
    ],
)
async def test_digest_command_explains_bad_input(harness, args, expected) -> None:
    await seed(harness.db)
    await harness.send(HELPER, f"/digest {args}")
    [text] = harness.api.texts(HELPER.id)
    assert expected in text and "/digest 7d" in text and "2026-11-01..2026-11-30" in text
    assert photos_to(harness.api, HELPER.id) == []


async def test_digest_settings_buttons_and_time(harness) -> None:
    gid = await seed(harness.db)
    await harness.send(HELPER, "/digest settings")
    [message] = harness.api.sent(HELPER.id)
    assert "09:00 (America/Los_Angeles), on, you don't get it" in message.text
    data = [b.callback_data for row in message.reply_markup.inline_keyboard for b in row]
    assert data == [f"dg:sub:{gid}", f"dg:off:{gid}"]
    await harness.feed(harness.updates.callback(HELPER, f"dg:sub:{gid}"))
    async with harness.db.read() as s:
        sub = await s.get(DigestSubscription, (gid, HELPER.id))
    assert sub.enabled is True
    [edit] = harness.api.of(EditMessageText)
    assert "you get it" in edit.text
    # Someone who does not run the group cannot change it with forged callback data.
    stranger = person(777)
    await harness.feed(harness.updates.callback(stranger, f"dg:off:{gid}"))
    assert harness.api.answers()[-1].show_alert
    await harness.send(HELPER, "/digest time 1 25:00")
    assert "not a time of day" in harness.last(HELPER).text
    await harness.send(HELPER, "/digest time 2 08:00")
    assert "no group number 2" in harness.last(HELPER).text
    await harness.send(HELPER, "/digest time 1 7:45")
    async with harness.db.read() as s:
        group = await s.get(Group, gid)
    assert group.digest_time == "07:45" and group.digest_enabled


async def test_operators_ask_for_all_groups(harness) -> None:
    await seed(harness.db)
    await harness.send(person(42), "/digest all")
    assert "All groups" in harness.api.texts(42)[0]
    await harness.send(HELPER, "/digest all")
    assert "Only the operators" in harness.api.texts(HELPER.id)[0]


async def test_small_bench_scenario_matches_raw_sums(db) -> None:
    from bench.digest import check, seed_scenario

    info = await seed_scenario(db, members=300, days=30, per_day=120)
    await check(db, info)


async def test_who_added_the_bot_gets_it_only_while_an_administrator(harness) -> None:
    gid = await seed(harness.db)
    async with harness.db.transaction() as s:
        await s.execute(update(Group).where(Group.id == gid).values(added_by=HELPER.id))
    async with harness.db.read() as s:
        group = await s.get(Group, gid)
        assert {u.id for u in await digest_service.recipients(s, group)} == {OWNER.id, HELPER.id}
    async with harness.db.transaction() as s:  # demoted: no longer an administrator
        await s.execute(
            delete(GroupAdmin).where(GroupAdmin.group_id == gid, GroupAdmin.user_id == HELPER.id)
        )
    async with harness.db.read() as s:
        group = await s.get(Group, gid)
        assert [u.id for u in await digest_service.recipients(s, group)] == [OWNER.id]


def test_a_title_with_dollar_signs_is_text_not_a_formula() -> None:
    days = [date(2026, 11, 1) + timedelta(days=i) for i in range(5)]
    png = render_chart("Buy $$ save $5 off_$9 club 50% off $^$", days, [("Orders", [1] * 5)])
    assert png.startswith(b"\x89PNG")


def test_a_digest_over_4096_characters_loses_whole_lines_only() -> None:
    from views.digest_texts import MAX_TEXT, _fit

    text = "\n".join(f"{i}. <b>{'x' * 90}</b> &amp; more" for i in range(100))
    fitted = _fit(text)
    assert len(fitted) <= MAX_TEXT and fitted.endswith("\n…")
    for line in fitted.split("\n")[:-1]:
        assert line.count("<b>") == line.count("</b>") == 1 and line.endswith("&amp; more")


async def test_the_running_bot_runs_digests_apart_from_the_tick(harness) -> None:
    """Deal closings and reminders never wait behind a morning of digests: the tick of the
    running bot leaves them to their own job (`Jobs`)."""
    from scheduler.jobs import Jobs, tick

    await seed(harness.db)
    await tick(harness.app, NOW, digests=False)  # (it closes the seeded deals meanwhile)
    await harness.settle()
    assert photos_to(harness.api, OWNER.id) == []
    assert not any("日报" in t for t in texts_to(harness.api, OWNER.id))
    await tick(harness.app, NOW)
    await harness.settle()
    assert len(photos_to(harness.api, OWNER.id)) == 1
    assert sum("日报" in t for t in texts_to(harness.api, OWNER.id)) == 1
    jobs = Jobs(harness.app, every=3600)
    jobs.start()
    try:
        assert {job.id for job in jobs.scheduler.get_jobs()} == {"tick", "digests"}
    finally:
        await jobs.stop()


# ---------------------------------------------------------------- never before registration

NEWCOMER = person(521, "Nadia", language="en")


async def add_bot(harness, chat_id: int, title: str, owner=NEWCOMER) -> int:
    """The owner adds the bot to a group, as Telegram tells it (the harness's clock)."""
    from tests.builders import group

    chat = group(chat_id, title)
    harness.api.set_admins(chat.id, owner)
    await harness.feed(harness.updates.my_chat_member(chat, owner, "left", "administrator"))
    await harness.settle()  # the note to the adder goes through the outbox
    async with harness.db.read() as s:
        return await s.scalar(select(Group.id).where(Group.chat_id == chat.id))


async def test_no_digest_of_a_day_before_the_bot_was_added(harness) -> None:
    """Added at 10:00 (Shanghai, the default), after the 09:00 digest time: nothing of the
    day before; the next morning the digest of the day it was added arrives."""
    added = utc(2026, 11, 20, 2, 0)  # 10:00 on Nov 20 in Shanghai
    harness.clock.set(added)
    await harness.say(NEWCOMER, "/start")
    gid = await add_bot(harness, -1001000000901, "Brand New")
    async with harness.db.read() as s:
        registered = (await s.get(Group, gid)).created_at
    assert registered.replace(tzinfo=UTC) == added  # the registration time is the clock's
    harness.api.clear()

    for moment in (added + timedelta(minutes=5), utc(2026, 11, 20, 15, 59)):
        assert (await run(harness, moment)).groups_sent == []
    assert harness.api.texts(NEWCOMER.id) == [] and photos_to(harness.api, NEWCOMER.id) == []
    async with harness.db.read() as s:
        runs = list(await s.scalars(select(DigestRun.scope)))
    assert f"g{gid}" not in runs  # nothing claimed either (the operators' digest aside)

    nextday = utc(2026, 11, 21, 1, 0, 30)  # 09:00 on Nov 21 in Shanghai
    result = await run(harness, nextday)
    assert result.groups_sent == [(gid, date(2026, 11, 20))]
    assert result.recipients == [(gid, NEWCOMER.id)]
    [text] = texts_to(harness.api, NEWCOMER.id)
    assert "Brand New" in text and "November 20, 2026" in text


async def test_an_owner_of_an_old_and_a_new_group_gets_only_what_existed(harness) -> None:
    """The scheduled digest and /digest skip a group registered after the covered day; a
    range is cut to the days since registration."""
    old_gid = await seed(harness.db)  # registered in September, in Los Angeles
    async with harness.db.transaction() as s:  # Nadia runs the old group too
        s.add(GroupAdmin(group_id=old_gid, user_id=NEWCOMER.id, status="creator"))
        await s.execute(update(Group).where(Group.id == old_gid).values(timezone="Asia/Shanghai"))
    added = utc(2026, 11, 20, 0, 30)  # 08:30 on Nov 20 in Shanghai, before the digest time
    harness.clock.set(added)
    await harness.say(NEWCOMER, "/start")
    new_gid = await add_bot(harness, -1001000000902, "Just Added")
    harness.api.clear()

    result = await run(harness, utc(2026, 11, 20, 1, 0, 5))  # 09:00: the digests of Nov 19
    assert result.groups_sent == [(old_gid, date(2026, 11, 19))]
    assert {g for g, _u in result.recipients} == {old_gid} and new_gid not in dict(
        result.groups_sent
    )

    harness.api.clear()
    harness.clock.set(utc(2026, 11, 20, 4, 0))
    await harness.say(NEWCOMER, "/digest")  # yesterday: the new group did not exist
    texts = texts_to(harness.api, NEWCOMER.id)
    assert any(TITLE in t for t in texts) and not any(t.startswith("<b>Just Added") for t in texts)
    assert "No digest of Just Added for that time: I was added there later." in texts[-1]
    assert len(photos_to(harness.api, NEWCOMER.id)) == 1

    harness.api.clear()
    await harness.say(NEWCOMER, "/digest 2026-11-14..2026-11-20")  # cut to Nov 20
    texts = texts_to(harness.api, NEWCOMER.id)
    new_text = next(t for t in texts if "Just Added" in t)
    assert "November 20, 2026" in new_text and "November 14" not in new_text
    assert not any("No digest of" in t for t in texts)
