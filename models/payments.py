"""Payments made in Telegram (card through the provider, or Stars) and deals' waitlists."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, person_id, personal


class Payment(Base):
    """One `successful_payment`, recorded once: its Telegram charge id is the unique key.

    `applied`: it paid its order. A payment that found its order already paid or cancelled
    is a surplus (`applied` False) and is refunded: Stars through the Bot API, a card by
    the owner in the provider's dashboard. `refund`: none | pending (a Stars refund is on
    its way, an outbox row) | refunded | failed (Telegram refused it: the owner is told) |
    owed (a card payment to give back: the owner is told what to do) | outside (the owner
    confirmed a card refund made in the dashboard).
    """

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The charge ids are the person's payment references: exported to them by /mydata, kept
    # when they are anonymised (the books and the provider need them for refunds).
    charge_id: Mapped[str] = mapped_column(
        String(255), unique=True, info=personal("user_id", blank=False)
    )
    provider_charge_id: Mapped[str] = mapped_column(
        String(255), default="", info=personal("user_id", blank=False)
    )
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    user_id: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    method: Mapped[str] = mapped_column(String(8))  # card | stars
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    applied: Mapped[bool] = mapped_column(Boolean)
    refund: Mapped[str] = mapped_column(String(8), default="none")
    refund_reason: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_payments_order_id", "order_id"),
        Index("ix_payments_created_at", "created_at"),  # the digest: collected in a period
    )


class WaitlistEntry(Base):
    """A member refused "sold out" who asked to be next: units a lapse frees go to the
    first of them (services.payments), each with an invoice of their own."""

    __tablename__ = "waitlist"

    deal_id: Mapped[int] = mapped_column(
        ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, info=person_id("key"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    served_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_waitlist_deal_served_created", "deal_id", "served_at", "created_at"),
    )
