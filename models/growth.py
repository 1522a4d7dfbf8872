"""Community growth: activity counters, personal invite links and who invited whom, deal share
links and their clicks, and the single-level commission ledger.

Privacy: no message text anywhere, counts only. Days are the GROUP's local calendar day
(its timezone at the moment of the event), so "yesterday" in a digest is the group's day.
Money in minor units with its ISO currency. The ledger is append-only: a balance is a sum.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, person_id, personal


class MemberActivityDay(Base):
    """One member's counts in one group on one local day (flushed from memory)."""

    __tablename__ = "member_activity_days"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, info=person_id("key")
    )
    messages: Mapped[int] = mapped_column(Integer, default=0)
    signups: Mapped[int] = mapped_column(Integer, default=0)
    orders: Mapped[int] = mapped_column(Integer, default=0)
    last_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_member_activity_days_user_id", "user_id"),)


class GroupActivityDay(Base):
    """A group's counts on one local day. `active_members` counts distinct members with any
    activity that day (kept equal to the number of member_activity_days rows)."""

    __tablename__ = "group_activity_days"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    messages: Mapped[int] = mapped_column(Integer, default=0)
    joins: Mapped[int] = mapped_column(Integer, default=0)
    leaves: Mapped[int] = mapped_column(Integer, default=0)
    active_members: Mapped[int] = mapped_column(Integer, default=0)
    signups: Mapped[int] = mapped_column(Integer, default=0)
    orders: Mapped[int] = mapped_column(Integer, default=0)


class InviteLink(Base):
    """A member's personal invite link to a group (createChatInviteLink, named after them)."""

    __tablename__ = "invite_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, info=person_id("key"))
    link: Mapped[str] = mapped_column(String(128), unique=True, info=personal("user_id"))
    name: Mapped[str] = mapped_column(String(32), default="", info=personal("user_id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_invite_links_group_user", "group_id", "user_id"),)


class Referral(Base):
    """Who invited a member into a group: at most one row per (group, member), so re-joins
    never count twice. Self-invites and bots are never recorded."""

    __tablename__ = "referrals"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    # The invitee: anonymised (not deleted) on /forgetme, so the inviter keeps the count.
    user_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, info=person_id("anonymise")
    )
    inviter_id: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    invite_link_id: Mapped[int | None] = mapped_column(
        ForeignKey("invite_links.id", ondelete="SET NULL")
    )
    joined_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_referrals_group_inviter", "group_id", "inviter_id"),)


class ShareLink(Base):
    """A member's share link for a deal posted in a group: t.me/<bot>?start=<code>."""

    __tablename__ = "share_links"

    code: Mapped[str] = mapped_column(String(32), primary_key=True, info=personal("user_id"))
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, info=person_id("key"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("deal_id", "group_id", "user_id"),)


class ShareClick(Base):
    """Someone opened a share link (the last click within the window wins attribution)."""

    __tablename__ = "share_clicks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(ForeignKey("share_links.code", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, info=person_id("key"))
    clicked_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_share_clicks_user_group", "user_id", "group_id", "clicked_at"),)


class CreditEntry(Base):
    """One line of the append-only commission ledger of a member in a group.

    kind: earned (+, an attributed order fulfilled) | reversed (-, that order cancelled or
    refunded afterwards) | payout (-, the owner paid it out) | spent (-, used as a discount on
    an order). Balance = SUM(amount) per (group, user, currency).
    """

    __tablename__ = "credit_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(Text, default="", info=personal("user_id"))
    created_by: Mapped[int | None] = mapped_column(BigInteger, info=person_id("anonymise"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())

    __table_args__ = (
        Index("ix_credit_entries_group_user", "group_id", "user_id"),
        Index("ix_credit_entries_order_id", "order_id"),
        Index("ix_credit_entries_group_kind_created_at", "group_id", "kind", "created_at"),
    )


class InlineCard(Base):
    """A deal card sent through inline mode into some chat, known by its inline_message_id
    (from chosen_inline_result, or from the first tap on it). Kept live like group posts:
    refreshed when the deal changes, marked closed at the closing, dropped when Telegram no
    longer accepts edits for it. `group_id` is the group the card's orders count in and
    `sharer_id` the member who shared it (one level of attribution, like share links)."""

    __tablename__ = "inline_cards"

    inline_message_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"), index=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    share_code: Mapped[str | None] = mapped_column(String(32), info=personal("sharer_id"))
    sharer_id: Mapped[int | None] = mapped_column(BigInteger, info=person_id("anonymise"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rendered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # version shown
    dropped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # edits refused

    __table_args__ = (Index("ix_inline_cards_group_created_at", "group_id", "created_at"),)
