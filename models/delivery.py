"""Delivery records: sends that failed for good (bot.sender), with their reason. The sender
keeps live figures in memory; this table is the history (never a silent drop)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, person_id


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
