"""The deal's post in groups: publishing the card, its buttons and the group commands, the
refusals, forged data, replays, and a rush of joins with coalesced edits."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from aiogram.methods import (
    AnswerCallbackQuery,
    EditMessageCaption,
    EditMessageText,
    SendMessage,
    SendPhoto,
)
from sqlalchemy import func, select, update

from bot.posts import MAX_LISTED, PostRefresher, publish, render_card
from handlers.callbacks import DealCB
from models import Deal, DealPost, Group, GroupAdmin, Order, User
from services import deals
from services import orders as order_service
from services.timezones import utcnow
from tests.builders import group, person, private
from views.format import CAPTION_LIMIT, TEXT_LIMIT, tg_len

GROUP = group(-1001000000777, "Fruit Lovers")
OTHER = group(-1001000000888, "Veggie Club")
OWNER = person(501, "Owen")
ALICE = person(601, "Alice")
BOB = person(602, "Bob")
CAROL = person(603, "Carol")


# ---------------------------------------------------------------- helpers


async def add_group(
    harness, chat=GROUP, *, language: str = "en", timezone: str = "Asia/Shanghai", owner=OWNER
) -> int:
    """A group whose creator is `owner` (in the stored list and in Telegram's)."""
    harness.api.set_admins(chat.id, owner)
    async with harness.db.transaction() as s:
        row = Group(
            chat_id=chat.id,
            title=chat.title,
            type=chat.type,
            timezone=timezone,
            currency="CNY",
            language=language,
            is_active=True,
            admins_refreshed_at=utcnow(),
        )
        s.add(row)
        await s.flush()
        s.add(GroupAdmin(group_id=row.id, user_id=owner.id, status="creator"))
        return row.id


async def create_deal(harness, group_ids, *, owner: int = OWNER.id, **overrides) -> int:
    now = utcnow()
    spec = deals.DealSpec(
        title="Mangoes",
        currency="CNY",
        unit_price=1250,
        closes_at=now + timedelta(hours=2, minutes=15, seconds=30),
        group_ids=list(group_ids),
        description="Hainan mangoes, 5 kg box",
        pickup_note="Block 3 lobby, Saturday 10:00",
    )
    for key, value in overrides.items():
        setattr(spec, key, value)
    async with harness.db.transaction() as s:
        deal = await deals.create(s, owner, spec, now)
        return deal.id


def refresher(harness) -> PostRefresher:
    return harness.app.dispatcher["posts"]


async def publish_deal(harness, deal_id: int) -> int:
    app = harness.app
    return await publish(app.bot, app.db, app.i18n, deal_id, sender=app.sender)


async def ready(harness, **overrides) -> tuple[int, int]:
    """A group and a published deal in it: (group id, deal id)."""
    refresher(harness).interval = 0.05
    group_id = await add_group(harness)
    deal_id = await create_deal(harness, [group_id], **overrides)
    assert await publish_deal(harness, deal_id) == 1
    return group_id, deal_id


def tap(harness, user, deal_id, action="join", qty=0, chat=GROUP, message_id=1):
    data = DealCB(action=action, deal_id=deal_id, qty=qty).pack()
    return harness.updates.callback(user, data, chat=chat, message_id=message_id)


async def press(harness, user, deal_id, action="join", qty=0, chat=GROUP) -> AnswerCallbackQuery:
    """Press a deal post's button (in GROUP by default)."""
    return await harness.tap(user, DealCB(action=action, deal_id=deal_id, qty=qty), chat)


async def quantities(harness, deal_id: int) -> dict[int, int]:
    async with harness.db.read() as s:
        rows = await s.scalars(select(Order).where(Order.deal_id == deal_id))
        return {o.user_id: o.quantity for o in rows if o.status == "active" and o.quantity}


async def deal_row(harness, deal_id: int) -> Deal:
    async with harness.db.read() as s:
        return await deals.get(s, deal_id)


# ---------------------------------------------------------------- publishing


async def test_publish_posts_the_card_in_each_groups_language_once(harness) -> None:
    en_id = await add_group(harness, GROUP, language="en")
    zh_id = await add_group(harness, OTHER, language="zh_Hans")
    deal_id = await create_deal(
        harness,
        [en_id, zh_id],
        tiers=[(10, 1100), (20, 990)],
        stock=100,
        min_kind="units",
        min_value=5,
    )
    assert await publish_deal(harness, deal_id) == 2

    [en] = harness.api.sent(GROUP.id)
    [zh] = harness.api.sent(OTHER.id)
    code = f"D{deal_id}"
    assert "<b>Mangoes</b>" in en.text and "Hainan mangoes, 5 kg box" in en.text
    assert "💰 <b>CN¥12.50</b> per unit" in en.text
    assert "≥10 CN¥11.00 · ≥20 CN¥9.90" in en.text
    assert "0/10 · 10 more to unlock CN¥11.00" in en.text
    assert "0/5 · 5 more units needed" in en.text
    assert "100 of 100 left" in en.text
    assert "Closes in 2 h 15 min" in en.text
    assert "Block 3 lobby, Saturday 10:00" in en.text
    assert f"<code>{code}</code>" in en.text and f"/buy {code} 2" in en.text
    # Chinese group: Babel formats money for zh_Hans_CN (¥12.50, not CN¥12.50), same numbers
    assert "¥12.50" in zh.text and "CN¥" not in zh.text
    assert "月" in zh.text and "周" in zh.text  # the closing date, written for Chinese readers
    assert "0/10" in zh.text and "100" in zh.text and f"/buy {code} 2" in zh.text
    assert tg_len(en.text) <= TEXT_LIMIT
    data = harness.callbacks(en)
    assert all(len(d.encode()) <= 64 for d in data)
    assert DealCB(action="join", deal_id=deal_id).pack() in data
    assert [DealCB.unpack(d).qty for d in data if d.startswith("dp:qty")] == [1, 2, 3, 5]
    assert {DealCB.unpack(d).action for d in data} == {"join", "qty", "cancel", "info"}
    # Share opens Telegram's chat picker with the deal's code as the inline query (two taps)
    (shares,) = [b for row in en.reply_markup.inline_keyboard for b in row if b.text == "📤 Share"]
    picker = shares.switch_inline_query_chosen_chat
    assert shares.callback_data is None and picker.query == code
    assert picker.allow_user_chats and picker.allow_group_chats
    assert not picker.allow_bot_chats and not picker.allow_channel_chats

    async with harness.db.read() as s:
        rows = {p.group_id: p for p in await s.scalars(select(DealPost))}
    assert rows[en_id].message_id == 1 and rows[zh_id].message_id == 1  # the fake's first ids
    assert all(p.posted_at is not None for p in rows.values())

    # idempotent: nothing is sent again
    assert await publish_deal(harness, deal_id) == 0
    assert len(harness.api.of(SendMessage)) == 2


async def test_publish_403_marks_group_inactive_and_the_other_group_still_gets_it(
    harness,
) -> None:
    kicked = await add_group(harness, GROUP)
    fine = await add_group(harness, OTHER)
    deal_id = await create_deal(harness, [kicked, fine])
    harness.api.fail_next("forbidden", SendMessage, chat_id=GROUP.id)

    assert await publish_deal(harness, deal_id) == 1

    async with harness.db.read() as s:
        groups = {g.id: g for g in await s.scalars(select(Group))}
        posts = {p.group_id: p for p in await s.scalars(select(DealPost))}
    assert groups[kicked].is_active is False and groups[fine].is_active is True
    assert posts[kicked].message_id is None and posts[kicked].posted_at is None
    assert posts[fine].message_id is not None
    assert len(harness.api.sent(OTHER.id)) == 1
    # the inactive group is not tried again
    assert await publish_deal(harness, deal_id) == 0


async def test_concurrent_publish_sends_each_post_once(harness) -> None:
    group_id = await add_group(harness)
    deal_id = await create_deal(harness, [group_id])
    results = await asyncio.gather(*(publish_deal(harness, deal_id) for _ in range(5)))
    assert sorted(results) == [0, 0, 0, 0, 1]
    assert len(harness.api.sent(GROUP.id)) == 1


async def test_scheduled_deal_is_not_posted_before_it_opens(harness) -> None:
    group_id = await add_group(harness)
    deal_id = await create_deal(harness, [group_id], opens_at=utcnow() + timedelta(hours=1))
    assert await publish_deal(harness, deal_id) == 0
    assert harness.api.sent(GROUP.id) == []


async def test_photo_deal_is_sent_as_photo_with_a_caption_within_1024(harness) -> None:
    group_id, deal_id = await ready(
        harness, photo_file_id="AgACAgIAAxkBAAIBQ2Z", description="Sweet " * 150
    )
    [photo] = harness.api.of(SendPhoto)
    assert photo.chat_id == GROUP.id and photo.photo == "AgACAgIAAxkBAAIBQ2Z"
    assert tg_len(photo.caption) <= CAPTION_LIMIT and "Mangoes" in photo.caption
    # 60 members with long names join: the caption still fits and the list is folded
    for i in range(60):
        member = person(10_000 + i, "Μαρία-Ελένη 王小明 " + "x" * 40)
        assert (await press(harness, member, deal_id)).text.startswith("You're in")
    await harness.app.settle()
    caption = [e for e in harness.api.of(EditMessageCaption) if e.chat_id == GROUP.id][-1]
    assert tg_len(caption.caption) <= CAPTION_LIMIT
    assert "60 people, 60 units" in caption.caption and "more" in caption.caption
    assert caption.reply_markup is not None


def test_long_lists_fold_and_stay_under_the_text_limit() -> None:
    deal = Deal(
        id=17, owner_id=1, title="<Mangoes & co>", description="d" * 3000, photo_file_id=None,
        currency="CNY", unit_price=1250, tiers="[]", min_kind=None, min_value=None,
        stock_total=None, stock_left=None, per_person_limit=None, status="open",
        opens_at=utcnow(), closes_at=utcnow() + timedelta(hours=1), pickup_note="",
        total_qty=87, participants=87,
    )  # fmt: skip
    grp = Group(chat_id=-1, title="G", timezone="Asia/Shanghai", currency="CNY", language="en")
    signups = [(Order(quantity=1), User(id=i, first_name=f"<b>{'名' * 60}</b>")) for i in range(87)]
    from aiogram.utils.i18n import I18n

    from bot.i18n import LOCALES_DIR

    i18n = I18n(path=LOCALES_DIR, default_locale="en", domain="messages")
    with i18n.context():
        text, markup = render_card(deal, signups, grp, utcnow())
    assert tg_len(text) <= TEXT_LIMIT
    assert "&lt;Mangoes &amp; co&gt;" in text
    assert "<b>名" not in text and "&lt;b&gt;" in text
    listed = [line for line in text.splitlines() if line[:1].isdigit() and ". " in line]
    assert 0 < len(listed) <= MAX_LISTED
    assert f"…and {87 - len(listed)} more" in text
    assert markup is not None


# ---------------------------------------------------------------- buttons


async def test_join_quantity_cancel_and_their_refusals(harness) -> None:
    _group_id, deal_id = await ready(harness, stock=10, tiers=[(3, 1100)])
    fed = 0

    async def go(user, action, qty=0) -> AnswerCallbackQuery:
        nonlocal fed
        fed += 1
        return await press(harness, user, deal_id, action, qty)

    assert (await go(ALICE, "join")).text == "You're in: Mangoes ×1."
    await harness.app.settle()
    edit = harness.last_edit(GROUP)
    assert "1. Alice ×1" in edit.text and "1/3 · 2 more to unlock CN¥11.00" in edit.text
    assert edit.reply_markup is not None

    double = await go(ALICE, "join")  # a double tap changes nothing
    assert double.text == "You are already in with 1 unit." and double.show_alert
    assert (await go(ALICE, "qty", 3)).text == "Your order for Mangoes is now ×3."
    assert (await go(ALICE, "qty", 3)).text == "You already have ×3 of Mangoes."
    assert (await go(BOB, "qty", 2)).text == "You're in: Mangoes ×2."
    await harness.app.settle()
    edit = harness.last_edit(GROUP)
    assert "1. Alice ×3\n2. Bob ×2" in edit.text
    assert "<s>CN¥12.50</s> <b>CN¥11.00</b>" in edit.text and "5 of 10 left" in edit.text
    assert await quantities(harness, deal_id) == {ALICE.id: 3, BOB.id: 2}

    assert (await go(ALICE, "cancel")).text == "Your order for Mangoes is cancelled."
    not_in = await go(ALICE, "cancel")
    assert not_in.text == "You have no order in this deal." and not_in.show_alert
    assert await quantities(harness, deal_id) == {BOB.id: 2}

    # Details opens the presser's own share link: the whole deal in private, the deep link
    # ready to forward (the post's Share button opens the chat picker instead)
    details = await go(CAROL, "info")
    assert "Hainan mangoes" in details.text and "Block 3" in details.text
    assert details.url.startswith("https://t.me/tuan_test_bot?start=")
    assert len(details.text) <= 200
    share = await go(CAROL, "share")  # the Share button of posts sent before inline cards
    assert share.url == details.url
    assert f"D{deal_id}" in share.text
    # the presser's own share link (tests/test_referrals.py covers it in depth)
    assert share.url.startswith("https://t.me/tuan_test_bot?start=") and share.url in share.text
    assert await quantities(harness, deal_id) == {BOB.id: 2}
    await harness.app.settle()
    assert "1. Bob ×2" in harness.last_edit(GROUP).text
    assert len(harness.api.answers()) == fed


async def test_sold_out_and_limit(harness) -> None:
    _group_id, deal_id = await ready(harness, stock=3, per_person_limit=2)
    assert (await press(harness, ALICE, deal_id, "qty", 2)).text.startswith("You're in")
    short = await press(harness, BOB, deal_id, "qty", 2)
    assert short.text == "Not enough stock: only 1 unit left." and short.show_alert
    assert (await press(harness, BOB, deal_id, "join")).text.startswith("You're in")
    sold_out = await press(harness, CAROL, deal_id, "join")
    assert sold_out.text == "Sold out."
    # ×3 is not offered with a limit of 2; forged anyway, it is refused
    limit = await press(harness, BOB, deal_id, "qty", 3)
    assert limit.text == "The limit is 2 units per person."
    assert await quantities(harness, deal_id) == {ALICE.id: 2, BOB.id: 1}
    deal = await deal_row(harness, deal_id)
    assert (deal.stock_left, deal.total_qty, deal.participants) == (0, 3, 2)
    [post] = harness.api.sent(GROUP.id)
    assert [DealCB.unpack(d).qty for d in harness.callbacks(post) if "qty" in d] == [1, 2]


async def test_closed_paused_and_not_open_yet_are_refused(harness) -> None:
    group_id, deal_id = await ready(harness)
    async with harness.db.transaction() as s:
        await deals.set_paused(s, deal_id, OWNER.id, True, utcnow())
    paused = await press(harness, ALICE, deal_id, "join")
    assert paused.text == "This deal is paused for now."
    async with harness.db.transaction() as s:
        await deals.set_paused(s, deal_id, OWNER.id, False, utcnow())
        await deals.close(s, deal_id, utcnow())
    closed = await press(harness, ALICE, deal_id, "join")
    assert closed.text == "This deal is closed."
    assert (await press(harness, ALICE, deal_id, "qty", 2)).text == "This deal is closed."

    # opens tomorrow at 09:00 Shanghai time = 01:00 UTC
    opens = (utcnow() + timedelta(days=1)).replace(hour=1, minute=0, second=0, microsecond=0)
    later = await create_deal(harness, [group_id], opens_at=opens, closes_at=opens + timedelta(1))
    early = await press(harness, ALICE, later, "join")
    assert early.text.startswith("This deal is not open yet: it opens ")
    assert early.text.endswith(" 09:00.")
    assert await quantities(harness, deal_id) == {} and await quantities(harness, later) == {}


async def test_deal_past_its_closing_time_is_refused_before_the_scheduler_runs(harness) -> None:
    _group_id, deal_id = await ready(harness)
    async with harness.db.transaction() as s:
        await s.execute(
            update(Deal).where(Deal.id == deal_id).values(closes_at=utcnow() - timedelta(1))
        )
    assert (await press(harness, ALICE, deal_id, "join")).text == "This deal is closed."
    assert (await deal_row(harness, deal_id)).status == "open"  # not closed yet, but refused
    assert await quantities(harness, deal_id) == {}


async def test_forged_callback_data_is_refused_and_changes_nothing(harness) -> None:
    group_id, deal_id = await ready(harness)
    other_group = await add_group(harness, OTHER)
    elsewhere = await create_deal(harness, [other_group])
    assert await publish_deal(harness, elsewhere) == 1
    refusal = "This deal is not posted in this chat."
    impossible = "That quantity is not possible."
    stale = "This button is out of date."  # numbers out of range do not even unpack

    cases = [
        (DealCB(action="join", deal_id=999_999).pack(), GROUP, refusal),
        (DealCB(action="join", deal_id=elsewhere).pack(), GROUP, refusal),
        (DealCB(action="info", deal_id=elsewhere).pack(), GROUP, refusal),
        (DealCB(action="join", deal_id=deal_id).pack(), private(ALICE), refusal),
        (DealCB(action="qty", deal_id=deal_id, qty=0).pack(), GROUP, impossible),
        (f"dp:qty:{deal_id}:-5", GROUP, stale),
        (f"dp:qty:{deal_id}:{10**9}", GROUP, stale),
        (f"dp:qty:{deal_id}:10001", GROUP, stale),  # above MAX_QUANTITY
        (DealCB(action="steal", deal_id=deal_id).pack(), GROUP, stale),
        ("dp:join:99999999999999999999:0", GROUP, stale),
        (f"dp:join:{2**31}:0", GROUP, stale),
        ("dp:join:0:0", GROUP, stale),
        ("dp:join:-1:0", GROUP, stale),
        ("dp:join:abc:0", GROUP, stale),
        ("dp:" + "x" * 13 + f":{deal_id}:0", GROUP, stale),  # an action longer than any
        ("dp:", GROUP, stale),
    ]  # fmt: skip
    for data, chat, expected in cases:
        answer = await harness.tap(ALICE, data, chat)
        assert answer.text == expected, data
    # a button of an unrelated feature with garbage data is still answered (fallback)
    await harness.tap(ALICE, "zz:garbage", GROUP)

    assert await quantities(harness, deal_id) == {} and await quantities(harness, elsewhere) == {}
    async with harness.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Order)) == 0
    assert len(harness.api.answers()) == len(cases) + 1
    assert group_id


async def test_an_unexpected_failure_is_answered_and_rolled_back(harness, monkeypatch) -> None:
    _group_id, deal_id = await ready(harness)
    real_join = order_service.join

    async def join_then_fail(session, *args, **kwargs):
        await real_join(session, *args, **kwargs)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(order_service, "join", join_then_fail)
    update_ = tap(harness, ALICE, deal_id)
    await harness.feed(update_)
    [answer] = harness.api.answers()
    assert answer.text == "Something went wrong. Please try again." and answer.show_alert
    assert await quantities(harness, deal_id) == {}  # rolled back

    monkeypatch.setattr(order_service, "join", real_join)
    # a bug would fail the same way again: recorded as failed and processed, so a
    # redelivery changes nothing (bot/failures.py); the member's next tap is handled
    await harness.feed(update_)
    assert await quantities(harness, deal_id) == {}
    await harness.feed(tap(harness, ALICE, deal_id))
    assert await quantities(harness, deal_id) == {ALICE.id: 1}


async def test_html_in_a_members_name_is_shown_literally(harness) -> None:
    _group_id, deal_id = await ready(harness)
    mallory = person(666, "<b>x</b>", last_name="<i>y</i>")
    await press(harness, mallory, deal_id, "join")
    await harness.app.settle()
    text = harness.last_edit(GROUP).text
    assert "1. &lt;b&gt;x&lt;/b&gt; &lt;i&gt;y&lt;/i&gt; ×1" in text
    assert "<b>x</b>" not in text


async def test_replayed_update_changes_nothing(harness) -> None:
    _group_id, deal_id = await ready(harness)
    join = tap(harness, ALICE, deal_id, "qty", 2)
    await harness.feed(join)
    await harness.feed(join)
    cancel = tap(harness, ALICE, deal_id, "cancel")
    await harness.feed(cancel)
    await harness.feed(join)  # a late replay of the join does not undo the cancel
    await harness.feed(cancel)
    assert await quantities(harness, deal_id) == {}
    assert [a.text for a in harness.api.answers()] == [
        "You're in: Mangoes ×2.",
        "Your order for Mangoes is cancelled.",
    ]
    deal = await deal_row(harness, deal_id)
    assert (deal.total_qty, deal.participants) == (0, 0)


# ---------------------------------------------------------------- commands


async def test_buy_and_cancel_commands(harness) -> None:
    _group_id, deal_id = await ready(harness, stock=5)
    code = f"D{deal_id}"
    assert (
        await harness.say(ALICE, f"/buy {code} 2", GROUP, expect=1)
    ).text == "You're in: Mangoes ×2."
    assert (await harness.say(ALICE, f"/buy {code.lower()}", GROUP, expect=1)).text == (
        "Your order for Mangoes is now ×1."
    )  # absolute: /buy D17 = 1
    assert (await harness.say(BOB, f"/buy@tuan_test_bot {deal_id} ×3", GROUP, expect=1)).text == (
        "You're in: Mangoes ×3."
    )
    assert (
        await harness.say(CAROL, f"/buy {code} 2", GROUP, expect=1)
    ).text == "Not enough stock: only 1 unit left."
    assert await quantities(harness, deal_id) == {ALICE.id: 1, BOB.id: 3}

    usage = "Usage: <code>/buy D17 2</code> (the deal code, then how many you want)"
    for bad in ("/buy", f"/buy {code} 0", f"/buy {code} -1", f"/buy {code} two", "/buy hello",
                f"/buy {code} 2 3", f"/buy 2 {code}", f"/buy {code} 99999999999"):  # fmt: skip
        assert (await harness.say(ALICE, bad, GROUP, expect=1)).text == usage, bad
    assert (await harness.say(ALICE, "/buy D999999 1", GROUP, expect=1)).text == (
        "There is no deal D999999 in this group. Send /deals to see what is open."
    )

    assert (await harness.say(ALICE, f"/cancel {code}", GROUP, expect=1)).text == (
        "Your order for Mangoes is cancelled."
    )
    assert (
        await harness.say(ALICE, f"/cancel {code}", GROUP, expect=1)
    ).text == "You have no order in this deal."
    assert (
        await harness.say(ALICE, "/cancel", GROUP, expect=1)
    ).text == "Usage: <code>/cancel D17</code>"
    assert await quantities(harness, deal_id) == {BOB.id: 3}
    # replies answer the member's message
    assert harness.last(GROUP).reply_parameters is not None

    await harness.app.settle()
    assert (
        "1. Bob ×3" in harness.last_edit(GROUP).text
        and "Alice" not in harness.last_edit(GROUP).text
    )


async def test_commands_refuse_deals_of_other_groups(harness) -> None:
    await ready(harness)
    other_group = await add_group(harness, OTHER)
    elsewhere = await create_deal(harness, [other_group], title="Durian")
    code = f"D{elsewhere}"
    refusal = f"There is no deal {code} in this group. Send /deals to see what is open."
    assert (await harness.say(ALICE, f"/buy {code} 1", GROUP, expect=1)).text == refusal
    assert (await harness.say(ALICE, f"/cancel {code}", GROUP, expect=1)).text == refusal
    assert await quantities(harness, elsewhere) == {}


async def test_deals_command_lists_what_is_open_in_this_group(harness) -> None:
    group_id, deal_id = await ready(harness)
    second = await create_deal(harness, [group_id], title="Lychee <fresh>", unit_price=3000)
    other_group = await add_group(harness, OTHER)
    await create_deal(harness, [other_group], title="Durian")
    await press(harness, ALICE, deal_id, "qty", 2)

    text = (await harness.say(BOB, "/deals", GROUP, expect=1)).text
    assert text.startswith("<b>Open deals</b>")
    assert f"<code>D{deal_id}</code> Mangoes · CN¥12.50 · 1 person · closes in 2 h" in text
    assert f"<code>D{second}</code> Lychee &lt;fresh&gt; · CN¥30.00 · 0 people" in text
    assert "Durian" not in text and "/buy D17 2" in text

    assert (await harness.say(BOB, "/deals", group(-1001000000999, "Empty"), expect=1)).text == (
        "No deals are open in this group right now."
    )


async def test_group_commands_are_not_taken_in_private_chat(harness) -> None:
    _group_id, deal_id = await ready(harness)
    await harness.send(ALICE, f"/buy D{deal_id} 1")
    assert await quantities(harness, deal_id) == {}


# ---------------------------------------------------------------- a rush of joins


async def test_rush_of_joins_never_oversells_and_edits_are_coalesced(harness) -> None:
    group_id, deal_id = await ready(harness, stock=100)
    posts = refresher(harness)
    posts.interval = 0.25
    harness.api.clear()
    members = [person(20_000 + i, f"M{i}") for i in range(520)]
    updates = [tap(harness, m, deal_id) for m in members]

    started = time.monotonic()
    await asyncio.gather(*(harness.feed(u) for u in updates))
    duration = time.monotonic() - started
    await posts.flush()

    answers = harness.api.answers()
    assert len(answers) == len(updates)
    assert len({a.callback_query_id for a in answers}) == len(updates)
    texts = [a.text for a in answers]
    assert texts.count("You're in: Mangoes ×1.") == 100
    assert texts.count("Sold out.") == 420
    deal = await deal_row(harness, deal_id)
    assert (deal.stock_left, deal.total_qty, deal.participants) == (0, 100, 100)
    async with harness.db.read() as s:
        units = await s.scalar(
            select(func.sum(Order.quantity)).where(
                Order.deal_id == deal_id, Order.status == "active"
            )
        )
    assert units == 100

    edits = harness.api.of(EditMessageText)
    assert 1 <= len(edits) <= duration / posts.interval + 2, (len(edits), duration)
    final = edits[-1].text
    assert "100 people, 100 units" in final and "0 of 100 left" in final
    assert f"…and {100 - MAX_LISTED} more" in final
    print(f"\n520 joins in {duration:.2f} s; {len(edits)} edits at interval {posts.interval}")
    assert group_id
    # at closing exactly those 100 units are confirmed
    async with harness.db.transaction() as s:
        closing = await deals.close(s, deal_id, utcnow())
    assert closing.outcome == "succeeded"
    confirmed = [o for o in closing.orders if o.status == "confirmed"]
    assert (len(confirmed), sum(o.quantity for o in confirmed)) == (100, 100)


async def test_refresher_coalesces_a_steady_stream_and_ends_on_the_final_state(harness) -> None:
    _group_id, deal_id = await ready(harness)
    posts = refresher(harness)
    posts.interval = 0.1
    harness.api.clear()
    started = time.monotonic()
    for i in range(300):  # a join every ~3 ms, each touching the post after its commit
        async with harness.db.transaction() as s:
            await order_service.act(
                s, deal_id=deal_id, user_id=30_000 + i, action="join", group=None, now=utcnow()
            )
        await asyncio.sleep(0.002)
    duration = time.monotonic() - started
    await posts.flush()

    edits = harness.api.of(EditMessageText)
    assert 2 <= len(edits) <= duration / posts.interval + 2, (len(edits), duration)
    gaps = [b - a for a, b in zip(harness.api.times, harness.api.times[1:], strict=False)]
    assert min(gaps) >= posts.interval * 0.9  # never two edits of one post within interval
    assert "300 people, 300 units" in edits[-1].text
    print(f"\n300 joins over {duration:.2f} s; {len(edits)} edits at interval {posts.interval}")
