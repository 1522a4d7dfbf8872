"""Offline events (线下活动): an event is a deal under the hood (stock = capacity, one place
per person, no minimum, closes at the sign-up deadline), with this row beside it for what
a deal has not: where and when it happens, and which reminders went out. Attendance is a
row per order checked in (`EventCheckin`), written once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, person_id


class OfflineEvent(Base):
    """The event of a deal (1:1). `starts_at` in UTC (typed in the group's local time);
    `reminded_day_at` / `reminded_soon_at`: when the reminders 24 h and 2 h before were
    taken by the heartbeat (once each: a conditional UPDATE on NULL)."""

    __tablename__ = "offline_events"

    deal_id: Mapped[int] = mapped_column(
        ForeignKey("deals.id", ondelete="CASCADE"), primary_key=True
    )
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    place: Mapped[str] = mapped_column(String(200))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reminded_day_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminded_soon_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_offline_events_starts_at", "starts_at"),
        Index("ix_offline_events_group_id", "group_id"),
    )


class EventCheckin(Base):
    """A member's attendance: their order checked in at the event (one row per order, so a
    second check-in changes nothing), by an owner or administrator of the group."""

    __tablename__ = "event_checkins"

    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), primary_key=True
    )
    deal_id: Mapped[int] = mapped_column(ForeignKey("deals.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    checked_by: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    checked_in_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_event_checkins_group_checked", "group_id", "checked_in_at"),
        Index("ix_event_checkins_deal_id", "deal_id"),
    )
