"""The schedule the database holds: content posts of the owners' calendar (one row per post,
one per target group with that group's next run) and the reminders sent before deals close.

Times are UTC. A recurring post's next run is computed per target group in that group's
timezone (services.calendar), so "daily at 09:00" is 09:00 on each group's wall clock, through
DST changes. `claimed_by` / `claimed_until` let one instance take a due target (a conditional
UPDATE) so two instances never send it twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, person_id


class ScheduledPost(Base):
    """A content post: text (and photo), an optional button to a deal, and when it runs.

    kind: once (at `run_at`) | daily (at `at_time`) | weekly (`weekdays` at `at_time`) |
    cron (`cron`, five fields). `at_time` is local wall-clock "HH:MM"; `weekdays` is "0,2,4"
    (Monday = 0).
    """

    __tablename__ = "scheduled_posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # The owner's own content: deleted with its targets on /forgetme.
    owner_id: Mapped[int] = mapped_column(BigInteger, index=True, info=person_id("key"))
    text: Mapped[str] = mapped_column(Text, default="")
    photo_file_id: Mapped[str | None] = mapped_column(String(256))
    deal_id: Mapped[int | None] = mapped_column(ForeignKey("deals.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16))
    run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    at_time: Mapped[str | None] = mapped_column(String(5))
    weekdays: Mapped[str | None] = mapped_column(String(16))
    cron: Mapped[str | None] = mapped_column(String(120))
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class ScheduledTarget(Base):
    """One group of a scheduled post: when it runs there next (NULL: done), who has claimed
    the run being sent, and how the last run went."""

    __tablename__ = "scheduled_post_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    post_id: Mapped[int] = mapped_column(ForeignKey("scheduled_posts.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An instance name, not a person.
    claimed_by: Mapped[str | None] = mapped_column(String(64), info=person_id("none"))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        UniqueConstraint("post_id", "group_id"),
        Index("ix_scheduled_post_groups_next_run_at", "next_run_at"),
    )


class DealReminderSent(Base):
    """A reminder before a deal closes, taken once per deal and kind ("m120": 120 minutes
    before; rows from before per-deal reminders say "2h" / "15m"): `outcome` is sent or
    skipped (stale after a restart, or the deal closes too soon for it to matter)."""

    __tablename__ = "deal_reminders_sent"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(16), default="sent")
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("deal_id", "kind"),)
