"""The digest's shared deal cards (issue 18, item 6): cards shared (inline_cards rows of the
group by created_at), joins from cards (orders placed from a card, `via` = "card") and the
orders attributed through them (with a sharer), with their sales once the deal succeeded —
over the group's local day, on both databases, in both languages; no section without cards."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from models import Database, Deal, Group, InlineCard, Order
from services import digest as digest_service
from services.digest import Period
from tests.test_digest import (
    ALICE,
    BOB,
    CHAT,
    FRANK,
    GINA,
    HELPER,
    HUGO,
    IVY,
    JACK,
    NOW,
    OWNER,
    D,
    seed,
    utc,
)

ON_D = utc(2026, 11, 19, 10)  # 02:00 on D in Los Angeles


async def seed_cards(db: Database) -> int:
    """The digest's dataset plus shared cards and orders from them:

    - cards of the group: 00:00 on D (its first instant), 02:00 and 23:59 on D (3 on D);
      00:00 on D+1 (not D); D-3 (the week before: 1); a card of another group on D.
    - orders from cards on D: Frank in Mangoes (succeeded on D) shared by Alice, confirmed
      ¥10.00 with ¥1.00 credit spent; Gina in Lychee with no sharer; Hugo in Lychee shared by
      Bob, since cancelled (3 joins, 2 attributed, ¥9.00 of attributed sales). Ivy from a card
      on D+1, Jack from a card on D-2 shared by Alice (the week before), and Bob's order from
      a share link on D (not a card)."""
    gid = await seed(db)
    async with db.transaction() as s:
        other = Group(
            chat_id=CHAT - 1, title="Other", type="supergroup", timezone="UTC", currency="CNY",
            language="en",
        )  # fmt: skip
        s.add(other)
        await s.flush()
        mangoes = await s.scalar(select(Deal).where(Deal.title == "Mangoes"))
        lychee = await s.scalar(select(Deal).where(Deal.title == "Lychee"))
        for n, (group_id, at) in enumerate(
            (
                (gid, utc(2026, 11, 19, 8, 0)),
                (gid, ON_D),
                (gid, utc(2026, 11, 20, 7, 59)),
                (gid, utc(2026, 11, 20, 8, 0)),
                (gid, utc(2026, 11, 16, 12)),
                (other.id, ON_D),
            )
        ):
            s.add(
                InlineCard(
                    inline_message_id=f"AAQ{n}",
                    deal_id=lychee.id,
                    group_id=group_id,
                    share_code=f"s{n}",
                    sharer_id=ALICE,
                    created_at=at,
                )
            )
        rows = (
            (mangoes, FRANK, "confirmed", 1000, 100, ALICE, "card", ON_D),
            (lychee, GINA, "active", None, 0, None, "card", ON_D),
            (lychee, HUGO, "cancelled", None, 0, BOB, "card", ON_D),
            (lychee, IVY, "active", None, 0, ALICE, "card", utc(2026, 11, 20, 8, 0)),
            (lychee, JACK, "active", None, 0, ALICE, "card", utc(2026, 11, 17, 12)),
            (lychee, BOB, "active", None, 0, ALICE, "share", ON_D),
        )
        for n, (deal, uid, status, amount, discount, referrer, via, at) in enumerate(rows):
            s.add(
                Order(
                    deal_id=deal.id,
                    user_id=uid,
                    group_id=gid,
                    quantity=1,
                    status=status,
                    amount=amount,
                    discount=discount,
                    referrer_id=referrer,
                    via=via,
                    pickup_code=f"C{n}",
                    created_at=at,
                    updated_at=at,
                )
            )
    return gid


async def test_card_figures_match_hand_computed_values(db) -> None:
    gid = await seed_cards(db)
    async with db.read() as s:
        group = await s.get(Group, gid)
        d = await digest_service.build(s, group, Period(D, D), NOW)
    cards = d.cards
    assert cards.any
    assert cards.shared.value == 3 and cards.shared.baseline == 1 / 7
    assert cards.joins.value == 3 and cards.joins.baseline == 1 / 7
    assert cards.attributed.value == 2 and cards.attributed.baseline == 1 / 7
    assert {c: f.value for c, f in cards.sales.items()} == {"CNY": 900}
    assert cards.sales["CNY"].baseline == 0


async def test_a_range_and_the_next_day(db) -> None:
    gid = await seed_cards(db)
    async with db.read() as s:
        group = await s.get(Group, gid)
        week = await digest_service.build(s, group, Period(D - timedelta(days=6), D), NOW)
        after = await digest_service.build(
            s, group, Period(D + timedelta(1), D + timedelta(1)), NOW
        )
    assert (week.cards.shared.value, week.cards.joins.value, week.cards.attributed.value) == (
        4, 4, 3,
    )  # fmt: skip
    assert (after.cards.shared.value, after.cards.joins.value, after.cards.attributed.value) == (
        1, 1, 1,
    )  # fmt: skip
    # Mangoes closed on D, not D+1: no sales that day, ¥9.00 in the week before it
    assert after.cards.sales["CNY"].value == 0
    assert after.cards.sales["CNY"].baseline == 900 / 7


async def test_no_cards_no_section(db) -> None:
    gid = await seed(db)
    async with db.read() as s:
        group = await s.get(Group, gid)
        d = await digest_service.build(s, group, Period(D, D), NOW)
    assert not d.cards.any and d.cards.sales == {}
    assert d.cards.shared.value == d.cards.joins.value == d.cards.attributed.value == 0


async def test_the_section_in_both_languages(harness) -> None:
    await seed_cards(harness.db)
    await harness.send(HELPER, "/digest 2026-11-19")
    [text] = harness.api.texts(HELPER.id)
    assert "📇 <b>Shared deal cards</b>" in text
    assert "Cards shared into chats: <b>3</b>" in text
    assert "Joins from cards: <b>3</b>" in text
    assert "Orders attributed to the members who shared: <b>2</b>" in text
    assert "Sales through shared cards (CNY): <b>CN¥9.00</b>" in text

    await harness.send(OWNER, "/digest 2026-11-19")
    [text] = harness.api.texts(OWNER.id)
    assert "📇 <b>分享的团购卡片</b>" in text
    assert "分享到聊天的卡片: <b>3</b>" in text and "通过卡片参加: <b>3</b>" in text
    assert "归功于分享成员的订单: <b>2</b>" in text
    assert "通过分享卡片的销售额（CNY）: <b>¥9.00</b>" in text


async def test_a_digest_without_cards_has_no_section(harness) -> None:
    await seed(harness.db)
    await harness.send(OWNER, "/digest 2026-11-19")
    [text] = harness.api.texts(OWNER.id)
    assert "分享的团购卡片" not in text and "卡片" not in text
