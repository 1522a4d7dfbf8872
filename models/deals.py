"""Group-buy deals (拼团 / 接龙), their posts in groups, and orders."""

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
    Text,
    UniqueConstraint,
    false,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, person_id, personal


class Deal(Base):
    """A group-buy. Money in minor units of `currency`; times in UTC.

    `total_qty`, `participants` and `stock_left` are changed only by conditional UPDATEs in
    services.orders, inside the transaction that changes the order, so they always equal the
    sums over active orders and stock can never go below zero.
    """

    __tablename__ = "deals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(BigInteger, index=True, info=person_id("anonymise"))
    title: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    photo_file_id: Mapped[str | None] = mapped_column(String(256))
    currency: Mapped[str] = mapped_column(String(3))
    unit_price: Mapped[int] = mapped_column(BigInteger)
    tiers: Mapped[str] = mapped_column(Text, default="[]")  # JSON [[min_units, price_minor], ...]
    min_kind: Mapped[str | None] = mapped_column(String(16))  # units | participants
    min_value: Mapped[int | None] = mapped_column(Integer)
    stock_total: Mapped[int | None] = mapped_column(Integer)
    stock_left: Mapped[int | None] = mapped_column(Integer)
    per_person_limit: Mapped[int | None] = mapped_column(Integer)
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    pickup_note: Mapped[str] = mapped_column(Text, default="")
    # Reminders before closing, minutes, comma-separated and descending ("120,15");
    # NULL: the default (2 h and 15 min); "": none.
    reminders: Mapped[str | None] = mapped_column(String(64))
    # Commission for this deal in basis points; NULL: the group's setting.
    commission_bp: Mapped[int | None] = mapped_column(Integer)
    # scheduled | open | paused | succeeded | failed | cancelled
    status: Mapped[str] = mapped_column(String(16), index=True)
    # Who may join from an inline card (and a share link): "members" of the deal's group
    # (checked with getChatMember at the tap, cached briefly) or "anyone" with the card.
    audience: Mapped[str] = mapped_column(String(8), default="members", server_default="members")
    # How members pay (services.payments): "cash" on pickup (the owner marks it paid), "card"
    # through the deployment's payment provider, or "stars" (Telegram Stars, currency XTR,
    # only for digital items).
    pay_method: Mapped[str] = mapped_column(String(8), default="cash", server_default="cash")
    digital: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A deal with a minimum: hours members have to pay after it succeeds. Without one (a
    # flash sale): minutes a joined unit is held for its payment.
    pay_hours: Mapped[int] = mapped_column(Integer, default=24, server_default="24")
    hold_minutes: Mapped[int] = mapped_column(Integer, default=15, server_default="15")
    # A team buy (services.teams): teams of `team_size` members (2–50) at
    # `team_price` each, filled within `team_hours` (1–72); `team_only`: no buying alone.
    # NULL size: no teams.
    team_size: Mapped[int | None] = mapped_column(Integer)
    team_price: Mapped[int | None] = mapped_column(BigInteger)
    team_hours: Mapped[int | None] = mapped_column(Integer)
    team_only: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # A bargain (services.bargains): from `bargain_start_price` to
    # `bargain_floor_price` in `bargain_helps` helps (2–50) within `bargain_hours`. NULL
    # helps: no bargains.
    bargain_start_price: Mapped[int | None] = mapped_column(BigInteger)
    bargain_floor_price: Mapped[int | None] = mapped_column(BigInteger)
    bargain_helps: Mapped[int | None] = mapped_column(Integer)
    bargain_hours: Mapped[int | None] = mapped_column(Integer)
    # The product family for reviews (models.reviews): the origin deal this one was
    # duplicated from, directly or through other copies; NULL: an original (its own id).
    product_key: Mapped[int | None] = mapped_column(Integer, index=True)
    # An offline event's deal (models.gatherings.OfflineEvent beside it): known from the row
    # already read, so the one order action asks nothing more of an ordinary deal.
    is_event: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    total_qty: Mapped[int] = mapped_column(Integer, default=0)
    participants: Mapped[int] = mapped_column(Integer, default=0)
    final_price: Mapped[int | None] = mapped_column(BigInteger)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the closing was announced (posts, members, owner); NULL after a crash in between.
    announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())

    __table_args__ = (
        CheckConstraint("stock_left IS NULL OR stock_left >= 0", name="stock_not_negative"),
        CheckConstraint("total_qty >= 0 AND participants >= 0", name="counts_not_negative"),
        Index("ix_deals_status_closes_at", "status", "closes_at"),
        Index("ix_deals_closed_at", "closed_at"),  # digests: deals closed in a period
    )

    @property
    def code(self) -> str:
        return f"D{self.id}"

    @property
    def family(self) -> int:
        """The product family its reviews count in (the origin deal's id)."""
        return self.product_key or self.id


class DealPost(Base):
    """A deal's post in one group: where the live sign-up list is shown."""

    __tablename__ = "deal_posts"

    deal_id: Mapped[int] = mapped_column(
        ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    message_id: Mapped[int | None] = mapped_column(BigInteger, info=person_id("none"))
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The version of the deal the post shows: the deal's updated_at when it was rendered.
    rendered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_deal_posts_group_id", "group_id"),)


class Order(Base):
    """One member's order in one deal; its quantity changes, it is never duplicated."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, index=True, info=person_id("anonymise"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))
    quantity: Mapped[int] = mapped_column(Integer)
    # active | cancelled | confirmed | failed
    status: Mapped[str] = mapped_column(String(16))
    unit_price: Mapped[int | None] = mapped_column(BigInteger)  # set when the deal succeeds
    amount: Mapped[int | None] = mapped_column(BigInteger)
    pickup_code: Mapped[str] = mapped_column(
        String(16), unique=True, info=personal("user_id", blank=False)
    )
    # none | ready | picked_up | delivered
    fulfilment: Mapped[str] = mapped_column(String(16), default="none")
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Single-level referral: who gets credit for this order (a share link's sharer), never
    # the buyer; set when the order is placed (last click within the group's window).
    referrer_id: Mapped[int | None] = mapped_column(BigInteger, info=person_id("anonymise"))
    share_code: Mapped[str | None] = mapped_column(String(32), info=personal("referrer_id"))
    # Where the order was placed first: button | command | share | card | myorders (digest:
    # joins from inline cards). None for orders older than the column.
    via: Mapped[str | None] = mapped_column(String(8))
    # Credit spent on this order as a discount (minor units, <= amount).
    discount: Mapped[int] = mapped_column(BigInteger, default=0)
    # A coupon's discount (services.coupons; the claim names this order), minor units: with
    # `discount` never more than `amount`.
    coupon_discount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Payments in the app (services.payments): what applied payments brought in, the moment
    # the order must be paid by (a hold or the payment deadline; NULL: none), and the
    # number of the latest invoice (its key and payload carry it).
    paid_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    pay_by: Mapped[datetime | None] = mapped_column(UTCDateTime, info=person_id("none"))
    invoice_no: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # A team member's order or a bargain's buy (services.teams, services.bargains): priced
    # and confirmed by its offer, not by the deal's closing.
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    bargain_id: Mapped[int | None] = mapped_column(ForeignKey("bargains.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())

    @property
    def offer(self) -> str | None:
        """The offer that priced this order: "team", "bargain", or None for a plain order."""
        if self.team_id is not None:
            return "team"
        if self.bargain_id is not None:
            return "bargain"
        return None

    __table_args__ = (
        UniqueConstraint("deal_id", "user_id"),
        Index("ix_orders_team_id", "team_id"),
        CheckConstraint("quantity >= 0", name="quantity_not_negative"),
        Index("ix_orders_deal_id_status", "deal_id", "status"),
        # Digests: a group's cancellations in a period.
        Index("ix_orders_group_status_updated_at", "group_id", "status", "updated_at"),
        Index("ix_orders_pay_by", "pay_by"),  # lapses of unpaid holds and deadlines
    )
