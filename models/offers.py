"""Growth offers on a deal: team buys (拼团) and bargains with friends (砍价).

A team member's or a bargain's order is an ordinary order of the deal (one per member per deal)
that names its team or bargain; the rules of each offer are copied
onto its row when it starts, so they never change under the people who acted on them.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, person_id


class Team(Base):
    """A team buy: `size` members at `price` each (minor units of the deal's currency), to be
    filled before `expires_at`. `members` counts the orders in it (changed only by
    conditional UPDATEs in the transaction of the order). open | filled |
    failed. `message_id`: its card in the group, posted and edited with the deal's posts
    (bot.team_cards; `posted_at`: when the card was claimed for sending, as a deal post is;
    `rendered_at`: the version of the deal it shows)."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    starter_id: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    code: Mapped[str] = mapped_column(String(16), unique=True)  # the share link's opaque part
    size: Mapped[int] = mapped_column(Integer)
    price: Mapped[int] = mapped_column(BigInteger)
    members: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(8), default="open")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[int | None] = mapped_column(BigInteger, info=person_id("none"))
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the card's claim
    rendered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("members >= 0 AND members <= size", name="team_members_in_range"),
        Index("ix_teams_status_expires_at", "status", "expires_at"),
        Index("ix_teams_deal_id_status", "deal_id", "status"),
        Index("ix_teams_group_closed_at", "group_id", "closed_at"),  # digests
    )


class Bargain(Base):
    """A member's bargain on a deal: from `start_price` down to `floor_price` in `helps_needed`
    cuts, whose amounts (`schedule`, a JSON list) are drawn from `seed` when it starts and
    sum exactly to start − floor. `price` is what it has reached. open | bought | expired.
    One per member per deal."""

    __tablename__ = "bargains"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    starter_id: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    code: Mapped[str] = mapped_column(String(16), unique=True)
    start_price: Mapped[int] = mapped_column(BigInteger)
    floor_price: Mapped[int] = mapped_column(BigInteger)
    helps_needed: Mapped[int] = mapped_column(Integer)
    seed: Mapped[str] = mapped_column(String(64))
    schedule: Mapped[str] = mapped_column(Text)  # JSON [cut_1, ..., cut_K], minor units
    helps: Mapped[int] = mapped_column(Integer, default=0)
    price: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(8), default="open")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("deal_id", "starter_id"),
        CheckConstraint("helps >= 0 AND helps <= helps_needed", name="bargain_helps_in_range"),
        CheckConstraint("price >= floor_price", name="bargain_price_above_floor"),
        Index("ix_bargains_status_expires_at", "status", "expires_at"),
        Index("ix_bargains_group_closed_at", "group_id", "closed_at"),  # digests
    )


class BargainHelp(Base):
    """One friend's help: the `seq`-th cut of the bargain's schedule. Kept (anonymised) when
    the helper is forgotten: the bargain's price is the sum of its cuts."""

    __tablename__ = "bargain_helps"

    bargain_id: Mapped[int] = mapped_column(
        ForeignKey("bargains.id", ondelete="CASCADE"), primary_key=True
    )
    helper_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, info=person_id("anonymise")
    )
    seq: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(BigInteger)  # the cut, minor units
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("bargain_id", "seq"),
        Index("ix_bargain_helps_helper_id", "helper_id"),
    )


class HelpDay(Base):
    """How many bargains one account helped on one UTC day (the daily cap: a conditional
    UPDATE, so concurrent helps never pass it)."""

    __tablename__ = "bargain_help_days"

    helper_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, info=person_id("key")
    )
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    helps: Mapped[int] = mapped_column(Integer, default=0)
