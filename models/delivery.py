"""Delivery records: sends that failed for good (bot.sender), with their reason. The sender
keeps live figures in memory; this table is the history (never a silent drop)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, person_id, personal


class SendFailure(Base):
    """One send that did not reach its chat: the method, why, and when (UTC)."""

    __tablename__ = "send_failures"
    __table_args__ = (
        Index("ix_send_failures_chat_created", "chat_id", "created_at"),
        Index("ix_send_failures_created_at", "created_at"),  # the operators' digest
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # A private chat's id is its user's id: those rows are the user's (group ids are < 0).
    chat_id: Mapped[int] = mapped_column(BigInteger, info=person_id("key"))
    method: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class OutboxMessage(Base):
    """A message the bot promised (services.outbox): written in the transaction of the change
    that promises it, delivered by bot.outbox. `key` makes a promise unique (a replay or a
    second caller promises nothing new); `payload` holds the facts to render, never a text:
    the text is made in the recipient's language when it is sent."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_due", "status", "due_at"),
        Index("ix_outbox_chat_id", "chat_id"),
        Index("ix_outbox_status_sent_at", "status", "sent_at"),  # pruning
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)
    # The recipient: a person's private chat (their id) or a group chat (negative).
    chat_id: Mapped[int] = mapped_column(BigInteger, info=person_id("key"))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text, default="{}", info=personal("chat_id"))
    group_id: Mapped[int | None] = mapped_column(Integer)  # the group it is about, if any
    status: Mapped[str] = mapped_column(String(8), default="pending")  # pending|sent|failed
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # NULL: as soon as possible
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Claimed by a deliverer until lease_until (token: which claim); NULL: free.
    lease_token: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Claims over a lease that ran out (its deliverer died mid-send): possible duplicates.
    expired_leases: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
