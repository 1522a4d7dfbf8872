"""Reviews (口碑) through the real Dispatcher and the fake Bot API, on SQLite and PostgreSQL:
the invitation once per handed-over order (however often fulfilment is marked or
replayed), only the buyer rates, one review per order even when ratings arrive at once, a
comment in the member's own words (escaped wherever shown, in /mydata, gone with
/forgetme), edits for 7 days, removal at the reviewer's request, the figures on the deal's
post and on its copies' posts, the owner's one public reply, and the digest's figures."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from aiogram.methods import EditMessageText, SendMessage
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, update

from handlers.callbacks import OrdersCB, OwnerDealCB, ReviewCB, WizardCB
from models import Deal, DealPost, Group, GroupAdmin, Order, OutboxMessage, Review
from services import deal_draft, deals, fulfilment, privacy, reviews
from services import digest as digest_service
from services.parsing import ParseError
from services.timezones import utcnow
from tests.builders import person, private
from tests.test_deal_post import GROUP, OWNER, press, ready
from views.digest_texts import group_text

ALICE = person(601, "Alice")
BOB = person(602, "Bob")
CAROL = person(603, "Carol")
INVITE = "How was D"


# ---------------------------------------------------------------- helpers


async def closed_deal(harness, *members) -> tuple[int, int, dict[int, Order]]:
    """A published deal in GROUP that the members (who started the bot) joined and that
    succeeded: (group id, deal id, {user id: order})."""
    group_id, deal_id = await ready(harness)
    for member in members:
        await harness.say(member, "/start")
        answer = await press(harness, member, deal_id)
        assert answer.text.startswith("You're in"), answer.text
    async with harness.db.transaction() as s:
        await deals.close(s, deal_id, utcnow())
    await harness.settle()
    harness.api.clear()
    return group_id, deal_id, await orders_of(harness, deal_id)


async def orders_of(harness, deal_id: int) -> dict[int, Order]:
    async with harness.db.read() as s:
        rows = await s.scalars(select(Order).where(Order.deal_id == deal_id))
        return {o.user_id: o for o in rows}


async def review_rows(harness) -> list[Review]:
    async with harness.db.read() as s:
        return list(await s.scalars(select(Review).order_by(Review.id)))


async def invitations(harness, order_id: int) -> int:
    async with harness.db.read() as s:
        return await s.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.kind == reviews.INVITE, OutboxMessage.key == f"review:{order_id}")
        )


def invites_to(harness, user) -> list[SendMessage]:
    return [m for m in harness.api.sent(user.id) if m.text.startswith(INVITE)]


def rate(order_id: int, stars: int) -> ReviewCB:
    return ReviewCB(action="rate", id=order_id, stars=stars)


def post_texts(harness) -> list[str]:
    return [e.text for e in harness.api.of(EditMessageText) if e.chat_id == GROUP.id]


# ---------------------------------------------------------------- the whole conversation


async def test_a_buyer_rates_comments_edits_and_the_post_shows_the_figures(harness) -> None:
    _group_id, deal_id, orders = await closed_deal(harness, ALICE, BOB)
    alice = orders[ALICE.id]

    # Picked up with /pickup CODE: Alice is invited once, with 1★ … 5★
    answer = await harness.say(OWNER, f"/pickup {alice.pickup_code}")
    assert "Marked picked up." in answer.text
    await harness.settle()
    [invite] = invites_to(harness, ALICE)
    assert "Mangoes" in invite.text
    assert harness.callbacks(invite) == [rate(alice.id, n).pack() for n in range(1, 6)]
    assert invites_to(harness, BOB) == []  # Bob's order is not handed over yet

    # Bob cannot rate Alice's order (a forged button), nor his own not yet received
    for order_id in (alice.id, orders[BOB.id].id, 999_999):
        refused = await harness.tap(BOB, rate(order_id, 5))
        assert refused.show_alert and "Only the buyer" in refused.text
    assert await review_rows(harness) == []

    # Alice rates 4: thanked, asked for a comment (Skip / Remove)
    answer = await harness.tap(ALICE, rate(alice.id, 4))
    assert answer.text == "Thank you! Rated ★★★★☆."
    ask = harness.last(ALICE)
    assert "Send a short comment in your own words (up to 500 characters)" in ask.text
    [review] = await review_rows(harness)
    assert (review.user_id, review.rating, review.comment, review.deal_id) == (
        ALICE.id, 4, None, deal_id,
    )  # fmt: skip
    assert harness.buttons(ask) == {
        "Skip": ReviewCB(action="skip", id=review.id).pack(),
        "🗑 Remove my review": ReviewCB(action="remove", id=review.id).pack(),
    }
    # a comment over 500 characters is refused and the form waits
    too_long = await harness.say(ALICE, "x" * 501)
    assert "500" in too_long.text
    assert (await review_rows(harness))[0].comment is None
    saved = await harness.say(ALICE, "Sweet <b>and</b> juicy")
    assert saved.text.startswith("Your comment is saved.")
    assert (await review_rows(harness))[0].comment == "Sweet <b>and</b> juicy"
    # the next message is not a comment any more (the form ended): nothing is stored
    await harness.say(ALICE, "hello there")
    assert (await review_rows(harness))[0].comment == "Sweet <b>and</b> juicy"

    # the deal's post shows the figures
    await harness.settle()
    assert "★ 4.0 (1 review)" in post_texts(harness)[-1]

    # an edit within 7 days: the same buttons; still one review
    answer = await harness.tap(ALICE, rate(alice.id, 5))
    assert answer.text == "Thank you! Rated ★★★★★."
    assert (await harness.tap(ALICE, rate(alice.id, 5))).text == "Your rating stays ★★★★★."
    await harness.settle()
    assert "★ 5.0 (1 review)" in post_texts(harness)[-1]
    assert len(await review_rows(harness)) == 1

    # /reviews: her own, the comment escaped
    mine = await harness.say(ALICE, "/reviews")
    assert "★★★★★" in mine.text and "Sweet &lt;b&gt;and&lt;/b&gt; juicy" in mine.text
    assert rate(alice.id, 3).pack() in harness.callbacks(mine)
    assert ReviewCB(action="remove", id=review.id).pack() in harness.callbacks(mine)

    # after 7 days it can no longer change, only be removed
    harness.clock.set(utcnow() + timedelta(days=7, minutes=1))
    late = await harness.tap(ALICE, rate(alice.id, 1))
    assert late.show_alert and "for 7 days" in late.text
    late = await harness.tap(ALICE, ReviewCB(action="comment", id=review.id))
    assert late.show_alert and "for 7 days" in late.text
    assert (await review_rows(harness))[0].rating == 5
    mine = await harness.say(ALICE, "/reviews")
    assert "can only be removed" in mine.text and rate(alice.id, 3).pack() not in (
        harness.callbacks(mine)
    )
    # Bob cannot remove Alice's review
    refused = await harness.tap(BOB, ReviewCB(action="remove", id=review.id))
    assert refused.show_alert and "does not exist" in refused.text
    removed = await harness.tap(ALICE, ReviewCB(action="remove", id=review.id))
    assert removed.text == "Your review is removed."
    assert await review_rows(harness) == []
    await harness.settle()
    assert "★" not in post_texts(harness)[-1].split("\n")[2]
    assert "review" not in post_texts(harness)[-1]


async def test_skip_ends_the_comment_form(harness) -> None:
    _group_id, _deal_id, orders = await closed_deal(harness, ALICE)
    alice = orders[ALICE.id]
    await harness.say(OWNER, f"/pickup {alice.pickup_code}")
    await harness.tap(ALICE, rate(alice.id, 3))
    [review] = await review_rows(harness)
    skipped = await harness.tap(ALICE, ReviewCB(action="skip", id=review.id))
    assert skipped.text.startswith("No comment, fine.")
    await harness.say(ALICE, "not a comment")
    assert (await review_rows(harness))[0].comment is None
    # Comment from /reviews asks again; /cancel ends it
    await harness.tap(ALICE, ReviewCB(action="comment", id=review.id))
    assert "Send a short comment" in harness.last(ALICE).text
    await harness.say(ALICE, "/cancel")
    await harness.say(ALICE, "still not a comment")
    assert (await review_rows(harness))[0].comment is None


# ---------------------------------------------------------------- once, whatever is replayed


async def test_the_invitation_is_sent_once_however_fulfilment_is_replayed(harness) -> None:
    _group_id, deal_id, orders = await closed_deal(harness, ALICE, BOB, CAROL)
    alice, bob = orders[ALICE.id], orders[BOB.id]
    pickup = harness.updates.message(private(OWNER), OWNER, f"/pickup {alice.pickup_code}")
    for _ in range(3):  # the same update delivered again
        await harness.feed(pickup)
    await harness.say(OWNER, f"/pickup {alice.pickup_code}")  # typed again: already picked up
    await harness.tap(  # and marked again from the order's card
        OWNER, OrdersCB(action="mark", deal_id=deal_id, order_id=alice.id, state="picked_up")
    )
    # Bob: ready first (no invitation), then delivered; a double tap of it
    await harness.tap(
        OWNER, OrdersCB(action="mark", deal_id=deal_id, order_id=bob.id, state="ready")
    )
    assert await invitations(harness, bob.id) == 0
    delivered = OrdersCB(action="mark", deal_id=deal_id, order_id=bob.id, state="delivered")
    update = harness.updates.callback(OWNER, delivered.pack())
    for _ in range(2):
        await harness.feed(update)
    await harness.tap(OWNER, delivered)
    # everything at once for the rest (Carol), twice
    for _ in range(2):
        async with harness.db.transaction() as s:
            await fulfilment.mark_all(s, deal_id, OWNER.id, "delivered", utcnow())
    await harness.settle()
    for member, order in ((ALICE, alice), (BOB, bob), (CAROL, orders[CAROL.id])):
        assert await invitations(harness, order.id) == 1, member.first_name
        assert len(invites_to(harness, member)) == 1, member.first_name


async def test_a_refunded_order_is_neither_invited_nor_reviewable(harness) -> None:
    _group_id, _deal_id, orders = await closed_deal(harness, ALICE)
    alice = orders[ALICE.id]
    async with harness.db.transaction() as s:
        await fulfilment.mark(s, alice.id, OWNER.id, "picked_up", utcnow())
        await fulfilment.refund(s, alice.id, OWNER.id, utcnow())
    await harness.settle()
    assert invites_to(harness, ALICE) == []  # promised, then nothing left to ask
    refused = await harness.tap(ALICE, rate(alice.id, 5))
    assert refused.show_alert and "Only the buyer" in refused.text
    assert await review_rows(harness) == []


async def test_a_replayed_rating_changes_nothing(harness) -> None:
    _group_id, _deal_id, orders = await closed_deal(harness, ALICE)
    alice = orders[ALICE.id]
    await harness.say(OWNER, f"/pickup {alice.pickup_code}")
    update = harness.updates.callback(ALICE, rate(alice.id, 2).pack())
    await harness.feed(update)
    await harness.say(ALICE, "Too small")
    [before] = await review_rows(harness)
    asked = len(harness.api.sent(ALICE.id))
    for _ in range(2):
        await harness.feed(update)  # replayed: the form is not reopened, nothing changes
    [after] = await review_rows(harness)
    assert (after.id, after.rating, after.comment, after.updated_at) == (
        before.id, 2, "Too small", before.updated_at,
    )  # fmt: skip
    assert len(harness.api.sent(ALICE.id)) == asked  # no second question
    await harness.say(ALICE, "hello")
    assert (await review_rows(harness))[0].comment == "Too small"


# ---------------------------------------------------------------- concurrency


async def test_simultaneous_ratings_of_one_order_make_one_review(harness) -> None:
    _group_id, _deal_id, orders = await closed_deal(harness, ALICE)
    alice = orders[ALICE.id]
    await harness.say(OWNER, f"/pickup {alice.pickup_code}")
    updates = [harness.updates.callback(ALICE, rate(alice.id, n).pack()) for n in (1, 2, 3, 4, 5)]
    updates += [harness.updates.callback(ALICE, rate(alice.id, 5).pack()) for _ in range(5)]
    await asyncio.gather(*(harness.feed(u) for u in updates))
    rows = await review_rows(harness)
    assert len(rows) == 1 and rows[0].order_id == alice.id and 1 <= rows[0].rating <= 5
    assert len(harness.api.answers()) == len(updates)  # every tap answered


async def test_the_service_makes_one_review_from_simultaneous_first_ratings(harness) -> None:
    _group_id, _deal_id, orders = await closed_deal(harness, ALICE)
    alice = orders[ALICE.id]
    async with harness.db.transaction() as s:
        await fulfilment.mark(s, alice.id, OWNER.id, "delivered", utcnow())

    async def one(stars: int) -> bool:
        async with harness.db.transaction() as s:
            return (await reviews.rate(s, alice.id, ALICE.id, stars, utcnow())).created

    created = await asyncio.gather(*(one(n) for n in (5, 4, 3, 2, 1, 5, 4, 3)))
    assert created.count(True) == 1
    assert len(await review_rows(harness)) == 1


# ---------------------------------------------------------------- the owner's reply


async def test_the_owner_replies_once_publicly_under_the_deals_post(harness) -> None:
    _group_id, deal_id, orders = await closed_deal(harness, ALICE, BOB)
    alice = orders[ALICE.id]
    await harness.say(OWNER, f"/pickup {alice.pickup_code}")
    await harness.tap(ALICE, rate(alice.id, 4))
    await harness.say(ALICE, "Great <i>mangoes</i>")
    [review] = await review_rows(harness)

    # somebody who does not run the deal sees nothing, and cannot reply
    refused = await harness.say(BOB, f"/reviews D{deal_id}")
    assert "not yours" in refused.text and "mangoes" not in refused.text
    refused = await harness.tap(BOB, ReviewCB(action="reply", id=review.id))
    assert refused.show_alert and "not yours" in refused.text
    assert "Send" in (await harness.say(OWNER, "/reviews D17 D18")).text  # usage

    listing = await harness.say(OWNER, f"/reviews D{deal_id}")
    assert "★ 4.0 (1 review)" in listing.text
    assert "Great &lt;i&gt;mangoes&lt;/i&gt;" in listing.text and "Alice" not in listing.text
    assert harness.buttons(listing) == {
        f"↩️ Reply to #{review.id}": ReviewCB(action="reply", id=review.id).pack()
    }
    await harness.tap(OWNER, ReviewCB(action="reply", id=review.id))
    assert "public reply" in harness.last(OWNER).text
    answer = await harness.say(OWNER, "Thanks <3, see you Saturday")
    assert answer.text == "Your reply is saved and will be posted in 1 group."
    await harness.settle()
    async with harness.db.read() as s:
        post = await s.scalar(select(DealPost).where(DealPost.deal_id == deal_id))
    [reply] = [m for m in harness.api.sent(GROUP.id) if "organiser replies" in m.text]
    assert reply.reply_parameters.message_id == post.message_id
    assert "Thanks &lt;3, see you Saturday" in reply.text and "★★★★☆" in reply.text
    assert "Alice" not in reply.text and "mangoes</i>" not in reply.text.lower()
    stored = (await review_rows(harness))[0]
    assert (stored.reply_text, stored.replied_by) == ("Thanks <3, see you Saturday", OWNER.id)

    # once only: the button is gone, a stale one is refused, the text is unchanged
    listing = await harness.say(OWNER, f"/reviews D{deal_id}")
    assert harness.buttons(listing) == {} and "Thanks &lt;3" in listing.text
    again = await harness.tap(OWNER, ReviewCB(action="reply", id=review.id))
    assert again.show_alert and "one reply only" in again.text
    assert len([m for m in harness.api.sent(GROUP.id) if "organiser replies" in m.text]) == 1
    # Alice sees the reply in /reviews
    assert "Organiser: Thanks &lt;3" in (await harness.say(ALICE, "/reviews")).text


async def test_a_reply_needs_the_rights_at_the_moment(harness) -> None:
    _group_id, deal_id, orders = await closed_deal(harness, ALICE)
    alice = orders[ALICE.id]
    await harness.say(OWNER, f"/pickup {alice.pickup_code}")
    await harness.tap(ALICE, rate(alice.id, 2))
    [review] = await review_rows(harness)
    await harness.tap(OWNER, ReviewCB(action="reply", id=review.id))
    # the owner loses the deal before sending the reply (it is now someone else's)
    async with harness.db.transaction() as s:
        await s.execute(update(Deal).where(Deal.id == deal_id).values(owner_id=BOB.id))
        await s.execute(update(GroupAdmin).values(user_id=BOB.id))
    harness.api.set_admins(GROUP.id, BOB)
    answer = await harness.say(OWNER, "Sorry!")
    assert "not yours" in answer.text
    assert (await review_rows(harness))[0].reply_text is None


# ---------------------------------------------------------------- copies of a deal


async def test_the_figures_show_on_duplicated_deals_of_the_same_product(harness) -> None:
    _group_id, deal_id, orders = await closed_deal(harness, ALICE)
    alice = orders[ALICE.id]
    await harness.say(OWNER, f"/pickup {alice.pickup_code}")
    await harness.tap(ALICE, rate(alice.id, 4))

    # the owner duplicates it through /deals: the copy belongs to the same product
    await harness.tap(OWNER, OwnerDealCB(action="dup", deal_id=deal_id))
    await harness.say(OWNER, "+3d")
    await harness.tap(OWNER, WizardCB(step="preview", action="publish").pack())
    await harness.settle()
    async with harness.db.read() as s:
        copy = await s.scalar(select(Deal).where(Deal.id != deal_id))
    assert copy.product_key == deal_id and copy.family == deal_id
    [post] = [m for m in harness.api.sent(GROUP.id) if "Mangoes" in m.text and m.reply_markup]
    assert "★ 4.0 (1 review)" in post.text

    # a copy of the copy: the same family; the draft keeps it through the form's data
    async with harness.db.read() as s:
        spec = await deals.duplicate(s, copy.id, OWNER.id)
    assert spec.product_key == deal_id
    draft = deal_draft.DealDraft.from_data(deal_draft.DealDraft.from_spec(spec).to_data())
    assert draft.product == deal_id

    # a review of the copy counts for both, and both posts are refreshed
    bob = person(604, "Dora")
    await harness.say(bob, "/start")
    await press(harness, bob, copy.id)
    async with harness.db.transaction() as s:
        await deals.close(s, copy.id, utcnow())
        order = await s.scalar(select(Order).where(Order.deal_id == copy.id))
        await fulfilment.mark(s, order.id, OWNER.id, "picked_up", utcnow())
    await harness.settle()
    await harness.tap(bob, rate(order.id, 5))
    await harness.settle()
    async with harness.db.read() as s:
        first = await reviews.rating_of(s, await s.get(Deal, deal_id))
        second = await reviews.rating_of(s, await s.get(Deal, copy.id))
    assert first == second == reviews.Rating(2, 9)
    edited = {
        e.message_id: e.text for e in harness.api.of(EditMessageText) if e.chat_id == GROUP.id
    }
    assert sum("★ 4.5 (2 reviews)" in text for text in edited.values()) == 2


# ---------------------------------------------------------------- privacy and the digest


async def test_the_comment_is_in_mydata_and_gone_with_forgetme(harness) -> None:
    _group_id, _deal_id, orders = await closed_deal(harness, ALICE)
    alice = orders[ALICE.id]
    await harness.say(OWNER, f"/pickup {alice.pickup_code}")
    await harness.tap(ALICE, rate(alice.id, 4))
    await harness.say(ALICE, "my own words")
    async with harness.db.read() as s:
        exported = await privacy.export(s, ALICE.id)
        owners = await privacy.export(s, OWNER.id)
    [row] = exported["tables"]["reviews"]
    assert (row["rating"], row["comment"]) == (4, "my own words")
    assert "reviews" not in owners["tables"]  # the owner's export holds none of it
    async with harness.db.transaction() as s:
        await privacy.forget(s, ALICE.id)
    assert await review_rows(harness) == []
    await harness.settle()
    assert "review" not in post_texts(harness)[-1]


async def test_the_digest_shows_the_days_reviews(harness) -> None:
    group_id, _deal_id, orders = await closed_deal(harness, ALICE, BOB)
    now = utcnow()

    async def digest_text() -> str:
        async with harness.db.read() as s:
            group = await s.get(Group, group_id)
            day = digest_service.local_today(now, group.timezone)
            built = await digest_service.build(
                s, group, digest_service.Period(day, day), now + timedelta(seconds=1)
            )
        with harness.app.i18n.context(), harness.app.i18n.use_locale("en"):
            return group_text(built)

    assert "Reviews:" not in await digest_text()
    for member, stars in ((ALICE, 5), (BOB, 4)):
        order = orders[member.id]
        await harness.say(OWNER, f"/pickup {order.pickup_code}")
        await harness.tap(member, rate(order.id, stars))
    assert "★ Reviews: 2 new, average 4.5" in await digest_text()


# ---------------------------------------------------------------- parsers


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.text(max_size=30), st.from_regex(r"\s*[dD]?[0-9]{0,12}\s*")))
def test_reviews_arguments_never_raise_and_stay_in_bounds(text) -> None:
    found = reviews.parse_args(text)
    assert found is None or found is True or (isinstance(found, int) and 0 < found < 2**31)
    if not text.split():
        assert found is True


@settings(max_examples=200, deadline=None)
@given(n=st.integers(min_value=1, max_value=2**31 - 1), prefix=st.sampled_from(["D", "d", ""]))
def test_a_deal_code_is_read_exactly(n, prefix) -> None:
    assert reviews.parse_args(f" {prefix}{n} ") == n
    assert reviews.parse_args(f"{prefix}{n} extra") is None


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=700))
def test_a_comment_is_kept_within_its_bounds_or_refused(text) -> None:
    try:
        kept = reviews.check_comment(text)
    except ParseError as err:
        assert err.reason in {"not_text", "text_too_long"}
        return
    assert 0 < len(kept) <= reviews.COMMENT_MAX


async def test_the_rating_line_and_stars(harness) -> None:
    from views.review_texts import rating_line, stars

    with harness.app.i18n.context(), harness.app.i18n.use_locale("en"):
        assert rating_line(reviews.Rating(12, 55)) == "★ 4.6 (12 reviews)"
        assert rating_line(reviews.Rating(1, 3)) == "★ 3.0 (1 review)"
    assert stars(4) == "★★★★☆" and stars(0) == "☆☆☆☆☆" and stars(9) == "★★★★★"


async def test_a_message_long_after_the_question_is_not_taken_as_a_comment(harness) -> None:
    _group_id, _deal_id, orders = await closed_deal(harness, ALICE)
    alice = orders[ALICE.id]
    await harness.say(OWNER, f"/pickup {alice.pickup_code}")
    now = utcnow()
    harness.clock.set(now)
    await harness.tap(ALICE, rate(alice.id, 4))
    harness.clock.set(now + timedelta(minutes=31))
    answer = await harness.say(ALICE, "my address is 5 Main St")
    assert "did not save this as a comment" in answer.text
    assert (await review_rows(harness))[0].comment is None
    await harness.say(ALICE, "and again")  # the form is over
    assert (await review_rows(harness))[0].comment is None
