"""Polls (征集意见): an owner's question sent as a Telegram poll into one or more groups.

A `Poll` holds what the owner asked (question, options as a JSON list, anonymous or not, one
or several answers, the closing time). Each group gets its own Telegram poll: a `PollPost`
(the message and Telegram's poll id, recorded when sendPoll's answer settles the outbox row;
`counts`: Telegram's own counts per option, from `poll` updates and stopPoll's answer, the
only figures an anonymous poll has). Votes of a non-anonymous poll are `PollVote` rows, one
per (post, voter): the options a voter holds now (a retraction deletes the row), so a
replayed `poll_answer` writes the same row again. `voter_id` is a user id, or the chat id
of an anonymous admin or channel that voted (`voter_chat`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, person_id


class Poll(Base):
    """open (until `closes_at`, then the heartbeat stops its posts) | closed."""

    __tablename__ = "polls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner_id: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    question: Mapped[str] = mapped_column(String(300))
    options: Mapped[str] = mapped_column(Text)  # JSON list of 2–10 option texts
    anonymous: Mapped[bool] = mapped_column(Boolean, default=False)
    multiple: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(8), default="open")
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_polls_status_closes_at", "status", "closes_at"),
        Index("ix_polls_owner_id", "owner_id"),
    )


class PollPost(Base):
    """The poll in one group. `message_id` / `tg_poll_id`: set once sendPoll succeeded;
    `stopped_at`: its stopPoll settled (or nothing was left to stop)."""

    __tablename__ = "poll_posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    poll_id: Mapped[int] = mapped_column(ForeignKey("polls.id", ondelete="CASCADE"))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(BigInteger, info=person_id("none"))
    tg_poll_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    counts: Mapped[str] = mapped_column(Text, default="[]")  # Telegram's counts per option
    voters: Mapped[int] = mapped_column(Integer, default=0)  # Telegram's total_voter_count
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_poll_posts_poll_id", "poll_id"),)


class PollVote(Base):
    """What one voter holds in one group's poll now (a retraction deletes the row)."""

    __tablename__ = "poll_votes"

    post_id: Mapped[int] = mapped_column(
        ForeignKey("poll_posts.id", ondelete="CASCADE"), primary_key=True
    )
    voter_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, info=person_id("key")
    )
    option_ids: Mapped[str] = mapped_column(String(40))  # "0,2": indexes into Poll.options
    voted_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_poll_votes_voter_id", "voter_id"),)
