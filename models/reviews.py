"""Reviews (口碑): a verified buyer's rating of an order they received, with an optional
short comment in their own words, and the organiser's one public reply.

One review per order (`order_id` unique), by the order's buyer only, once the order was
picked up or delivered (services.reviews). `product_key` is the deal family the review counts
in: the origin deal of a chain of duplicated deals (Deal.product_key, or the deal's own id),
so a deal's average and count show on its copies' posts too.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, person_id, personal


class Review(Base):
    """A member's review of one order. `comment`: what they chose to write to the bot in
    private as a review comment (at most 500 characters; NULL: none). `created_at`: the
    first rating (edits are allowed for 7 days after it); `reply_text`: the organiser's
    public reply (once), posted in the deal's groups as a reply to its post."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))
    product_key: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[int] = mapped_column(BigInteger, info=person_id("key"))
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text, info=personal("user_id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reply_text: Mapped[str | None] = mapped_column(Text, info=personal("replied_by"))
    replied_by: Mapped[int | None] = mapped_column(BigInteger, info=person_id("anonymise"))
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("rating >= 1 AND rating <= 5", name="review_rating_in_range"),
        Index("ix_reviews_product_key", "product_key"),
        Index("ix_reviews_deal_id", "deal_id"),
        Index("ix_reviews_user_id", "user_id"),
        Index("ix_reviews_group_created_at", "group_id", "created_at"),  # digests
    )
