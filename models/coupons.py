"""Coupons (券) and coupon packs (券包) of a group (services.coupons).

A coupon's rules are written once, when the owner creates it, and never change (an owner may
only end it: no new claims). `claimed` counts its claims and is moved only by a conditional
UPDATE (`claimed < total`), so the last coupon is never handed out twice. A claim is one
member's coupon: redeemed when `order_id` is set (one order at most, one claim per order), in
the transaction that confirms or prices the order, and given back (order_id and redeemed_at
cleared) when that order is cancelled before the claim expires.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, person_id


class Coupon(Base):
    """`kind` amount (`value` minor units of `currency`, the group's) or percent (`value`
    1–90 % of the order's amount, floored). Usable on orders of at least `min_order` (minor
    units, the same currency) in the group's deals (all of them, or those in coupon_deals).
    A claim is valid until `valid_until`, or `valid_days` days after it was claimed. Each
    member claims at most `per_member`; `total` exist. `pack`: the group's pack coupon,
    never claimed directly, given as the reward of a coupon pack (CouponPack)."""

    __tablename__ = "coupons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))  # amount | percent
    value: Mapped[int] = mapped_column(BigInteger, info=person_id("none"))  # money or a percent
    min_order: Mapped[int] = mapped_column(BigInteger, default=0, info=person_id("none"))
    currency: Mapped[str] = mapped_column(String(3))
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_days: Mapped[int | None] = mapped_column(Integer)
    per_member: Mapped[int] = mapped_column(Integer, default=1, info=person_id("none"))
    total: Mapped[int] = mapped_column(Integer)
    claimed: Mapped[int] = mapped_column(Integer, default=0)
    pack: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_by: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("claimed >= 0 AND claimed <= total", name="coupon_claimed_in_range"),
        CheckConstraint(
            "value > 0 AND (kind <> 'percent' OR value <= 90)", name="coupon_value_in_range"
        ),
        CheckConstraint("min_order >= 0 AND per_member >= 1", name="coupon_limits"),
        Index("ix_coupons_group_id_ended_at", "group_id", "ended_at"),
    )

    @property
    def code(self) -> str:
        return f"C{self.id}"


class CouponDeal(Base):
    """A coupon limited to chosen deals: one row per deal (none: every deal of the group)."""

    __tablename__ = "coupon_deals"

    coupon_id: Mapped[int] = mapped_column(
        ForeignKey("coupons.id", ondelete="CASCADE"), primary_key=True
    )
    deal_id: Mapped[int] = mapped_column(
        ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True
    )


class CouponClaim(Base):
    """One member's coupon: the `seq`-th they claimed of it (unique, so two concurrent claims
    of one member never pass the per-member limit), from a Claim button ("claim") or a
    pack's reward ("pack"). Redeemed on `order_id` (`discount` off it). Kept, anonymised,
    when the member is forgotten: it is a line of the owner's books."""

    __tablename__ = "coupon_claims"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    coupon_id: Mapped[int] = mapped_column(ForeignKey("coupons.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    seq: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(8), default="claim")  # claim | pack
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    discount: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        UniqueConstraint("coupon_id", "user_id", "seq"),
        UniqueConstraint("order_id"),  # one coupon per order
        Index("ix_coupon_claims_user_id", "user_id"),
        Index("ix_coupon_claims_claimed_at", "claimed_at"),  # digests
        Index("ix_coupon_claims_redeemed_at", "redeemed_at"),  # digests
    )


class CouponPack(Base):
    """A member's shareable coupon pack of a group (`/start pack_<code>`): one per member
    per group."""

    __tablename__ = "coupon_packs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    sharer_id: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("group_id", "sharer_id"),)


class PackClaim(Base):
    """A friend who opened a pack before ever ordering in its group: at most one per friend
    per group (the first pack wins; one level). `rewarded_at` is set once, when their first
    order in the group is handed over; `outcome`: both | friend (the sharer was over the
    weekly limit or is gone) | none (no pack coupon left)."""

    __tablename__ = "pack_claims"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pack_id: Mapped[int] = mapped_column(ForeignKey("coupon_packs.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    friend_id: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    claimed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rewarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(8), default="")

    __table_args__ = (
        UniqueConstraint("group_id", "friend_id"),
        Index("ix_pack_claims_pack_id_rewarded_at", "pack_id", "rewarded_at"),
    )
