"""Lotteries (抽奖) of a group, drawn verifiably (services.lotteries, services.lottery_draw).

A lottery's rules (prize, number of winners, who may enter, deadline, claim window) are fixed
when it is created. Its `secret` stays in this row, never shown, until the draw reveals it;
its `commitment` (SHA-256 of the secret) is published with the announcement; `entries_hash`
is set when entries close. An entry holds only a random ticket code for the public: the
published list is the sorted tickets, never who holds them.

status: open (entries taken until `closes_at`) → closed (the entry list and its hash are
published) → drawn (the secret revealed, winners told; redraws go on while winners lapse).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, person_id


class Lottery(Base):
    __tablename__ = "lotteries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    created_by: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    prize: Mapped[str] = mapped_column(Text)
    winners: Mapped[int] = mapped_column(Integer)
    # who may enter: any | deal (a fulfilled order of deal `rule_n`) | bought (a fulfilled
    # order in the group within the last `rule_n` days) | active (active on at least
    # `rule_n` of the last 14 days)
    rule: Mapped[str] = mapped_column(String(8), default="any")
    rule_n: Mapped[int | None] = mapped_column(Integer)
    claim_hours: Mapped[int] = mapped_column(Integer)
    secret: Mapped[str] = mapped_column(String(64))
    commitment: Mapped[str] = mapped_column(String(64))
    entries_hash: Mapped[str | None] = mapped_column(String(64))
    entries: Mapped[int] = mapped_column(Integer, default=0)  # counted by conditional UPDATEs
    status: Mapped[str] = mapped_column(String(8), default="open")
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    drawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        CheckConstraint("winners >= 1 AND entries >= 0", name="lottery_counts"),
        Index("ix_lotteries_status_closes_at", "status", "closes_at"),
        Index("ix_lotteries_group_id_created_at", "group_id", "created_at"),
    )


class LotteryEntry(Base):
    """One member's entry (one per member per lottery) and its public ticket code. Kept,
    anonymised, when the member is forgotten: the published list must stay checkable."""

    __tablename__ = "lottery_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    lottery_id: Mapped[int] = mapped_column(ForeignKey("lotteries.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    ticket: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("lottery_id", "user_id"),
        UniqueConstraint("lottery_id", "ticket"),
        Index("ix_lottery_entries_user_id", "user_id"),
        Index("ix_lottery_entries_created_at", "created_at"),  # digests
    )


class LotteryWinner(Base):
    """The `seq`-th ticket drawn (draw step k = seq − 1). pending (until `claim_by`) |
    claimed | lapsed (replaced by the next draw)."""

    __tablename__ = "lottery_winners"

    lottery_id: Mapped[int] = mapped_column(
        ForeignKey("lotteries.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ticket: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    status: Mapped[str] = mapped_column(String(8), default="pending")
    claim_by: Mapped[datetime] = mapped_column(UTCDateTime, info=person_id("none"))
    drawn_at: Mapped[datetime] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("lottery_id", "ticket"),
        Index("ix_lottery_winners_status_claim_by", "status", "claim_by"),
        Index("ix_lottery_winners_user_id", "user_id"),
    )
