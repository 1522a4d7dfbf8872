"""Privacy: every column that can hold a person is annotated; /mydata exports the person's rows
and nothing of anyone else; /forgetme leaves no personal data in any table, keeps the owners'
books with one consistent pseudonym, and leaves everyone else's rows untouched."""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from aiogram import methods as m
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, func, select

from handlers.callbacks import ForgetCB
from models import (
    Bargain,
    BargainHelp,
    Base,
    Challenge,
    Coupon,
    CouponClaim,
    CouponDeal,
    CouponPack,
    CreditEntry,
    Deal,
    DealPost,
    DigestSubscription,
    EventCheckin,
    FailedUpdate,
    FsmState,
    Group,
    GroupAdmin,
    HelpDay,
    InlineCard,
    InviteLink,
    Lottery,
    LotteryEntry,
    LotteryWinner,
    MemberActivityDay,
    Membership,
    ModAction,
    ModAllowed,
    OfflineEvent,
    Order,
    OutboxMessage,
    PackClaim,
    Payment,
    Poll,
    PollPost,
    PollVote,
    Referral,
    Review,
    ScheduledPost,
    ScheduledTarget,
    SendFailure,
    ShareClick,
    ShareLink,
    Team,
    User,
    WaitlistEntry,
)
from services import privacy
from tests.builders import person
from tests.fake_api import BOT_ID

# Distinctive values, so a scan for them cannot hit anything by chance.
ALICE_ID = 5_551_234_567
BOB_ID = 5_559_876_543
OWNER_ID = 5_550_001_111
ALICE = person(ALICE_ID, "Alicia", last_name="Zyxwerty", username="alicia_zz")
BOB = person(BOB_ID, "Bobrov", last_name="Qwerplex", username="bob_qq")
ALICE_NEEDLES = (str(ALICE_ID), "alicia", "zyxwerty", "alicia_zz", "alicode")
# (Not "bobcode": Alice opened that share link herself; her click on it is hers.)
BOB_NEEDLES = (str(BOB_ID), "bobrov", "qwerplex", "bob_qq", "pk-b", "+boblink", str(OWNER_ID))
G1_CHAT = -1001000000001
G2_CHAT = -1001000000002
ALICE_LINK = "https://t.me/+aliciaLink1"

# ---------------------------------------------------------------- the annotations

ID_NAME = re.compile(
    r"(^|_)(user|owner|inviter|referrer|member|admin|buyer|chat|person)(_id)?$|_by$"
)
MONEY_NAME = re.compile(r"(amount|price|discount|balance|total|_minor)$")


def unannotated(metadata: MetaData) -> list[str]:
    """Columns that look like they hold a Telegram user id and say nothing about it: every
    BigInteger that is not money or a foreign key, and every column with an id-like name."""
    missing = []
    for table in metadata.sorted_tables:
        for column in table.columns:
            if "person" in column.info:
                continue
            big = isinstance(column.type, BigInteger) and not column.foreign_keys
            if (big and not MONEY_NAME.search(column.name)) or ID_NAME.search(column.name):
                missing.append(f"{table.name}.{column.name}")
    return missing


def test_every_id_like_column_has_a_privacy_policy() -> None:
    missing = unannotated(Base.metadata)
    assert missing == [], (
        "annotate these columns with info=person_id('key' | 'anonymise' | 'none') "
        f"(models/base.py) and add them to README's Privacy table: {missing}"
    )


def test_the_check_catches_a_new_table() -> None:
    metadata = MetaData()
    Table(
        "wishlists",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("member_id", Integer),
        Column("telegram_ref", BigInteger),
        Column("price_minor", BigInteger),
    )
    assert unannotated(metadata) == ["wishlists.member_id", "wishlists.telegram_ref"]


def test_personal_columns_belong_to_a_person_column() -> None:
    for policy in privacy.policies():
        for name, owner in policy.personal.items():
            column = policy.table.columns[owner]
            assert column in policy.people, f"{policy.table.name}.{name} → {owner}"
            if column in policy.anonymise and name in policy.blank:  # must be possible
                target = policy.table.columns[name]
                assert target.nullable or isinstance(target.type, String), target


def test_pseudonyms_are_far_from_telegram_ids() -> None:
    values = {privacy.new_pseudonym() for _ in range(1000)}
    assert len(values) == 1000
    assert all(-(2**63) < v <= privacy.PSEUDONYM_FLOOR for v in values)
    assert all(privacy.is_pseudonym(v) for v in values)
    assert not privacy.is_pseudonym(G1_CHAT) and not privacy.is_pseudonym(ALICE_ID)


# ---------------------------------------------------------------- seeding every table


async def seed(harness) -> dict[str, int]:
    """Alice (to be forgotten) and Bob in every table that can hold a person; Owner runs G1."""
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    later = now + timedelta(days=3)
    ids: dict[str, int] = {}
    async with harness.db.transaction() as s:
        for tg in (ALICE, BOB):
            s.add(
                User(
                    id=tg.id,
                    first_name=tg.first_name,
                    last_name=tg.last_name,
                    username=tg.username,
                    language_code="en",
                    language="en",
                    started=True,
                )
            )
        s.add(User(id=OWNER_ID, first_name="Olga", started=True))
        g1 = Group(
            chat_id=G1_CHAT,
            title="Fruit",
            timezone="Asia/Shanghai",
            currency="CNY",
            language="en",
            added_by=ALICE_ID,
        )
        g2 = Group(
            chat_id=G2_CHAT,
            title="Veg",
            timezone="Asia/Shanghai",
            currency="CNY",
            language="en",
            added_by=OWNER_ID,
        )
        s.add_all([g1, g2])
        await s.flush()
        ids["g1"], ids["g2"] = g1.id, g2.id
        s.add_all(
            [
                GroupAdmin(group_id=g1.id, user_id=ALICE_ID, status="administrator"),
                GroupAdmin(group_id=g1.id, user_id=OWNER_ID, status="creator"),
                GroupAdmin(group_id=g2.id, user_id=BOB_ID, status="creator"),
                Membership(group_id=g1.id, user_id=ALICE_ID, status="member", joined_at=now),
                Membership(group_id=g1.id, user_id=BOB_ID, status="member", joined_at=now),
                FsmState(
                    key=f"fsm:{BOT_ID}:{ALICE_ID}:{ALICE_ID}:default",
                    state="DealWizard:title",
                    data='{"title": "honey"}',
                ),
                FsmState(
                    key=f"fsm:{BOT_ID}:{BOB_ID}:{BOB_ID}:default",
                    state="DealWizard:title",
                    data='{"title": "jam"}',
                ),
                SendFailure(chat_id=ALICE_ID, method="SendMessage", reason="Forbidden: blocked"),
                SendFailure(chat_id=BOB_ID, method="SendMessage", reason="Forbidden: blocked"),
                SendFailure(chat_id=G2_CHAT, method="SendMessage", reason="Bad Request"),
                # Failed updates: Alice's in private, Alice's in a group, Bob's in a group.
                *(
                    FailedUpdate(
                        bot_id=BOT_ID,
                        update_id=900 + n,
                        update_type="message",
                        chat_id=chat,
                        user_id=who,
                        status="failed",
                        reason="DataError: value out of int range",
                        detail='{"command": "/buy"}',
                        attempts=1,
                        first_at=now,
                        last_at=now,
                    )
                    for n, (chat, who) in enumerate(
                        [(ALICE_ID, ALICE_ID), (G1_CHAT, ALICE_ID), (G1_CHAT, BOB_ID)]
                    )
                ),
                *(
                    OutboxMessage(
                        key=f"seed:{who}",
                        chat_id=who,
                        kind="edit_text",
                        payload='{"message_id": 1, "text": "hi"}',
                        created_at=now,
                        sent_at=later,
                        status="sent",
                        attempts=1,
                        expired_leases=0,
                        reason="",
                    )
                    for who in (ALICE_ID, BOB_ID)
                ),
                DigestSubscription(group_id=g1.id, user_id=ALICE_ID),
                DigestSubscription(group_id=g1.id, user_id=OWNER_ID),
            ]
        )
        deal_values = dict(
            currency="CNY", unit_price=1250, opens_at=now, closes_at=later, status="open"
        )
        d1 = Deal(owner_id=OWNER_ID, title="Mangoes", **deal_values)
        d2 = Deal(owner_id=ALICE_ID, title="Honey", **deal_values)
        d3 = Deal(owner_id=BOB_ID, title="Jam", **deal_values)
        s.add_all([d1, d2, d3])
        await s.flush()
        ids["d1"], ids["d2"] = d1.id, d2.id
        s.add_all([DealPost(deal_id=d.id, group_id=g1.id, message_id=10 + d.id) for d in (d1, d2)])
        s.add_all(
            [
                ShareLink(code="alicode", deal_id=d1.id, group_id=g1.id, user_id=ALICE_ID),
                ShareLink(code="bobcode", deal_id=d1.id, group_id=g1.id, user_id=BOB_ID),
            ]
        )
        await s.flush()
        o_alice = Order(
            deal_id=d1.id,
            user_id=ALICE_ID,
            group_id=g1.id,
            quantity=2,
            status="confirmed",
            unit_price=1250,
            amount=2500,
            pickup_code="PK-A1",
            referrer_id=BOB_ID,
            share_code="bobcode",
        )
        o_bob = Order(
            deal_id=d1.id,
            user_id=BOB_ID,
            group_id=g1.id,
            quantity=1,
            status="confirmed",
            unit_price=1250,
            amount=1250,
            pickup_code="PK-B1",
            referrer_id=ALICE_ID,
            share_code="alicode",
        )
        o_bob2 = Order(
            deal_id=d2.id,
            user_id=BOB_ID,
            group_id=g1.id,
            quantity=3,
            status="active",
            pickup_code="PK-B2",
        )
        o_alice2 = Order(
            deal_id=d3.id,
            user_id=ALICE_ID,
            group_id=g2.id,
            quantity=5,
            status="active",
            pickup_code="PK-A2",
        )
        s.add_all([o_alice, o_bob, o_bob2, o_alice2])
        link_a = InviteLink(group_id=g1.id, user_id=ALICE_ID, link=ALICE_LINK, name="Alicia")
        link_old = InviteLink(
            group_id=g1.id,
            user_id=ALICE_ID,
            link="https://t.me/+aliciaOld",
            name="Alicia",
            revoked_at=now,
        )
        link_b = InviteLink(
            group_id=g2.id, user_id=BOB_ID, link="https://t.me/+bobLink", name="Bobrov"
        )
        s.add_all([link_a, link_old, link_b])
        await s.flush()
        s.add_all(
            [
                *(
                    Payment(
                        charge_id=f"tg-charge-{order.pickup_code}",
                        provider_charge_id=f"prov-{order.pickup_code}",
                        order_id=order.id,
                        user_id=order.user_id,
                        method="card",
                        currency="CNY",
                        amount=order.amount,
                        applied=True,
                        refund="none",
                        refund_reason="",
                        created_at=now,
                    )
                    for order in (o_alice, o_bob)
                ),
                WaitlistEntry(deal_id=d2.id, user_id=ALICE_ID, group_id=g1.id, created_at=now),
                WaitlistEntry(deal_id=d2.id, user_id=BOB_ID, group_id=g1.id, created_at=now),
                OfflineEvent(
                    deal_id=d1.id, group_id=g1.id, place="Hall", starts_at=later, created_at=now
                ),
                EventCheckin(
                    order_id=o_alice.id,
                    deal_id=d1.id,
                    group_id=g1.id,
                    user_id=ALICE_ID,
                    checked_by=OWNER_ID,
                    checked_in_at=now,
                ),  # fmt: skip
                EventCheckin(
                    order_id=o_bob.id,
                    deal_id=d1.id,
                    group_id=g1.id,
                    user_id=BOB_ID,
                    checked_by=ALICE_ID,
                    checked_in_at=now,
                ),  # fmt: skip
            ]
        )
        offers = []
        for n, starter in enumerate((ALICE_ID, BOB_ID)):
            offers.append(
                Team(
                    deal_id=d1.id,
                    group_id=g1.id,
                    starter_id=starter,
                    code=f"team{n}",
                    size=3,
                    price=800,
                    members=1,
                    status="open",
                    expires_at=later,
                    created_at=now,
                )
            )
            offers.append(
                Bargain(
                    deal_id=d1.id,
                    group_id=g1.id,
                    starter_id=starter,
                    code=f"bargain{n}",
                    start_price=1000,
                    floor_price=500,
                    helps_needed=2,
                    seed="00",
                    schedule="[200, 300]",
                    helps=1,
                    price=800,
                    status="open",
                    expires_at=later,
                    created_at=now,
                )
            )
        s.add_all(offers)
        await s.flush()
        alice_bargain, bob_bargain = offers[1], offers[3]
        s.add_all(
            [
                BargainHelp(
                    bargain_id=bob_bargain.id, helper_id=ALICE_ID, seq=1, amount=200, created_at=now
                ),
                BargainHelp(
                    bargain_id=alice_bargain.id, helper_id=BOB_ID, seq=1, amount=200, created_at=now
                ),
                HelpDay(helper_id=ALICE_ID, day=date(2026, 3, 1), helps=1),
                HelpDay(helper_id=BOB_ID, day=date(2026, 3, 1), helps=1),
            ]
        )
        coupon_values = dict(
            group_id=g1.id, kind="amount", value=300, currency="CNY", valid_days=7, total=10,
            claimed=2, created_at=now,
        )  # fmt: skip
        c_alice = Coupon(created_by=ALICE_ID, **coupon_values)
        c_owner = Coupon(created_by=OWNER_ID, **coupon_values)
        pack_a = CouponPack(code="packalice", group_id=g1.id, sharer_id=ALICE_ID, created_at=now)
        pack_b = CouponPack(code="packbob", group_id=g1.id, sharer_id=BOB_ID, created_at=now)
        s.add_all([c_alice, c_owner, pack_a, pack_b])
        await s.flush()
        s.add_all(
            [
                CouponDeal(coupon_id=c_owner.id, deal_id=d1.id),
                *(
                    CouponClaim(
                        coupon_id=c_owner.id,
                        user_id=order.user_id,
                        seq=1,
                        claimed_at=now,
                        expires_at=later,
                        order_id=order.id,
                        redeemed_at=now,
                        discount=300,
                    )  # fmt: skip
                    for order in (o_alice, o_bob)
                ),
                PackClaim(pack_id=pack_b.id, group_id=g1.id, friend_id=ALICE_ID, claimed_at=now),
                PackClaim(pack_id=pack_a.id, group_id=g1.id, friend_id=BOB_ID, claimed_at=now),
            ]
        )
        poll_values = dict(
            question="Which fruit?", options='["Mangoes", "Lychees"]', anonymous=False,
            multiple=False, status="open", closes_at=later, created_at=now,
        )  # fmt: skip
        poll_alice = Poll(owner_id=ALICE_ID, **poll_values)
        poll_owner = Poll(owner_id=OWNER_ID, **poll_values)
        s.add_all([poll_alice, poll_owner])
        await s.flush()
        poll_post = PollPost(
            poll_id=poll_owner.id, group_id=g1.id, message_id=41, tg_poll_id="tgpoll41"
        )
        s.add_all([poll_post, PollPost(poll_id=poll_alice.id, group_id=g1.id)])
        await s.flush()
        s.add_all(
            [
                PollVote(post_id=poll_post.id, voter_id=ALICE_ID, option_ids="0", voted_at=now),
                PollVote(post_id=poll_post.id, voter_id=BOB_ID, option_ids="1", voted_at=now),
            ]
        )
        lottery_values = dict(
            group_id=g1.id, prize="Mangoes", winners=1, rule="any", claim_hours=48,
            secret="00" * 32, commitment="11" * 32, entries=2, status="drawn", closes_at=now,
            created_at=now,
        )  # fmt: skip
        l_alice = Lottery(created_by=ALICE_ID, **lottery_values)
        l_owner = Lottery(created_by=OWNER_ID, **lottery_values)
        s.add_all([l_alice, l_owner])
        await s.flush()
        for lottery in (l_alice, l_owner):
            for n, who in enumerate((ALICE_ID, BOB_ID)):
                s.add(LotteryEntry(lottery_id=lottery.id, user_id=who, ticket=f"0000000{n}",
                                   created_at=now))  # fmt: skip
                s.add(LotteryWinner(lottery_id=lottery.id, seq=n + 1, ticket=f"0000000{n}",
                                    user_id=who, status="pending", claim_by=later,
                                    drawn_at=now))  # fmt: skip
        s.add_all(
            [
                Referral(
                    group_id=g1.id,
                    user_id=BOB_ID,
                    inviter_id=ALICE_ID,
                    invite_link_id=link_a.id,
                    joined_at=now,
                ),
                Referral(
                    group_id=g2.id,
                    user_id=ALICE_ID,
                    inviter_id=BOB_ID,
                    invite_link_id=link_b.id,
                    joined_at=now,
                ),
                ShareClick(code="bobcode", group_id=g1.id, user_id=ALICE_ID, clicked_at=now),
                ShareClick(code="bobcode", group_id=g1.id, user_id=BOB_ID, clicked_at=now),
                InlineCard(
                    inline_message_id="card-alice",
                    deal_id=d1.id,
                    group_id=g1.id,
                    share_code="alicecode",
                    sharer_id=ALICE_ID,
                    created_at=now,
                ),
                InlineCard(
                    inline_message_id="card-bob",
                    deal_id=d1.id,
                    group_id=g1.id,
                    share_code="bobcode",
                    sharer_id=BOB_ID,
                    created_at=now,
                ),
                MemberActivityDay(
                    group_id=g1.id,
                    day=date(2026, 3, 1),
                    user_id=ALICE_ID,
                    messages=7,
                    last_active_at=now,
                ),
                MemberActivityDay(
                    group_id=g1.id,
                    day=date(2026, 3, 1),
                    user_id=BOB_ID,
                    messages=3,
                    last_active_at=now,
                ),
                CreditEntry(
                    group_id=g1.id,
                    user_id=ALICE_ID,
                    currency="CNY",
                    amount=125,
                    kind="earned",
                    order_id=o_bob.id,
                    note="Alicia via alicode",
                    created_by=OWNER_ID,
                ),
                CreditEntry(
                    group_id=g1.id,
                    user_id=BOB_ID,
                    currency="CNY",
                    amount=-100,
                    kind="payout",
                    note="cash",
                    created_by=ALICE_ID,
                ),
                CreditEntry(
                    group_id=g2.id,
                    user_id=BOB_ID,
                    currency="CNY",
                    amount=60,
                    kind="earned",
                    order_id=o_alice.id,
                    note="",
                    created_by=None,
                ),
            ]
        )
        post_a = ScheduledPost(
            owner_id=ALICE_ID, text="Fresh honey on Friday", kind="once", run_at=later
        )
        post_o = ScheduledPost(owner_id=OWNER_ID, text="Mangoes!", kind="once", run_at=later)
        s.add_all([post_a, post_o])
        await s.flush()
        s.add_all(
            [
                ScheduledTarget(post_id=post_a.id, group_id=g1.id, next_run_at=later),
                ScheduledTarget(post_id=post_o.id, group_id=g1.id, next_run_at=later),
            ]
        )
        # Reviews: Alice's own (deleted with her), and Bob's that Alice replied to as an
        # administrator of G1 (her id and her reply go; Bob's words stay his).
        s.add_all(
            [
                Review(
                    order_id=o_alice.id, deal_id=d1.id, group_id=g1.id, product_key=d1.id,
                    user_id=ALICE_ID, rating=4, comment="Alicia loved them", created_at=now,
                    updated_at=now,
                ),
                Review(
                    order_id=o_bob.id, deal_id=d1.id, group_id=g1.id, product_key=d1.id,
                    user_id=BOB_ID, rating=2, comment="Bobrov found them sour", created_at=now,
                    updated_at=now, reply_text="Sorry, from Alicia", replied_by=ALICE_ID,
                    replied_at=later,
                ),
            ]
        )  # fmt: skip
        moderation_rows = [  # the allow-list, challenges and the moderation log
            ModAllowed(group_id=g1.id, user_id=ALICE_ID, added_by=OWNER_ID, created_at=now),
            ModAllowed(group_id=g1.id, user_id=BOB_ID, added_by=ALICE_ID, created_at=now),
            *(
                Challenge(group_id=g1.id, member_id=member, token=f"tok{member}", options="[]",
                          answer="abc", status="pending", deadline=later, created_at=now)
                for member in (ALICE_ID, BOB_ID)
            ),
            ModAction(key="m1", group_id=g1.id, member_id=ALICE_ID, kind="flood",
                      action="mute", at=now, until=later),
            ModAction(key="m2", group_id=g1.id, member_id=BOB_ID, kind="link", action="mute",
                      at=now, until=later, undone_at=now, undone_by=ALICE_ID),
        ]  # fmt: skip
        s.add_all(moderation_rows)
        ids["o_alice"], ids["o_bob"] = o_alice.id, o_bob.id
        ids["post_a"] = post_a.id

    # The seed must cover every person column of every table (a new table or column fails).
    async with harness.db.read() as s:
        for policy in privacy.policies():
            for column in policy.people:
                value = (
                    f"fsm:{BOT_ID}:{ALICE_ID}:{ALICE_ID}:default"
                    if column.name == "key"
                    else ALICE_ID
                )
                found = await s.scalar(
                    select(func.count()).select_from(policy.table).where(column == value)
                )
                assert found, f"seed() puts no row with Alice in {policy.table.name}.{column.name}"
    return ids


async def snapshot(harness) -> dict[str, list[tuple[Any, ...]]]:
    tables = {}
    async with harness.db.read() as s:
        for table in Base.metadata.sorted_tables:
            rows = (await s.execute(select(table))).all()
            tables[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return tables


def holds(value: Any, ids: tuple[int, ...], needles: tuple[str, ...]) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return value in ids
    if isinstance(value, str):
        low = value.lower()
        return any(n in low for n in needles)
    return False


def row_holds(row: tuple[Any, ...], ids: tuple[int, ...], needles: tuple[str, ...]) -> bool:
    return any(holds(v, ids, needles) for v in row)


async def tap(harness, user, action: str) -> m.AnswerCallbackQuery:
    """Press a /forgetme button, then let what it set going finish."""
    answer = await harness.tap(user, ForgetCB(action=action))
    await harness.settle()
    return answer


# ---------------------------------------------------------------- /forgetme


async def test_forgetme_leaves_no_personal_data_in_any_table(harness) -> None:
    ids = await seed(harness)
    harness.app.locales.set_user(ALICE_ID, "zh_Hans")
    harness.app.sender._inactive.add(ALICE_ID)
    # Counts of Alice (and Bob) still in memory, not yet flushed.
    buffered_at = datetime.now(UTC)
    harness.app.activity.record_message(G1_CHAT, ALICE_ID, buffered_at)
    harness.app.activity.record_message(G1_CHAT, BOB_ID, buffered_at)
    before = await snapshot(harness)

    await harness.send(ALICE, "/forgetme")
    [prompt] = harness.api.sent(ALICE_ID)
    # She chose Chinese: the prompt and the answer are in her language.
    assert "此操作无法撤销" in prompt.text and "匿名买家" in prompt.text
    buttons = [b.callback_data for row in prompt.reply_markup.inline_keyboard for b in row]
    assert buttons == [ForgetCB(action="confirm").pack(), ForgetCB(action="cancel").pack()]

    answer = await tap(harness, ALICE, "confirm")
    assert not answer.show_alert
    assert "（不含你的名字和 ID）的订单：2。" in harness.api.of(m.EditMessageText)[-1].text
    after = await snapshot(harness)

    # 1. Alice is nowhere: not her id (as a number or inside text), not her names.
    leaks = [
        (table, row)
        for table, rows in after.items()
        for row in rows
        if row_holds(row, (ALICE_ID,), ALICE_NEEDLES)
    ]
    assert leaks == []

    # 2. Every row without Alice is exactly as it was (Bob's, Owner's, the groups' counts),
    # but for the targets of her scheduled post, which go with it.
    def hers(table: str, row: tuple[Any, ...]) -> bool:
        if table == "scheduled_post_groups" and row[1] == ids["post_a"]:
            return True
        return row_holds(row, (ALICE_ID,), ALICE_NEEDLES)

    # The deals she ordered in get a new version and their posts are re-rendered without her
    # name: only the deals' `updated_at`, the posts' and inline cards' `rendered_at` and the
    # team cards (posted with the refresh: their message, claim and version) move.
    def columns(model: Any, *names: str) -> set[int]:
        return {[c.name for c in model.__table__.columns].index(name) for name in names}

    moving = {
        "deals": columns(Deal, "updated_at"),
        "deal_posts": columns(DealPost, "rendered_at"),
        "inline_cards": columns(InlineCard, "rendered_at"),
        "teams": columns(Team, "message_id", "posted_at", "rendered_at"),
    }

    def unversioned(table: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
        skip = moving.get(table, set())
        return tuple(value for index, value in enumerate(row) if index not in skip)

    for table, rows in before.items():
        kept = [unversioned(table, r) for r in after[table]]
        for row in rows:
            if not hers(table, row):
                assert unversioned(table, row) in kept, (table, row)

    # 3. The owners' books: orders and ledger lines are kept, with one pseudonym for Alice.
    async with harness.db.read() as s:
        orders = {o.id: o for o in await s.scalars(select(Order))}
        entries = list(await s.scalars(select(CreditEntry).order_by(CreditEntry.id)))
        deals = {d.id: d for d in await s.scalars(select(Deal))}
        referrals = list(await s.scalars(select(Referral).order_by(Referral.group_id)))
        g1 = await s.get(Group, ids["g1"])
    pseudonym = orders[ids["o_alice"]].user_id
    assert privacy.is_pseudonym(pseudonym)
    assert len(orders) == 4
    mine = orders[ids["o_alice"]]
    assert (mine.quantity, mine.amount, mine.unit_price, mine.status, mine.pickup_code) == (
        2,
        2500,
        1250,
        "confirmed",
        "PK-A1",
    )
    assert (mine.referrer_id, mine.share_code) == (BOB_ID, "bobcode")  # Bob's credit stays
    bobs = orders[ids["o_bob"]]
    assert (bobs.user_id, bobs.quantity, bobs.amount) == (BOB_ID, 1, 1250)
    assert (bobs.referrer_id, bobs.share_code) == (pseudonym, None)
    assert sorted(o.user_id for o in orders.values()).count(pseudonym) == 2
    assert deals[ids["d2"]].owner_id == pseudonym and deals[ids["d1"]].owner_id == OWNER_ID
    assert g1.added_by == pseudonym
    assert [(e.user_id, e.amount, e.note, e.created_by) for e in entries] == [
        (pseudonym, 125, "", OWNER_ID),
        (BOB_ID, -100, "cash", pseudonym),
        (BOB_ID, 60, "", None),
    ]
    assert [(r.user_id, r.inviter_id, r.invite_link_id) for r in referrals] == [
        (BOB_ID, pseudonym, None),  # Alice's link is gone, Bob's inviter is anonymous
        (pseudonym, BOB_ID, referrals[1].invite_link_id),  # Bob keeps his invitee, anonymous
    ]
    assert referrals[1].invite_link_id is not None
    # Alice's own rows are gone; her scheduled post with its target too.
    assert len(after["users"]) == 2 and len(after["scheduled_posts"]) == 1
    assert len(after["scheduled_post_groups"]) == 1
    assert len(after["invite_links"]) == 1 and len(after["share_links"]) == 1

    # 4. Her live invite link was revoked at Telegram (the revoked one is left alone).
    [revoke] = harness.api.of(m.RevokeChatInviteLink)
    assert (revoke.chat_id, revoke.invite_link) == (G1_CHAT, ALICE_LINK)
    # 5. In-memory caches forgot her.
    assert ALICE_ID not in harness.app.locales._users
    assert not harness.app.sender.is_inactive(ALICE_ID)
    # ... and the activity buffer: a flush after /forgetme writes Bob's count, not hers.
    await harness.app.flush_activity()
    async with harness.db.read() as s:
        counted = set(
            await s.scalars(select(MemberActivityDay.user_id).where(MemberActivityDay.messages > 0))
        )
    assert ALICE_ID not in counted and BOB_ID in counted


async def test_after_forgetting_the_user_is_new(harness) -> None:
    await seed(harness)
    await harness.send(ALICE, "/forgetme")
    await tap(harness, ALICE, "confirm")
    await harness.send(ALICE, "/myorders")
    assert "no orders yet" in harness.last(ALICE_ID).text
    async with harness.db.read() as s:
        user = await s.get(User, ALICE_ID)
    assert user is not None and user.language is None and not user.started


async def test_cancel_changes_nothing(harness) -> None:
    await seed(harness)
    await harness.send(ALICE, "/forgetme")
    before = await snapshot(harness)
    answer = await tap(harness, ALICE, "cancel")
    after = await snapshot(harness)
    assert "Cancelled" in answer.text
    assert harness.api.of(m.EditMessageText)[-1].text == "Nothing was deleted."

    def stable(tables):  # the middleware records the update and refreshes Alice's profile
        skip = {"processed_updates", "users"}
        return {t: rows for t, rows in tables.items() if t not in skip}

    assert stable(after) == stable(before)
    assert [r[:4] for r in after["users"]] == [r[:4] for r in before["users"]]
    assert harness.api.of(m.RevokeChatInviteLink) == []


async def test_a_failed_revocation_is_logged_and_changes_nothing(harness, caplog) -> None:
    await seed(harness)
    await harness.send(ALICE, "/forgetme")
    harness.api.fail_next("bad_request", m.RevokeChatInviteLink, message="Bad Request: no rights")
    with caplog.at_level(logging.WARNING):
        await tap(harness, ALICE, "confirm")
        await harness.app.sender.close()
    assert harness.api.of(m.RevokeChatInviteLink)
    async with harness.db.read() as s:
        assert await s.get(User, ALICE_ID) is None
        [failure] = await s.scalars(
            select(SendFailure).where(SendFailure.method == "RevokeChatInviteLink")
        )
        left = await s.scalar(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.kind == "revoke_link"))  # fmt: skip
    assert "no rights" in failure.reason and left == 0  # recorded, not retried, link gone


async def test_forged_action_is_refused(harness) -> None:
    await seed(harness)
    answer = await tap(harness, ALICE, "nuke")
    assert answer.show_alert
    async with harness.db.read() as s:
        assert await s.get(User, ALICE_ID) is not None


# ---------------------------------------------------------------- /mydata


async def test_mydata_exports_every_table_and_nothing_of_others(harness) -> None:
    await seed(harness)
    await harness.send(ALICE, "/mydata")
    [document] = harness.api.of(m.SendDocument)
    assert document.chat_id == ALICE_ID
    assert document.document.filename == f"tuan-mydata-{ALICE_ID}.json"
    raw = document.document.data.decode("utf-8")
    data = json.loads(raw)
    assert data["user_id"] == ALICE_ID
    tables = data["tables"]
    assert set(tables) == {p.table.name for p in privacy.policies()}
    assert document.caption.startswith("Everything I store about you")
    assert f"{sum(len(r) for r in tables.values())} records" in document.caption

    [me] = tables["users"]
    assert (me["first_name"], me["last_name"], me["username"]) == (
        "Alicia",
        "Zyxwerty",
        "alicia_zz",
    )
    assert me["created_at"].endswith("+00:00")
    # Her two orders, and Bob's through her share link without his id or pickup code.
    assert sorted(((o["user_id"], o["pickup_code"]) for o in tables["orders"]), key=repr) == sorted(
        [(ALICE_ID, "PK-A1"), (ALICE_ID, "PK-A2"), (None, None)], key=repr
    )
    d1_order = next(o for o in tables["orders"] if o["pickup_code"] == "PK-A1")
    assert (d1_order["quantity"], d1_order["amount"]) == (2, 2500)
    assert (d1_order["referrer_id"], d1_order["share_code"]) == (None, None)  # Bob's
    assert [d["title"] for d in tables["deals"]] == ["Honey"]
    assert [a["day"] for a in tables["member_activity_days"]] == ["2026-03-01"]
    assert sorted(link["link"] for link in tables["invite_links"]) == [
        ALICE_LINK,
        "https://t.me/+aliciaOld",
    ]
    assert [e["amount"] for e in tables["credit_entries"]] == [125, -100]
    assert tables["credit_entries"][0]["created_by"] is None  # the owner's id is theirs
    assert [f["key"] for f in tables["fsm_states"]] == [
        f"fsm:{BOT_ID}:{ALICE_ID}:{ALICE_ID}:default"
    ]
    assert [c["code"] for c in tables["share_clicks"]] == ["bobcode"]
    # Her review with her comment; Bob's she replied to: her reply, not his id or words.
    assert sorted(
        ((r["user_id"], r["comment"], r["reply_text"]) for r in tables["reviews"]), key=repr
    ) == sorted(
        [(ALICE_ID, "Alicia loved them", None), (None, None, "Sorry, from Alicia")], key=repr
    )
    # Nothing of Bob or the owner: no id, no name, no pickup code, no invite link.
    low = raw.lower()
    assert [n for n in BOB_NEEDLES if n in low] == []


@pytest.mark.parametrize("text", ["/mydata", "/forgetme"])
async def test_private_only(harness, text: str) -> None:
    from tests.builders import group

    await harness.send(ALICE, text, group(G1_CHAT))
    assert harness.api.of(m.SendDocument) == []
    assert not any("Forget me" in t for t in harness.api.texts())
