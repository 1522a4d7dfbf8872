"""Reviews (口碑): after an order is picked up or delivered, its buyer rates it 1–5 and may
add a short comment in their own words; the deal's organiser may reply once, publicly.

Rules:
- Only the order's buyer reviews it, and only once it was handed over (confirmed, picked up
  or delivered): a forged button naming someone else's order, or an order not received, is
  refused (NotReviewable) and nothing is written.
- One review per order (`reviews.order_id` is unique; the first rating is an INSERT … ON
  CONFLICT DO NOTHING, so simultaneous ratings of one order make one review, the later ones
  edits of it). A review can be edited (rating, comment) for EDIT_WINDOW after its first
  rating; its reviewer may remove it at any time. The bot never edits or hides a review
  otherwise (/forgetme deletes the reviewer's reviews with the rest of their data).
- The invitation to review is an outbox row (`review:<order>`, kind INVITE) written by
  services.fulfilment in the transaction that hands the order over: once per order, however
  often the fulfilment is marked or replayed.
- A deal's figures (count, average) are over its product family: the deal it was duplicated
  from and every copy of it (Deal.family). A change of them gives every deal of the family a
  new version (`updated_at`), so its group posts are re-rendered (DealChanged; after a
  crash, by the catch-up at start).
- The organiser's reply: whoever manages the deal at that moment (services.rights), once per
  review (a conditional UPDATE), posted as a reply to the deal's post in each of its active
  groups through the outbox (`review:reply:<review>:<group>`, kind REPLY). The group post
  shows the stars and the reply, never the reviewer's name or comment.

No aiogram here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import Deal, DealPost, Group, Order, Review, User
from models.upsert import insert_ignore
from services import events, outbox, rights
from services.admins import AdminDirectory
from services.errors import DomainError
from services.parsing import check_note

MIN_STARS, MAX_STARS = 1, 5
COMMENT_MAX = 500
REPLY_MAX = 500
EDIT_WINDOW = timedelta(days=7)
RECEIVED = ("picked_up", "delivered")
INVITE = "review_invite"
REPLY = "review_reply"
LISTED = 10  # reviews shown per /reviews list

__all__ = [
    "COMMENT_MAX",
    "EDIT_WINDOW",
    "INVITE",
    "REPLY",
    "REPLY_MAX",
    "AlreadyReplied",
    "BadStars",
    "EditClosed",
    "NotReviewable",
    "Rated",
    "Rating",
    "ReviewError",
    "ReviewNotFound",
    "comment",
    "invite",
    "mine",
    "of_deal",
    "parse_args",
    "rate",
    "rating_of",
    "ratings_of",
    "remove",
    "reply",
    "review_for_reply",
]


class ReviewError(DomainError):
    pass


class NotReviewable(ReviewError):
    """Not the person's order, or not handed over (yet, or any more: refunded)."""


class ReviewNotFound(ReviewError):
    """No such review (removed meanwhile), or not the person's."""


class EditClosed(ReviewError):
    """The review is older than EDIT_WINDOW: it stays as it is (it can still be removed)."""


class BadStars(ReviewError):
    pass


class AlreadyReplied(ReviewError):
    """The organiser already replied to this review (once only)."""


@dataclass(frozen=True)
class Rating:
    """A product family's reviews: how many, and the sum of their stars."""

    count: int = 0
    stars: int = 0

    @property
    def average(self) -> float:
        return self.stars / self.count if self.count else 0.0


@dataclass
class Rated:
    review: Review
    deal: Deal
    created: bool  # the first rating of the order
    changed: bool  # the rating changed (a new review, or another number of stars)


def parse_args(text: str | None) -> int | None | bool:
    """/reviews' argument: nothing → True (the member's own reviews); a deal code ('D17',
    'd17', '17') → its id; anything else → None (usage)."""
    words = (text or "").split()
    if not words:
        return True
    if len(words) != 1:
        return None
    raw = words[0].strip().upper().removeprefix("D")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 10:
        return None
    value = int(raw)
    return value if 0 < value <= 2**31 - 1 else None


# ---------------------------------------------------------------- the invitation


async def invite(session: AsyncSession, orders: Iterable[Order], now: datetime) -> int:
    """Invite each buyer of these handed-over orders to review them (once per order: the
    key). Only people who started the bot are messaged (like the fulfilment notice); the
    others can review from /reviews. Returns how many invitations this call wrote."""
    received = [
        o for o in orders if o.status == "confirmed" and o.fulfilment in RECEIVED and o.quantity
    ]
    if not received:
        return 0
    ids = list({o.user_id for o in received})
    reachable = set(
        await session.scalars(
            select(User.id).where(User.id.in_(ids), User.started.is_(True), User.is_bot.is_(False))
        )
    )
    written = 0
    for order in received:
        if order.user_id not in reachable:
            continue
        written += await outbox.promise(
            session,
            key=f"review:{order.id}",
            chat_id=order.user_id,
            kind=INVITE,
            payload={"order_id": order.id},
            group_id=order.group_id,
            now=now,
        )
    return written


# ---------------------------------------------------------------- the reviewer


async def reviewable(session: AsyncSession, order_id: int, user_id: int) -> tuple[Order, Deal]:
    """The person's handed-over order and its deal; else NotReviewable."""
    row = (
        await session.execute(
            select(Order, Deal)
            .join(Deal, Deal.id == Order.deal_id)
            .where(Order.id == order_id)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        raise NotReviewable(order_id)
    order, deal = row
    if (
        order.user_id != user_id
        or order.status != "confirmed"
        or order.fulfilment not in RECEIVED
        or order.quantity <= 0
    ):
        raise NotReviewable(order_id)
    return order, deal


async def _of_order(session: AsyncSession, order_id: int) -> Review | None:
    return await session.scalar(
        select(Review).where(Review.order_id == order_id).execution_options(populate_existing=True)
    )


def exists_for(order_id: int):
    """A statement: the order's review id (the invitation's renderer asks)."""
    return select(Review.id).where(Review.order_id == order_id)


def editable(review: Review, now: datetime) -> bool:
    return now < review.created_at + EDIT_WINDOW


def _check_window(review: Review, now: datetime) -> None:
    if not editable(review, now):
        raise EditClosed(review.id)


async def _new_version(session: AsyncSession, family: int, now: datetime) -> None:
    """The family's deals get a new version: their posts show the new figures."""
    ids = list(
        await session.scalars(
            select(Deal.id)
            .where(or_(Deal.id == family, Deal.product_key == family))
            .order_by(Deal.id)
        )
    )
    for start in range(0, len(ids), 500):
        await session.execute(
            update(Deal)
            .where(Deal.id.in_(ids[start : start + 500]))
            .values(updated_at=now)
            .execution_options(synchronize_session=False)
        )
    for deal_id in ids:
        events.record(session, events.DealChanged(deal_id))


async def rate(
    session: AsyncSession, order_id: int, user_id: int, stars: int, now: datetime
) -> Rated:
    """Rate the person's order (`stars` 1–5): the first rating makes the review, a later one
    within EDIT_WINDOW changes it; the same number again changes nothing."""
    if not MIN_STARS <= stars <= MAX_STARS:
        raise BadStars(stars)
    order, deal = await reviewable(session, order_id, user_id)
    created = await insert_ignore(
        session,
        Review.__table__,
        {
            "order_id": order.id,
            "deal_id": deal.id,
            "group_id": order.group_id,
            "product_key": deal.family,
            "user_id": user_id,
            "rating": stars,
            "comment": None,
            "created_at": now,
            "updated_at": now,
        },
        ["order_id"],
    )
    review = await _of_order(session, order.id)
    if review is None:  # pragma: no cover - inserted above or by whoever won the race
        raise ReviewNotFound(order_id)
    if created:
        await _new_version(session, review.product_key, now)
        return Rated(review, deal, True, True)
    _check_window(review, now)
    if review.rating == stars:
        return Rated(review, deal, False, False)
    await session.execute(
        update(Review)
        .where(Review.id == review.id)
        .values(rating=stars, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(review)
    await _new_version(session, review.product_key, now)
    return Rated(review, deal, False, True)


async def own(session: AsyncSession, review_id: int, user_id: int) -> Review:
    review = await session.scalar(
        select(Review)
        .where(Review.id == review_id, Review.user_id == user_id)
        .execution_options(populate_existing=True)
    )
    if review is None:
        raise ReviewNotFound(review_id)
    return review


async def for_comment(
    session: AsyncSession, review_id: int, user_id: int, now: datetime
) -> tuple[Review, Deal]:
    """The member's review and its deal, if it can still be changed."""
    review = await own(session, review_id, user_id)
    _check_window(review, now)
    deal = await session.get(Deal, review.deal_id)
    if deal is None:  # pragma: no cover - the review goes with its deal
        raise ReviewNotFound(review_id)
    return review, deal


def check_comment(text: str | None) -> str:
    """A comment as the member typed it: cleaned, not empty, at most COMMENT_MAX characters
    (services.parsing.ParseError otherwise)."""
    return check_note(text, COMMENT_MAX)


async def comment(
    session: AsyncSession, review_id: int, user_id: int, text: str | None, now: datetime
) -> Review:
    """The member's comment on their review (replacing one they wrote before), within the
    edit window."""
    review = await own(session, review_id, user_id)
    _check_window(review, now)
    cleaned = check_comment(text)
    await session.execute(
        update(Review)
        .where(Review.id == review.id)
        .values(comment=cleaned, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(review)
    return review


async def remove(session: AsyncSession, review_id: int, user_id: int, now: datetime) -> bool:
    """Remove the member's review at their request (any time); False: there was none."""
    review = await session.scalar(
        select(Review).where(Review.id == review_id, Review.user_id == user_id)
    )
    if review is None:
        return False
    family = review.product_key
    result = await session.execute(
        delete(Review)
        .where(Review.id == review_id, Review.user_id == user_id)
        .execution_options(synchronize_session=False)
    )
    session.expunge(review)
    if not result.rowcount:  # pragma: no cover - removed by a simultaneous tap
        return False
    await _new_version(session, family, now)
    return True


@dataclass
class Mine:
    order: Order
    deal: Deal
    review: Review | None


async def mine(session: AsyncSession, user_id: int, limit: int = LISTED) -> list[Mine]:
    """The person's handed-over orders (newest first) with their reviews, if any."""
    rows = await session.execute(
        select(Order, Deal, Review)
        .join(Deal, Deal.id == Order.deal_id)
        .outerjoin(Review, Review.order_id == Order.id)
        .where(
            Order.user_id == user_id,
            Order.status == "confirmed",
            Order.fulfilment.in_(RECEIVED),
            Order.quantity > 0,
        )
        .order_by(Order.updated_at.desc(), Order.id.desc())
        .limit(limit)
    )
    return [Mine(o, d, r) for o, d, r in rows.all()]


# ---------------------------------------------------------------- figures


async def ratings_of(session: AsyncSession, deals: Sequence[Deal]) -> dict[int, Rating]:
    """Each deal's figures (over its product family); deals without reviews are absent."""
    families = {d.id: d.family for d in deals}
    if not families:
        return {}
    rows = await session.execute(
        select(Review.product_key, func.count(), func.coalesce(func.sum(Review.rating), 0))
        .where(Review.product_key.in_(set(families.values())))
        .group_by(Review.product_key)
    )
    by_family = {key: Rating(int(n), int(total)) for key, n, total in rows.all()}
    return {deal_id: by_family[f] for deal_id, f in families.items() if f in by_family}


async def rating_of(session: AsyncSession, deal: Deal) -> Rating:
    return (await ratings_of(session, [deal])).get(deal.id, Rating())


async def counts(
    session: AsyncSession, group_ids: Sequence[int], lower: datetime, upper: datetime
) -> Rating:
    """Reviews first rated in [lower, upper) of orders in these groups (the digest)."""
    if not group_ids:
        return Rating()
    n, total = (
        await session.execute(
            select(func.count(), func.coalesce(func.sum(Review.rating), 0)).where(
                Review.group_id.in_(list(group_ids)),
                Review.created_at >= lower,
                Review.created_at < upper,
            )
        )
    ).one()
    return Rating(int(n or 0), int(total or 0))


# ---------------------------------------------------------------- the organiser


async def of_deal(
    session: AsyncSession,
    deal_id: int,
    user_id: int,
    *,
    admins: AdminDirectory | None = None,
    limit: int = LISTED,
) -> tuple[Deal, list[Review], Rating]:
    """The reviews of a deal the person manages (newest first) and its family's figures."""
    deal = await rights.manage_deal(session, admins, deal_id, user_id)
    reviews = list(
        await session.scalars(
            select(Review)
            .where(Review.deal_id == deal.id)
            .order_by(Review.created_at.desc(), Review.id.desc())
            .limit(limit)
        )
    )
    return deal, reviews, await rating_of(session, deal)


async def review_for_reply(
    session: AsyncSession, review_id: int, user_id: int, *, admins: AdminDirectory | None = None
) -> tuple[Review, Deal]:
    """The review, if the person manages its deal now and it has no reply yet."""
    review = await session.get(Review, review_id, populate_existing=True)
    if review is None:
        raise ReviewNotFound(review_id)
    deal = await rights.manage_deal(session, admins, review.deal_id, user_id)
    if review.reply_text is not None:
        raise AlreadyReplied(review_id)
    return review, deal


async def reply(
    session: AsyncSession,
    review_id: int,
    user_id: int,
    text: str | None,
    now: datetime,
    *,
    admins: AdminDirectory | None = None,
) -> tuple[Review, int]:
    """The organiser's one public reply to a review: stored on it, and promised as a reply
    to the deal's post in each of its active groups. Returns (review, groups promised)."""
    review, deal = await review_for_reply(session, review_id, user_id, admins=admins)
    cleaned = check_note(text, REPLY_MAX)
    result = await session.execute(
        update(Review)
        .where(Review.id == review.id, Review.reply_text.is_(None))
        .values(reply_text=cleaned, replied_by=user_id, replied_at=now)
        .execution_options(synchronize_session=False)
    )
    if not result.rowcount:
        raise AlreadyReplied(review_id)
    await session.refresh(review)
    posts = await session.execute(
        select(DealPost.message_id, Group.id, Group.chat_id)
        .join(Group, Group.id == DealPost.group_id)
        .where(DealPost.deal_id == deal.id, DealPost.message_id.is_not(None))
        .where(Group.is_active.is_(True))
        .order_by(Group.id)
    )
    told = 0
    for message_id, group_id, chat_id in posts.all():
        told += await outbox.promise(
            session,
            key=f"review:reply:{review.id}:{group_id}",
            chat_id=chat_id,
            kind=REPLY,
            payload={"review_id": review.id, "message_id": message_id},
            group_id=group_id,
            now=now,
        )
    return review, told
