"""Protection from spam (services.moderation): a group's rules, its allow-list, the members'
entry challenges and the moderation log. No message text is stored anywhere: the log keeps
the kind of a violation, never what was written."""

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


class ModSettings(Base):
    """A group's anti-spam rules (every rule off by default) and the bot's own rights there
    (from my_chat_member updates): without them a rule cannot act."""

    __tablename__ = "mod_settings"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    challenge: Mapped[bool] = mapped_column(Boolean, default=False)  # new members tap an emoji
    challenge_minutes: Mapped[int] = mapped_column(Integer, default=5)
    link_days: Mapped[int] = mapped_column(Integer, default=0)  # 0: links allowed to all
    flood_count: Mapped[int] = mapped_column(Integer, default=0)  # 0: no flood limit
    flood_seconds: Mapped[int] = mapped_column(Integer, default=10)
    mute_minutes: Mapped[int] = mapped_column(Integer, default=10)
    delete_joins: Mapped[bool] = mapped_column(Boolean, default=False)
    # None: not known yet (the bot was added before it recorded them)
    bot_can_restrict: Mapped[bool | None] = mapped_column(Boolean)
    bot_can_delete: Mapped[bool | None] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class ModAllowed(Base):
    """A member the group's rules never act on (/allow)."""

    __tablename__ = "mod_allowed"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, info=person_id("key")
    )
    added_by: Mapped[int | None] = mapped_column(BigInteger, info=person_id("anonymise"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())


class Challenge(Base):
    """A new member's entry challenge: tap the emoji named in the group's message. `options`
    is the shown order as "emoji:code" pairs (JSON list); `answer` the right button's code;
    both opaque to a client (each button's callback carries the token and its own code)."""

    __tablename__ = "mod_challenges"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    member_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, info=person_id("key")
    )
    token: Mapped[str] = mapped_column(String(16), unique=True)
    options: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8))  # pending | passed | failed
    message_id: Mapped[int | None] = mapped_column(BigInteger, info=person_id("none"))
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_mod_challenges_status_deadline", "status", "deadline"),)


class ModAction(Base):
    """One thing the rules did (the moderation log, /modlog): the kind of violation and the
    action, the member and the time; never the text. `key` is unique per action (a replayed
    or concurrent update writes one row)."""

    __tablename__ = "mod_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(96))
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id", ondelete="CASCADE"))
    member_id: Mapped[int] = mapped_column(BigInteger, info=person_id("anonymise"))
    kind: Mapped[str] = mapped_column(String(16))  # link | invite | mention | forward | flood…
    action: Mapped[str] = mapped_column(String(12))  # delete | mute | restrict | pass | fail…
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a mute's end
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    undone_by: Mapped[int | None] = mapped_column(BigInteger, info=person_id("anonymise"))

    __table_args__ = (
        UniqueConstraint("key"),
        Index("ix_mod_actions_group_at", "group_id", "at"),
        Index("ix_mod_actions_group_member", "group_id", "member_id"),
    )
