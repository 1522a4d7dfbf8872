"""Deal cards through inline mode (issue 18): `@<bot> <query>` lists the open deals of the
person's groups as cards; the card sent is recorded once; taps on it anywhere order in the
deal's group through the one order action, members-only or open to anyone, credited to the
sharer; cards stay live (coalesced edits, closed at the closing, dropped when Telegram
refuses edits)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager

from aiogram.methods import AnswerInlineQuery, EditMessageCaption, EditMessageText
from aiogram.types import ChatMemberLeft, InlineQueryResultArticle, InlineQueryResultCachedPhoto
from aiogram.types import User as TgUser
from sqlalchemy import event, func, select, update

from handlers.callbacks import CardCB
from models import Deal, InlineCard, InviteLink, Membership, Order, ShareLink, User
from services import deals
from services.timezones import utcnow
from tests.builders import group, person
from tests.test_deal_post import (
    GROUP,
    OTHER,
    add_group,
    create_deal,
    publish_deal,
    refresher,
)

ALICE = person(601, "Alice")  # a member of GROUP who shares cards
BOB = person(602, "Bob")  # a member of GROUP (Telegram says so) who taps
CAROL = person(603, "Carol")  # in no group
ZHOU = person(604, "Zhou", language="zh-hans")  # a member of GROUP who reads Chinese


async def member(harness, group_id: int, user: TgUser, status: str = "member") -> None:
    async with harness.db.transaction() as s:
        s.add(Membership(group_id=group_id, user_id=user.id, status=status, joined_at=utcnow()))


def not_in(harness, chat, user: TgUser) -> None:
    """Telegram says `user` is not in `chat` (getChatMember: left)."""
    harness.api.members[(chat.id, user.id)] = ChatMemberLeft(user=user)


async def setup(harness, **deal) -> tuple[int, int]:
    refresher(harness).interval = 0.05
    group_id = await add_group(harness)
    deal_id = await create_deal(harness, [group_id], **deal)
    assert await publish_deal(harness, deal_id) == 1
    await member(harness, group_id, ALICE)
    return group_id, deal_id


async def search(harness, user: TgUser, query: str = "") -> AnswerInlineQuery:
    before = len(harness.api.of(AnswerInlineQuery))
    await harness.feed(harness.updates.inline_query(user, query))
    answers = harness.api.of(AnswerInlineQuery)
    assert len(answers) == before + 1, "every inline query is answered once"
    return answers[-1]


async def share_card(harness, user: TgUser, deal_id: int, imid: str | None = None) -> str:
    """`user` finds the deal by its code and sends its card (chosen_inline_result)."""
    answer = await search(harness, user, f"D{deal_id}")
    [found] = answer.results
    if imid is not None:
        await harness.feed(harness.updates.chosen(user, found.id, imid))
    return found.id


async def tap_card(harness, user: TgUser, code: str, imid: str, action="join", qty=0):
    data = CardCB(action=action, code=code, qty=qty).pack()
    before = len(harness.api.answers())
    await harness.feed(harness.updates.card_tap(user, data, imid))
    answers = harness.api.answers()
    assert len(answers) == before + 1, "every tap is answered exactly once"
    return answers[-1]


async def order_of(harness, deal_id: int, user_id: int) -> Order | None:
    async with harness.db.read() as s:
        return await s.scalar(
            select(Order).where(Order.deal_id == deal_id, Order.user_id == user_id)
        )


async def cards(harness) -> list[InlineCard]:
    async with harness.db.read() as s:
        return list(await s.scalars(select(InlineCard).order_by(InlineCard.created_at)))


async def set_audience(harness, deal_id: int, audience: str) -> None:
    async with harness.db.transaction() as s:
        await s.execute(update(Deal).where(Deal.id == deal_id).values(audience=audience))


def card_edits(harness, imid: str) -> list:
    return [
        r
        for r in harness.api.requests
        if isinstance(r, (EditMessageText, EditMessageCaption)) and r.inline_message_id == imid
    ]


# ---------------------------------------------------------------- inline search


async def test_search_lists_open_deals_of_the_persons_groups_only(harness) -> None:
    group_id, mangoes = await setup(harness)
    other_id = await add_group(harness, OTHER)
    durian = await create_deal(harness, [other_id], title="Durian")  # Alice is not in OTHER
    await publish_deal(harness, durian)
    apples = await create_deal(harness, [group_id], title="Apples")
    await publish_deal(harness, apples)
    juice = await create_deal(harness, [group_id], title="Mango juice")
    await publish_deal(harness, juice)
    async with harness.db.transaction() as s:  # closed deals are not offered
        await s.execute(update(Deal).where(Deal.id == juice).values(status="succeeded"))

    answer = await search(harness, ALICE)
    assert answer.is_personal and answer.cache_time <= 30
    titles = [r.title for r in answer.results]
    assert titles == ["Apples", "Mangoes"]  # newest first; no Durian, no closed juice
    async with harness.db.read() as s:
        links = {
            link.code: link
            for link in await s.scalars(select(ShareLink).where(ShareLink.user_id == ALICE.id))
        }
    for item in answer.results:  # the result id is Alice's share code for that deal
        assert item.id in links and links[item.id].group_id == group_id
        assert isinstance(item, InlineQueryResultArticle)
        buttons = [b for row in item.reply_markup.inline_keyboard for b in row]
        joins = [CardCB.unpack(b.callback_data) for b in buttons if b.callback_data]
        assert {j.code for j in joins} == {item.id}
        assert {j.action for j in joins} == {"join", "qty", "cancel"}
        [details] = [b for b in buttons if b.url]
        assert details.url == f"https://t.me/tuan_test_bot?start={item.id}"

    # partial titles, any case; the deal's code exactly
    assert [r.title for r in (await search(harness, ALICE, "MANG")).results] == ["Mangoes"]
    assert [r.title for r in (await search(harness, ALICE, "ppl")).results] == ["Apples"]
    assert [r.title for r in (await search(harness, ALICE, f"D{mangoes}")).results] == ["Mangoes"]
    assert (await search(harness, ALICE, "durian")).results == []
    assert (await search(harness, ALICE, "50%_")).results == []  # LIKE wildcards are literal
    # someone in no group sees nothing (and no share link is made for them)
    assert (await search(harness, CAROL)).results == []
    async with harness.db.read() as s:
        assert await s.scalar(select(func.count()).where(ShareLink.user_id == CAROL.id)) == 0


async def test_a_card_shows_what_the_group_post_shows_in_the_readers_language(harness) -> None:
    group_id, deal_id = await setup(harness, min_kind="units", min_value=5, stock=100)
    await member(harness, group_id, ZHOU)
    await tap_card(harness, BOB, await share_card(harness, ALICE, deal_id), "IM-any")

    [en] = (await search(harness, ALICE)).results
    text = en.input_message_content.message_text
    assert "🛒 <b>Mangoes</b>" in text and "CN¥12.50" in text
    assert "1/5 · 4 more units needed" in text and "99 of 100 left" in text
    assert "Closes in 2 h 15 min" in text and "Block 3 lobby" in text
    assert "Bob ×1" in text  # the group post lists the sign-ups: the card shows the same
    assert "/buy" not in text  # works in the group only
    assert "Fruit Lovers" in en.description and f"D{deal_id}" in en.description

    [zh] = (await search(harness, ZHOU)).results
    zh_text = zh.input_message_content.message_text
    assert "¥12.50" in zh_text and "CN¥" not in zh_text
    assert "接龙" in zh_text or "人" in zh_text
    labels = [b.text for row in zh.reply_markup.inline_keyboard for b in row]
    assert "🙋 Join +1" not in labels and len(labels) == len(
        [b for row in en.reply_markup.inline_keyboard for b in row]
    )


async def test_a_deal_with_a_photo_is_a_cached_photo_with_the_card_as_caption(harness) -> None:
    await setup(harness, photo_file_id="AgACAgIAAxkBAAIBQ2Z", description="Sweet " * 200)
    [item] = (await search(harness, ALICE)).results
    assert isinstance(item, InlineQueryResultCachedPhoto)
    assert item.photo_file_id == "AgACAgIAAxkBAAIBQ2Z"
    assert "Mangoes" in item.caption  # folded to fit 1024 (the fake refuses longer)


TITLES = ["Mangoes", "mango JUICE", "海南芒果", "100% apple_juice", "Back\\slash", "Pears"]
QUERIES = [
    "", " ", "m", "MANGO", "ango j", "  mango   juice ", "芒果", "海南", "%", "_", "100%",
    "e_j", "\\", "k\\s", "x" * 200, "D", "d0", "apple juice", "pear", "S",
]  # fmt: skip


async def test_search_matches_like_a_plain_substring_oracle(harness) -> None:
    """Every query gives exactly the deals whose title contains it (case-insensitive,
    spaces folded) or whose code it is; LIKE's wildcards and escapes are plain text."""
    group_id, first = await setup(harness, title=TITLES[0])
    ids = {first: TITLES[0]}
    for title in TITLES[1:]:
        deal_id = await create_deal(harness, [group_id], title=title)
        await publish_deal(harness, deal_id)
        ids[deal_id] = title
    from services import inline_cards

    queries = [*QUERIES, *(f"D{i}" for i in ids), *(f"d{i}" for i in ids)]
    for query in queries:
        text = " ".join(query.split())[:64]
        expected = {
            i
            for i, title in ids.items()
            if text.lower() in title.lower() or text.upper() == f"D{i}"
        }
        async with harness.db.read() as s:
            found = await inline_cards.search(s, ALICE.id, query)
        assert {deal.id for deal, _g in found} == expected, query
        assert [d.id for d, _g in found] == sorted(expected, reverse=True)  # newest first


# ---------------------------------------------------------------- chosen results


async def test_a_chosen_card_is_recorded_once(harness) -> None:
    group_id, deal_id = await setup(harness)
    code = await share_card(harness, ALICE, deal_id, "IM-1")
    await harness.feed(harness.updates.chosen(ALICE, code, "IM-1"))  # again: changes nothing
    await harness.feed(harness.updates.chosen(ALICE, "unknown-code", "IM-2"))
    await harness.feed(harness.updates.chosen(ALICE, code, None))  # no inline_message_id
    [card] = await cards(harness)
    assert (card.inline_message_id, card.deal_id, card.group_id) == ("IM-1", deal_id, group_id)
    assert (card.share_code, card.sharer_id, card.dropped_at) == (code, ALICE.id, None)


# ---------------------------------------------------------------- taps on cards


async def test_members_only_card_takes_members_and_tells_others_how_to_join(harness) -> None:
    group_id, deal_id = await setup(harness)
    code = await share_card(harness, ALICE, deal_id)  # not chosen: learnt from the first tap

    answer = await tap_card(harness, BOB, code, "IM-9", "qty", 2)
    assert answer.text == "You're in: Mangoes ×2."
    order = await order_of(harness, deal_id, BOB.id)
    assert (order.quantity, order.group_id, order.via) == (2, group_id, "card")
    assert (order.referrer_id, order.share_code) == (ALICE.id, code)  # credited to Alice
    [card] = await cards(harness)  # the first tap recorded the card
    assert (card.inline_message_id, card.sharer_id) == ("IM-9", ALICE.id)

    not_in(harness, GROUP, CAROL)
    refused = await tap_card(harness, CAROL, code, "IM-9")
    assert refused.show_alert
    assert "members of Fruit Lovers" in refused.text and "Ask the member" in refused.text
    assert await order_of(harness, deal_id, CAROL.id) is None
    async with harness.db.transaction() as s:  # once Alice has an invite link, it is given
        s.add(
            InviteLink(
                group_id=group_id,
                user_id=ALICE.id,
                link="https://t.me/+aliceinvite",
                name="Alice",
                created_at=utcnow(),
            )
        )
    refused = await tap_card(harness, CAROL, code, "IM-9")
    assert "https://t.me/+aliceinvite" in refused.text and len(refused.text) <= 200
    assert await order_of(harness, deal_id, CAROL.id) is None

    # Bob's cancel through the card; the group's post shows the change
    assert (await tap_card(harness, BOB, code, "IM-9", "cancel")).text.startswith("Your order")
    assert (await order_of(harness, deal_id, BOB.id)).status == "cancelled"
    assert len(await cards(harness)) == 1


async def test_zh_reader_gets_the_refusal_in_chinese(harness) -> None:
    _group_id, deal_id = await setup(harness)
    code = await share_card(harness, ALICE, deal_id)
    stranger = person(605, "Wang", language="zh-hans")
    not_in(harness, GROUP, stranger)
    refused = await tap_card(harness, stranger, code, "IM-zh")
    assert "仅限" in refused.text and "Fruit Lovers" in refused.text


async def test_anyone_card_takes_anyone(harness) -> None:
    group_id, deal_id = await setup(harness)
    await set_audience(harness, deal_id, "anyone")
    code = await share_card(harness, ALICE, deal_id, "IM-a")
    not_in(harness, GROUP, CAROL)
    answer = await tap_card(harness, CAROL, code, "IM-a")
    assert answer.text == "You're in: Mangoes ×1."
    order = await order_of(harness, deal_id, CAROL.id)
    assert (order.group_id, order.via, order.referrer_id) == (group_id, "card", ALICE.id)


async def test_the_owners_switch_in_deals_decides_who_may_join_from_a_card(harness) -> None:
    """End to end: the owner opens the card to anyone with /deals' button, a non-member joins
    from a card; switched back to members only, the next non-member is refused."""
    from handlers.callbacks import OwnerDealCB
    from tests.test_deal_post import OWNER

    _group_id, deal_id = await setup(harness)
    code = await share_card(harness, ALICE, deal_id, "IM-o")
    dave = person(606, "Dave")
    not_in(harness, GROUP, CAROL)
    not_in(harness, GROUP, dave)
    await harness.tap(OWNER, OwnerDealCB(action="audall", deal_id=deal_id))
    assert (await tap_card(harness, CAROL, code, "IM-o")).text == "You're in: Mangoes ×1."
    await harness.tap(OWNER, OwnerDealCB(action="audmem", deal_id=deal_id))
    refused = await tap_card(harness, dave, code, "IM-o")
    assert refused.show_alert and "members of Fruit Lovers" in refused.text
    assert await order_of(harness, deal_id, dave.id) is None
    assert (await order_of(harness, deal_id, CAROL.id)).via == "card"


async def test_the_sharer_tapping_their_own_card_gets_no_credit(harness) -> None:
    _group_id, deal_id = await setup(harness)
    code = await share_card(harness, ALICE, deal_id, "IM-s")
    assert (await tap_card(harness, ALICE, code, "IM-s")).text == "You're in: Mangoes ×1."
    order = await order_of(harness, deal_id, ALICE.id)
    assert (order.via, order.referrer_id, order.share_code) == ("card", None, None)


async def test_other_paths_keep_their_via(harness) -> None:
    from tests.test_deal_post import press

    _group_id, deal_id = await setup(harness)
    await press(harness, BOB, deal_id)
    assert (await order_of(harness, deal_id, BOB.id)).via == "button"


async def test_unknown_or_revoked_codes_and_closed_deals(harness) -> None:
    _group_id, deal_id = await setup(harness)
    code = await share_card(harness, ALICE, deal_id, "IM-c")
    gone = await tap_card(harness, BOB, "nosuchcode", "IM-x")
    assert gone.show_alert and "no longer available" in gone.text
    async with harness.db.transaction() as s:
        await deals.close(s, deal_id, utcnow())
    closed = await tap_card(harness, BOB, code, "IM-c")
    assert closed.show_alert and await order_of(harness, deal_id, BOB.id) is None
    async with harness.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Order)) == 0
        assert await s.scalar(select(func.count()).select_from(User).where(User.id == 0)) == 0


async def test_card_taps_pass_the_admission_gate_and_the_speaker_rule(harness) -> None:
    _group_id, deal_id = await setup(harness, stock=1)
    code = await share_card(harness, ALICE, deal_id, "IM-g")
    assert (await tap_card(harness, BOB, code, "IM-g")).text == "You're in: Mangoes ×1."
    sold = await tap_card(harness, CAROL, code, "IM-g")  # the gate knows: no write, no check
    assert sold.text == "Sold out." and sold.show_alert
    assert not [r for r in harness.api.requests if type(r).__name__ == "GetChatMember"][1:]
    robot = TgUser(id=777, is_bot=True, first_name="Robot")
    refused = await tap_card(harness, robot, code, "IM-g", "cancel")
    assert refused.show_alert and "own account" in refused.text
    async with harness.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(User).where(User.id == 777)) == 0


async def test_membership_answers_are_cached_briefly(harness) -> None:
    _group_id, deal_id = await setup(harness)
    code = await share_card(harness, ALICE, deal_id, "IM-m")
    for _ in range(3):
        await tap_card(harness, BOB, code, "IM-m", "qty", 2)
    asked = [r for r in harness.api.requests if type(r).__name__ == "GetChatMember"]
    assert [(r.chat_id, r.user_id) for r in asked] == [(GROUP.id, BOB.id)]  # once, then cached


# ---------------------------------------------------------------- live cards


async def test_a_rush_of_taps_gives_few_card_edits_ending_on_the_final_count(harness) -> None:
    _group_id, deal_id = await setup(harness, stock=100)
    code = await share_card(harness, ALICE, deal_id, "IM-r")
    posts = refresher(harness)
    posts.interval = 0.25
    harness.api.clear()
    tappers = [person(30_000 + i, f"T{i}") for i in range(40)]
    data = CardCB(action="join", code=code).pack()
    started = time.monotonic()
    await asyncio.gather(
        *(harness.feed(harness.updates.card_tap(t, data, "IM-r")) for t in tappers)
    )
    await harness.settle()
    took = time.monotonic() - started
    assert [a.text for a in harness.api.answers()].count("You're in: Mangoes ×1.") == 40
    edits = card_edits(harness, "IM-r")
    assert 1 <= len(edits) < 40 and len(edits) <= took / posts.interval + 2, (len(edits), took)
    final = edits[-1].text
    assert "40 people, 40 units" in final and "60 of 100 left" in final
    assert CardCB(action="join", code=code).pack() in harness.callbacks(edits[-1])
    [card] = await cards(harness)
    deal = await deals_get(harness, deal_id)
    assert card.rendered_at == deal.updated_at
    assert await posts.catch_up() == 0  # nothing is behind


async def test_closing_marks_cards_closed_and_refused_cards_are_dropped(harness) -> None:
    _group_id, deal_id = await setup(harness)
    code = await share_card(harness, ALICE, deal_id, "IM-live")
    await harness.feed(harness.updates.chosen(ALICE, code, "IM-dead"))
    await tap_card(harness, BOB, code, "IM-live")
    harness.api.clear()
    harness.api.fail_next(
        "bad_request",
        EditMessageText,
        message="Bad Request: MESSAGE_ID_INVALID",
        inline_message_id="IM-dead",
    )
    await harness.settle()
    # the edit of one card was refused for good: that card is dropped, the other rendered
    by_id = {c.inline_message_id: c for c in await cards(harness)}
    assert by_id["IM-dead"].dropped_at is not None and by_id["IM-live"].dropped_at is None
    assert by_id["IM-live"].rendered_at is not None
    assert "Bob ×1" in card_edits(harness, "IM-live")[-1].text
    alive, dropped = "IM-live", ["IM-dead"]

    async with harness.db.transaction() as s:
        await deals.close(s, deal_id, utcnow())
    harness.api.clear()
    await harness.settle()
    [closed] = card_edits(harness, alive)  # the dropped card is not tried again
    assert card_edits(harness, dropped[0]) == []
    assert "Closed" in closed.text and closed.reply_markup is None

    # "message is not modified" is success; a card behind its deal is caught up at start
    async with harness.db.transaction() as s:
        await s.execute(update(InlineCard).values(rendered_at=None))
    harness.api.clear()
    harness.api.fail_next(
        "bad_request",
        EditMessageText,
        message="Bad Request: message is not modified",
        inline_message_id=alive,
    )
    assert await refresher(harness).catch_up() == 1
    await harness.settle()
    [card] = [c for c in await cards(harness) if c.inline_message_id == alive]
    assert card.rendered_at is not None and card.dropped_at is None


async def deals_get(harness, deal_id: int) -> Deal:
    async with harness.db.read() as s:
        return await deals.get(s, deal_id)


async def test_forgetme_rerenders_the_sharers_cards_without_her_name_or_buttons(harness) -> None:
    from handlers.callbacks import ForgetCB

    _group_id, deal_id = await setup(harness)
    code = await share_card(harness, ALICE, deal_id, "IM-f")
    await tap_card(harness, ALICE, code, "IM-f")
    await tap_card(harness, BOB, code, "IM-f")
    await harness.settle()
    assert "Alice ×1" in card_edits(harness, "IM-f")[-1].text
    harness.api.clear()
    await harness.send(ALICE, "/forgetme")
    await harness.tap(ALICE, ForgetCB(action="confirm"))
    await harness.settle()
    last = card_edits(harness, "IM-f")[-1]
    assert "Alice" not in last.text and "Bob ×1" in last.text
    assert last.reply_markup is None  # her share code is gone: nothing left to credit
    [card] = await cards(harness)
    assert (card.share_code, card.dropped_at) == (None, None) and card.sharer_id != ALICE.id


# ---------------------------------------------------------------- reads in constant statements


@contextmanager
def statements(harness) -> Iterator[list[str]]:
    """Every statement the app's engine sends while the block runs."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many) -> None:
        seen.append(statement)

    engine = harness.db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def counted_search(harness, user: TgUser, query: str) -> tuple[int, AnswerInlineQuery]:
    await harness.settle()
    with statements(harness) as seen:
        answer = await search(harness, user, query)
    return len(seen), answer


async def test_an_inline_answer_takes_as_many_statements_for_30_deals_as_for_1(harness) -> None:
    group_id, mangoes = await setup(harness)
    await member(harness, group_id, BOB)
    for i in range(29):  # posted (as if sent: the sender's pace in one chat is not the point)
        deal_id = await create_deal(harness, [group_id], title=f"Pears {i}")
        async with harness.db.transaction() as s:
            await deals.store_post(s, deal_id, group_id, 100 + i, utcnow())
    for user in (ALICE, BOB):  # both known to the bot before counting
        assert (await search(harness, user, "nothing like this")).results == []

    # first searches: every share link is created
    one, answer = await counted_search(harness, ALICE, f"D{mangoes}")
    assert [r.title for r in answer.results] == ["Mangoes"]
    thirty, answer = await counted_search(harness, BOB, "")
    assert len(answer.results) == 30 and answer.results[-1].title == "Mangoes"
    assert one == thirty, (one, thirty)
    # again: the links exist now (fewer statements, still as many for 30 as for 1)
    again_one, _answer = await counted_search(harness, ALICE, f"D{mangoes}")
    again_thirty, again = await counted_search(harness, BOB, "")
    assert again_one == again_thirty < one, (again_one, again_thirty, one)
    assert [r.id for r in again.results] == [r.id for r in answer.results]  # the same links
    async with harness.db.read() as s:
        links = await s.scalar(select(func.count()).where(ShareLink.user_id == BOB.id))
    assert links == 30

    # a revoked link is replaced by a new code, in the same statements
    async with harness.db.transaction() as s:
        await s.execute(
            update(ShareLink)
            .where(ShareLink.code.in_([r.id for r in again.results[:3]]))
            .values(revoked_at=utcnow())
        )
    revoked, renewed = await counted_search(harness, BOB, "")
    assert revoked == one + 1  # the revoked links deleted in one more statement
    fresh = {r.id for r in renewed.results}
    assert len(fresh) == 30 and len(fresh - {r.id for r in again.results}) == 3
    async with harness.db.read() as s:
        links = await s.scalar(select(func.count()).where(ShareLink.user_id == BOB.id))
    assert links == 30


async def test_a_refresh_of_many_deals_reads_and_writes_as_much_as_of_one(harness) -> None:
    group_id, first = await setup(harness)
    others = []
    for i in range(4):  # each in a group of its own (the sender paces edits per chat)
        chat = group(-1001000001000 - i, f"Group {i}")
        other_group = await add_group(harness, chat)
        await member(harness, other_group, ALICE)
        deal_id = await create_deal(harness, [other_group], title=f"Pears {i}")
        assert await publish_deal(harness, deal_id) == 1
        others.append(deal_id)
    for n, deal_id in enumerate([first, *others]):  # each has a live card and sign-ups
        code = await share_card(harness, ALICE, deal_id, f"IM-{n}")
        await tap_card(harness, BOB, code, f"IM-{n}")
    await harness.settle()
    posts = refresher(harness)

    harness.api.clear()
    with statements(harness) as seen:
        assert await posts.refresh_many([first]) == {first: 2}  # the post and the card
    one = len(seen)
    with statements(harness) as seen:
        edited = await posts.refresh_many([first, *others])
    assert edited == {deal_id: 2 for deal_id in [first, *others]}
    assert len(seen) == one, (len(seen), one)
    texts = [e.text for e in harness.api.of(EditMessageText)]
    assert len(texts) == 2 + 10 and all("Bob ×1" in t for t in texts)
    assert await posts.catch_up() == 0  # every post and card records the version it shows
