"""Updates that failed: what an operator reads (/failures, /status) instead of a log line.

One row per update (bot, update id). `status`: "retrying" while a transient failure is
being retried (attempts so far), "set_aside" when it kept failing for a transient reason
UPDATE_ATTEMPTS times, "failed" when it failed for a reason a retry would not change.
Set-aside and failed updates are recorded as processed, so a redelivery changes nothing.
No message text is kept (privacy): the update's type, its ids, for a button its callback
data and for a command the command word (bot.failures.facts)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, person_id


class FailedUpdate(Base):
    __tablename__ = "failed_updates"
    __table_args__ = (
        UniqueConstraint("bot_id", "update_id"),
        Index("ix_failed_updates_last_at", "last_at"),  # /status, /failures, pruning
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    bot_id: Mapped[int] = mapped_column(BigInteger, info=person_id("none"))
    update_id: Mapped[int] = mapped_column(BigInteger, info=person_id("none"))
    update_type: Mapped[str] = mapped_column(String(32))
    # A private chat's id is its user's id: such rows are the person's (deleted on /forgetme).
    chat_id: Mapped[int | None] = mapped_column(BigInteger, info=person_id("key"))
    user_id: Mapped[int | None] = mapped_column(BigInteger, info=person_id("key"))
    status: Mapped[str] = mapped_column(String(12))  # retrying | set_aside | failed
    reason: Mapped[str] = mapped_column(Text, default="")
    detail: Mapped[str] = mapped_column(Text, default="{}")
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    first_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
