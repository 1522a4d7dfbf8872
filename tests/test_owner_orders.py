"""Orders for owners through the real Dispatcher: the list and totals, CSV/XLSX exports,
fulfilment with private messages, /pickup (核销), and every refusal."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from aiogram import methods as m
from openpyxl import load_workbook
from sqlalchemy import select, update

from handlers.callbacks import OrdersCB
from models import Deal, Group, GroupAdmin, Order, User
from services import deals, fulfilment, orders, people
from services.money import format_money
from services.people import Person
from services.timezones import utcnow
from tests.builders import person

NOT_YOURS = "That deal or order does not exist, or it is not yours."
OWNER = person(601, "Olivia", username="olivia")
OTHER_OWNER = person(602, "Oscar")
ALICE = person(611, "Alice", username="alice")
WANG = person(612, "小王", language="zh-hans")
EVIL = person(613, '=HYPERLINK("http://evil")')
SILENT = person(614, "Sam")  # never started the bot
JOINED_AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # 20:00 in Asia/Shanghai


async def remember(session, tg_user, *, started: bool = True) -> None:
    await people.remember(
        session,
        Person(
            tg_user.id,
            tg_user.first_name,
            tg_user.last_name,
            tg_user.username,
            False,
            tg_user.language_code,
        ),
    )
    if started:
        await people.mark_started(session, tg_user.id)


async def make_deal(
    harness,
    members: list[tuple[object, int]],
    *,
    owner=OWNER,
    close: bool = False,
    not_started: tuple[int, ...] = (),
    chat_id: int = -100777,
    **spec,
) -> tuple[int, dict[int, int]]:
    """A deal in an Asia/Shanghai group with orders; returns (deal id, {user id: order id})."""
    now = utcnow()
    harness.api.set_admins(chat_id, owner)
    async with harness.db.transaction() as session:
        group = Group(
            chat_id=chat_id,
            title="Fruit 团",
            type="supergroup",
            timezone="Asia/Shanghai",
            currency="CNY",
            language="en",
            is_active=True,
            admins_refreshed_at=now,
        )
        session.add(group)
        await session.flush()
        session.add(GroupAdmin(group_id=group.id, user_id=owner.id, status="creator"))
        values = {
            "title": "Mangoes <b>&</b> co",
            "currency": "CNY",
            "unit_price": 1250,
            "closes_at": now + timedelta(hours=2),
            "group_ids": [group.id],
            "pickup_note": "Gate 3, 18:00",
        }
        values.update(spec)
        deal = await deals.create(session, owner.id, deals.DealSpec(**values), now)
        await remember(session, owner)
        ids = {}
        for member, quantity in members:
            await remember(session, member, started=member.id not in not_started)
            change = await orders.set_quantity(
                session, deal.id, member.id, quantity, now, group_id=group.id
            )
            ids[member.id] = change.order.id
        await session.execute(update(Order).values(created_at=JOINED_AT))
        if close:
            await deals.close(session, deal.id, now)
    if close:  # the closing notices go out first; the tests read what follows
        await harness.settle()
        harness.api.clear()
    return deal.id, ids


async def order_rows(harness, deal_id: int) -> list[tuple[int, str, str]]:
    async with harness.db.read() as s:
        rows = await s.execute(
            select(Order.user_id, Order.status, Order.fulfilment)
            .where(Order.deal_id == deal_id)
            .order_by(Order.id)
        )
        return [tuple(r) for r in rows]


def notices(harness, user) -> list[m.SendMessage]:
    """What the member was told, but the invitation to review a handed-over order (one per
    order: tests/test_reviews.py)."""

    def invitation(request: m.SendMessage) -> bool:
        markup = request.reply_markup
        rows = markup.inline_keyboard if markup is not None else []
        return any((b.callback_data or "").startswith("rv:rate:") for row in rows for b in row)

    return [r for r in harness.api.sent(user.id) if not invitation(r)]


def money(minor: int) -> str:
    return format_money(minor, "CNY", "en")


# ---------------------------------------------------------------- the list


async def test_open_deal_lists_orders_with_expected_amounts(harness) -> None:
    deal_id, _ids = await make_deal(harness, [(ALICE, 2), (WANG, 1)], tiers=[(3, 1100)])
    text = (await harness.say(OWNER, f"/orders D{deal_id}")).text
    assert f"<b>D{deal_id} · Mangoes &lt;b&gt;&amp;&lt;/b&gt; co</b> (open)" in text
    assert "Closes: " in text
    assert "Participants: 2 · Units: 3" in text
    # 3 units reached the tier: 11.00 each, so 2 × 11.00 and 1 × 11.00
    assert f"Expected revenue: {money(3300)} (CNY), 3 × {money(1100)}" in text
    assert f"1. Alice (@alice) ×2 · ≈ {money(2200)} · joined · <code>" in text
    assert f"2. 小王 ×1 · ≈ {money(1100)} · joined · <code>" in text
    request = harness.last(OWNER)
    data = harness.callbacks(request)
    assert f"ord:csv:{deal_id}:0::0" in data and f"ord:xlsx:{deal_id}:0::0" in data
    assert not any(d.startswith(("ord:ask", "ord:order")) for d in data)  # not succeeded


async def test_succeeded_deal_shows_revenue_and_fulfilment(harness) -> None:
    deal_id, ids = await make_deal(harness, [(ALICE, 2), (WANG, 1)], close=True)
    text = (await harness.say(OWNER, f"/orders d{deal_id}")).text
    assert "(succeeded)" in text and "Closed: " in text
    assert f"Revenue: {money(3750)} (CNY)" in text
    assert "Waiting 2 · ready 0 · picked up 0 · delivered 0" in text
    assert f"1. Alice (@alice) ×2 · {money(2500)} · confirmed · not handed over yet" in text
    data = harness.callbacks(harness.last(OWNER))
    assert f"ord:order:{deal_id}:{ids[ALICE.id]}::0" in data
    assert f"ord:ask:{deal_id}:0:picked_up:0" in data


async def test_orders_without_argument_lists_the_owners_deals(harness) -> None:
    deal_id, _ = await make_deal(harness, [(ALICE, 1)])
    text = (await harness.say(OWNER, "/orders")).text
    assert "Choose a deal" in text
    assert harness.callbacks(harness.last(OWNER)) == [f"ord:list:{deal_id}:0::0"]
    assert (await harness.say(ALICE, "/orders")).text == "You have no deals yet."
    assert "Usage" in (await harness.say(OWNER, "/orders mangoes")).text


async def test_long_lists_are_paginated(harness) -> None:
    members = [(person(10_000 + i, f"Member number {i} " + "x" * 40), 1) for i in range(70)]
    deal_id, _ = await make_deal(harness, members, close=True)
    text = (await harness.say(OWNER, f"/orders D{deal_id}")).text
    assert len(text) <= 4096 and "Page 1 of " in text
    pages = int(text.rsplit("Page 1 of ", 1)[1])
    assert pages >= 3
    assert "Participants: 70 · Units: 70" in text  # totals cover every page
    request = harness.last(OWNER)
    assert sum(len(row) for row in request.reply_markup.inline_keyboard) < 100
    assert f"ord:list:{deal_id}:0::1" in harness.callbacks(request)  # Next
    seen = text.count("Member number")
    for page in range(1, pages):
        await harness.tap(OWNER, OrdersCB(action="list", deal_id=deal_id, page=page))
        edit = harness.last_edit()
        assert len(edit.text) <= 4096 and f"Page {page + 1} of {pages}" in edit.text
        seen += edit.text.count("Member number")
    assert seen == 70 and "70. Member number 69" in edit.text
    await harness.tap(OWNER, OrdersCB(action="list", deal_id=deal_id, page=99))  # stale page
    assert f"Page {pages} of {pages}" in harness.last_edit().text


async def test_only_the_owner_sees_the_orders(harness) -> None:
    deal_id, _ = await make_deal(harness, [(ALICE, 1)])
    # someone else's deal is answered exactly like one that does not exist (no oracle)
    theirs = await harness.say(ALICE, f"/orders D{deal_id}")
    unknown = await harness.say(OWNER, "/orders D999999")
    assert theirs.text == unknown.text == NOT_YOURS
    assert theirs.reply_markup == unknown.reply_markup
    for data in (
        OrdersCB(action="list", deal_id=deal_id),
        OrdersCB(action="csv", deal_id=deal_id),
        OrdersCB(action="xlsx", deal_id=deal_id),
    ):
        answer = await harness.tap(OTHER_OWNER, data)
        assert answer.show_alert and answer.text == NOT_YOURS
    answer = await harness.tap(OWNER, OrdersCB(action="list", deal_id=2**31 - 1))
    assert answer.show_alert and answer.text == NOT_YOURS
    for forged in (f"ord:list:{2**40}:0::0", "ord:list:0:0::0", f"ord:list:{deal_id}:0::10000"):
        answer = await harness.tap(OWNER, forged)  # out of range: answered, not unpacked
        assert answer.show_alert and "out of date" in answer.text
    answer = await harness.tap(OWNER, OrdersCB(action="hack", deal_id=deal_id))
    assert answer.show_alert
    assert harness.api.of(m.SendDocument) == []
    assert harness.api.of(m.EditMessageText) == []


# ---------------------------------------------------------------- exports


async def _export_deal(harness) -> tuple[int, dict[int, int], dict[int, str]]:
    deal_id, ids = await make_deal(harness, [(ALICE, 2), (WANG, 1), (EVIL, 3)], close=True)
    async with harness.db.read() as s:
        codes = dict((await s.execute(select(Order.user_id, Order.pickup_code))).all())
    return deal_id, ids, codes


async def test_csv_export(harness) -> None:
    deal_id, ids, codes = await _export_deal(harness)
    answer = await harness.tap(OWNER, OrdersCB(action="csv", deal_id=deal_id))
    assert not answer.show_alert
    [request] = harness.api.of(m.SendDocument)
    assert request.chat_id == OWNER.id and request.document.filename == f"D{deal_id}-orders.csv"
    assert "3" in request.caption
    raw = request.document.data
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert table[0] == [
        "Order", "Pickup code", "Name", "Username", "Quantity", "Unit price", "Amount",
        "Currency", "Status", "Fulfilment", "Joined at", "Group", "Pay method", "Amount owed",
        "Paid amount", "Charge ids", "Provider charge ids", "Refund state", "Team", "Bargain",
    ]  # fmt: skip
    assert table[1:] == [
        [str(ids[ALICE.id]), codes[ALICE.id], "Alice", "alice", "2", "12.50", "25.00", "CNY",
         "confirmed", "none", "2026-03-01 20:00", "Fruit 团", "cash", "25.00", "0.00", "", "",
         "", "", ""],
        [str(ids[WANG.id]), codes[WANG.id], "小王", "", "1", "12.50", "12.50", "CNY",
         "confirmed", "none", "2026-03-01 20:00", "Fruit 团", "cash", "12.50", "0.00", "", "",
         "", "", ""],
        [str(ids[EVIL.id]), codes[EVIL.id], "'=HYPERLINK(\"http://evil\")", "", "3", "12.50",
         "37.50", "CNY", "confirmed", "none", "2026-03-01 20:00", "Fruit 团", "cash", "37.50",
         "0.00", "", "", "", "", ""],
    ]  # fmt: skip


async def test_xlsx_export(harness) -> None:
    deal_id, ids, codes = await _export_deal(harness)
    await harness.tap(OWNER, OrdersCB(action="xlsx", deal_id=deal_id))
    [request] = harness.api.of(m.SendDocument)
    assert request.document.filename == f"D{deal_id}-orders.xlsx"
    sheet = load_workbook(io.BytesIO(request.document.data)).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("Order", "Pickup code", "Name")
    assert [r[:5] for r in rows[1:]] == [
        (ids[ALICE.id], codes[ALICE.id], "Alice", "alice", 2),
        (ids[WANG.id], codes[WANG.id], "小王", None, 1),
        (ids[EVIL.id], codes[EVIL.id], '\'=HYPERLINK("http://evil")', None, 3),
    ]
    # money: numbers written from Decimal, shown with the currency's two decimals
    assert [(Decimal(str(r[5])), Decimal(str(r[6]))) for r in rows[1:]] == [
        (Decimal("12.50"), Decimal("25.00")),
        (Decimal("12.50"), Decimal("12.50")),
        (Decimal("12.50"), Decimal("37.50")),
    ]
    assert sheet["G2"].number_format == "0.00"
    assert [r[7:13] for r in rows[1:]] == [
        ("CNY", "confirmed", "none", "2026-03-01 20:00", "Fruit 团", "cash")
    ] * 3
    assert [(Decimal(str(r[13])), Decimal(str(r[14]))) for r in rows[1:]] == [
        (Decimal("25.00"), Decimal("0")),
        (Decimal("12.50"), Decimal("0")),
        (Decimal("37.50"), Decimal("0")),
    ]
    assert [r[15:] for r in rows[1:]] == [(None, None, None, None, None)] * 3
    for row in sheet.iter_rows(min_row=1):
        for cell in row:
            assert cell.data_type != "f"  # no formula anywhere


async def test_export_of_an_open_deal_has_expected_amounts(harness) -> None:
    deal_id, _ = await make_deal(harness, [(ALICE, 2)], tiers=[(2, 1100)])
    await harness.tap(OWNER, OrdersCB(action="csv", deal_id=deal_id))
    [request] = harness.api.of(m.SendDocument)
    table = list(csv.reader(io.StringIO(request.document.data.decode("utf-8-sig"))))
    assert table[1][4:9] == ["2", "11.00", "22.00", "CNY", "active"]


# ---------------------------------------------------------------- fulfilment


async def test_mark_one_order_tells_the_member_once(harness) -> None:
    deal_id, ids = await make_deal(harness, [(ALICE, 2), (WANG, 1)], close=True)
    answer = await harness.tap(
        OWNER, OrdersCB(action="order", deal_id=deal_id, order_id=ids[ALICE.id])
    )
    card = harness.last_edit()
    assert "Alice (@alice) ×2" in card.text and "Joined: 2026-03-01 20:00" in card.text
    assert harness.callbacks(card)[:3] == [
        f"ord:mark:{deal_id}:{ids[ALICE.id]}:{state}:0" for state in fulfilment.STATES
    ]
    harness.api.clear()
    mark_ready = OrdersCB(action="mark", deal_id=deal_id, order_id=ids[ALICE.id], state="ready")
    answer = await harness.tap(OWNER, mark_ready)
    assert answer.text == "Marked ready for pickup."
    assert "1 member is told privately." in harness.last_edit().text
    await harness.settle()
    [notice] = harness.api.sent(ALICE.id)
    assert "is ready for pickup" in notice.text and "Mangoes &lt;b&gt;" in notice.text
    assert "Gate 3, 18:00" in notice.text and f"Amount: {money(2500)}" in notice.text

    answer = await harness.tap(OWNER, mark_ready)  # a double tap
    assert answer.text == "Already ready for pickup; nothing changed."
    await harness.settle()
    assert len(harness.api.sent(ALICE.id)) == 1

    await harness.tap(OWNER, mark_ready.model_copy(update={"state": "picked_up"}))
    answer = await harness.tap(OWNER, mark_ready)  # backwards: refused
    assert answer.show_alert and "already picked up" in answer.text
    await harness.settle()
    assert "was picked up" in notices(harness, ALICE)[-1].text
    assert len(notices(harness, ALICE)) == 2
    assert len(harness.api.sent(ALICE.id)) == 3  # and invited to review it, once
    assert await order_rows(harness, deal_id) == [
        (ALICE.id, "confirmed", "picked_up"),
        (WANG.id, "confirmed", "none"),
    ]
    # 小王 reads Chinese: the notice is rendered in that locale (money as ¥, not CN¥)
    await harness.tap(OWNER, mark_ready.model_copy(update={"order_id": ids[WANG.id]}))
    await harness.settle()
    [notice] = harness.api.sent(WANG.id)
    assert format_money(1250, "CNY", "zh_Hans") in notice.text and "CN¥" not in notice.text


async def test_mark_all_with_a_member_who_never_started_and_one_who_blocked(harness) -> None:
    carol = person(615, "Carol")
    deal_id, _ = await make_deal(
        harness, [(ALICE, 1), (WANG, 1), (SILENT, 1), (carol, 1)],
        close=True, not_started=(SILENT.id,),
    )  # fmt: skip
    harness.api.fail_next("forbidden", m.SendMessage, chat_id=ALICE.id, message="blocked")
    answer = await harness.tap(OWNER, OrdersCB(action="ask", deal_id=deal_id, state="delivered"))
    assert "Mark every confirmed order" in harness.last_edit().text
    answer = await harness.tap(OWNER, OrdersCB(action="all", deal_id=deal_id, state="delivered"))
    assert answer.text == "4 orders marked delivered."
    summary = harness.last_edit().text
    assert "3 members are told privately." in summary
    assert "1 member has not started the bot and is not told." in summary
    assert "delivered 4" in summary
    await harness.settle()
    assert harness.api.sent(SILENT.id) == []
    assert len(notices(harness, ALICE)) == 1  # tried, refused with 403
    # the 403 did not stop the others; each is told in their own language
    [notice] = notices(harness, carol)
    assert "was delivered" in notice.text
    [notice] = notices(harness, WANG)  # Telegram language zh-hans
    assert "已送达" in notice.text
    async with harness.db.read() as s:
        assert (await s.get(User, ALICE.id)).started is False
    assert {f for _u, _s, f in await order_rows(harness, deal_id)} == {"delivered"}

    harness.api.clear()  # again: nothing left to change, nobody is told twice
    answer = await harness.tap(OWNER, OrdersCB(action="all", deal_id=deal_id, state="delivered"))
    assert answer.text == "0 orders marked delivered."
    await harness.settle()
    assert harness.api.sent() == []


async def test_mark_all_skips_orders_already_further(harness) -> None:
    deal_id, ids = await make_deal(harness, [(ALICE, 1), (WANG, 1)], close=True)
    await harness.tap(
        OWNER, OrdersCB(action="mark", deal_id=deal_id, order_id=ids[WANG.id], state="picked_up")
    )
    await harness.tap(OWNER, OrdersCB(action="all", deal_id=deal_id, state="ready"))
    assert "1 order was left as it was" in harness.last_edit().text
    assert await order_rows(harness, deal_id) == [
        (ALICE.id, "confirmed", "ready"),
        (WANG.id, "confirmed", "picked_up"),
    ]


async def test_fulfilment_refusals_change_nothing(harness) -> None:
    open_id, open_ids = await make_deal(harness, [(ALICE, 1)])
    done_id, done_ids = await make_deal(
        harness, [(WANG, 1)], owner=OTHER_OWNER, close=True, chat_id=-100778
    )
    before = await order_rows(harness, open_id) + await order_rows(harness, done_id)
    cases = [
        # not confirmed: the deal is still open
        (OWNER, OrdersCB(action="all", deal_id=open_id, state="ready"), "deal that succeeded"),
        (
            OWNER,
            OrdersCB(action="mark", deal_id=open_id, order_id=open_ids[ALICE.id], state="ready"),
            "deal that succeeded",
        ),
        # another owner's deal, and an order of it under my deal's id (forged)
        (OWNER, OrdersCB(action="all", deal_id=done_id, state="ready"), NOT_YOURS),
        (
            OWNER,
            OrdersCB(action="mark", deal_id=open_id, order_id=done_ids[WANG.id], state="ready"),
            "does not exist",
        ),
        (
            OWNER,
            OrdersCB(action="order", deal_id=open_id, order_id=done_ids[WANG.id]),
            "does not exist",
        ),
        (OWNER, f"ord:mark:{open_id}:{2**40}:ready:0", "out of date"),
        (OWNER, OrdersCB(action="mark", deal_id=open_id, order_id=2**31 - 1, state="ready"), None),
        (OWNER, OrdersCB(action="mark", deal_id=open_id, order_id=1, state="eaten"), None),
    ]
    for user, data, reason in cases:
        answer = await harness.tap(user, data)
        assert answer.show_alert, data
        if reason:
            assert reason in answer.text, (data, answer.text)
    await harness.settle()
    assert harness.api.sent() == []
    assert await order_rows(harness, open_id) + await order_rows(harness, done_id) == before


# ---------------------------------------------------------------- /pickup


async def test_pickup_by_code(harness) -> None:
    deal_id, ids = await make_deal(harness, [(ALICE, 2), (WANG, 1)], close=True)
    async with harness.db.read() as s:
        code = await s.scalar(select(Order.pickup_code).where(Order.id == ids[ALICE.id]))
    reply = (await harness.say(OWNER, f"/pickup {code.lower()}")).text
    assert f"Order <code>{code}</code>: Alice (@alice) ×2" in reply
    assert "Marked picked up. 1 member is told privately." in reply
    await harness.settle()
    [notice] = notices(harness, ALICE)
    assert "was picked up" in notice.text

    reply = (await harness.say(OWNER, f"/pickup {code}")).text
    assert "already picked up; nothing changed" in reply
    await harness.settle()
    assert len(notices(harness, ALICE)) == 1
    assert await order_rows(harness, deal_id) == [
        (ALICE.id, "confirmed", "picked_up"),
        (WANG.id, "confirmed", "none"),
    ]


async def test_pickup_refusals(harness) -> None:
    open_id, open_ids = await make_deal(harness, [(ALICE, 1)])
    done_id, done_ids = await make_deal(
        harness, [(WANG, 1)], owner=OTHER_OWNER, close=True, chat_id=-100778
    )
    async with harness.db.read() as s:
        codes = dict((await s.execute(select(Order.id, Order.pickup_code))).all())
    assert "Usage" in (await harness.say(OWNER, "/pickup")).text
    assert (
        "No order has the pickup code <code>ZZZZZZ</code>"
        in (await harness.say(OWNER, "/pickup ZZZZZZ")).text
    )
    assert "&lt;b&gt;" in (await harness.say(OWNER, "/pickup <b>")).text
    # another owner's real code gets the answer of an unknown code (no oracle)
    theirs = await harness.say(OWNER, f"/pickup {codes[done_ids[WANG.id]]}")
    assert theirs.text == f"No order has the pickup code <code>{codes[done_ids[WANG.id]]}</code>."
    unknown = await harness.say(OWNER, "/pickup ZZZZZZ")
    assert theirs.reply_markup == unknown.reply_markup
    reply = (await harness.say(OWNER, f"/pickup {codes[open_ids[ALICE.id]]}")).text
    assert "Only orders of a deal that succeeded" in reply and "open" in reply
    assert await order_rows(harness, open_id) == [(ALICE.id, "active", "none")]
    assert await order_rows(harness, done_id) == [(WANG.id, "confirmed", "none")]
    await harness.settle()
    assert harness.api.sent(ALICE.id) == [] and harness.api.sent(WANG.id) == []


async def test_pickup_of_a_failed_deal_is_refused(harness) -> None:
    deal_id, ids = await make_deal(harness, [(ALICE, 1)], close=True, min_kind="units", min_value=5)
    async with harness.db.read() as s:
        code = await s.scalar(select(Order.pickup_code).where(Order.id == ids[ALICE.id]))
        assert (await s.get(Deal, deal_id)).status == "failed"
    reply = (await harness.say(OWNER, f"/pickup {code}")).text
    assert "this deal is failed" in reply
    assert await order_rows(harness, deal_id) == [(ALICE.id, "failed", "none")]


# ---------------------------------------------------------------- the service


async def test_concurrent_marks_change_each_order_once(harness) -> None:
    members = [(person(20_000 + i), 1) for i in range(12)]
    deal_id, ids = await make_deal(harness, members, close=True)
    one_id = next(iter(ids.values()))

    async def mark_all():
        async with harness.db.transaction() as session:
            bulk = await fulfilment.mark_all(session, deal_id, OWNER.id, "ready", utcnow())
            return len(bulk.changed)

    async def mark_one():
        async with harness.db.transaction() as session:
            marked = await fulfilment.mark(session, one_id, OWNER.id, "ready", utcnow())
            return int(marked.changed)

    results = await asyncio.gather(*(mark_all() for _ in range(4)), mark_one(), mark_one())
    assert sum(results) == 12
    assert {f for _u, _s, f in await order_rows(harness, deal_id)} == {"ready"}
