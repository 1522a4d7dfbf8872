"""ORM models of the foundation: people, groups, their administrators and memberships,
processed updates (replay protection) and persisted FSM state."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, UTCDateTime, person_id, personal


def _shop_code() -> str:
    return secrets.token_urlsafe(9)  # 12 characters of A-Z a-z 0-9 - _


def _now_default():
    return func.now()


class User(Base):
    """A Telegram user the bot has seen. `language` is the user's explicit choice."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, info=person_id("key")
    )
    first_name: Mapped[str] = mapped_column(String(256), default="", info=personal("id"))
    last_name: Mapped[str | None] = mapped_column(String(256), info=personal("id"))
    username: Mapped[str | None] = mapped_column(String(64), info=personal("id"))
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    language_code: Mapped[str | None] = mapped_column(String(35), info=personal("id"))
    language: Mapped[str | None] = mapped_column(String(16), info=personal("id"))
    started: Mapped[bool] = mapped_column(Boolean, default=False)
    # /hideme: never shown on leaderboards (/top) in any group.
    leaderboard_hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=_now_default())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=_now_default())

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or str(self.id)


class Group(Base):
    """A group or supergroup the bot was added to. `chat_id` follows supergroup upgrades;
    everything else refers to the stable `id`."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, unique=True, info=person_id("none"))
    title: Mapped[str] = mapped_column(String(256), default="")
    type: Mapped[str] = mapped_column(String(16), default="group")
    timezone: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    language: Mapped[str] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    added_by: Mapped[int | None] = mapped_column(BigInteger, info=person_id("anonymise"))
    # Growth (owner settings): commission in basis points (500 = 5 %), share-link attribution
    # window in days, whether members may spend credit as a discount, and the "core member"
    # threshold (active on at least N of the last 14 days).
    commission_bp: Mapped[int] = mapped_column(Integer, default=0)
    attribution_days: Mapped[int] = mapped_column(Integer, default=7)
    credit_spendable: Mapped[bool] = mapped_column(Boolean, default=False)
    core_min_days: Mapped[int] = mapped_column(Integer, default=5)
    # Daily digest: local wall-clock time "HH:MM" in the group's timezone, and on/off.
    digest_time: Mapped[str] = mapped_column(String(5), default="09:00")
    digest_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # The group's own /terms and /paysupport texts ("": the deployment's).
    terms_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    paysupport_text: Mapped[str] = mapped_column(Text, default="", server_default="")
    # The Mini App storefront's opaque code (t.me/<bot>/<app>?startapp=<code>): random, not
    # the chat id; issued with the group (services.webapp.new_shop_code).
    shop_code: Mapped[str | None] = mapped_column(String(16), unique=True, default=_shop_code)
    admins_refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=_now_default())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=_now_default())


class GroupAdmin(Base):
    """An administrator (or the creator) of a group, as Telegram last reported."""

    __tablename__ = "group_admins"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, info=person_id("key")
    )
    status: Mapped[str] = mapped_column(String(16))  # creator | administrator
    can_invite_users: Mapped[bool] = mapped_column(Boolean, default=False)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=_now_default())

    __table_args__ = (Index("ix_group_admins_user_id", "user_id"),)


class Membership(Base):
    """A member of a group (from chat_member updates and messages seen)."""

    __tablename__ = "memberships"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, info=person_id("key")
    )
    status: Mapped[str] = mapped_column(
        String(16)
    )  # member | administrator | creator | left | kicked | restricted
    joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=_now_default())

    __table_args__ = (
        Index("ix_memberships_user_id", "user_id"),
        # Digests: who joined / left a group in a period.
        Index("ix_memberships_group_joined_at", "group_id", "joined_at"),
        Index("ix_memberships_group_left_at", "group_id", "left_at"),
    )


class ProcessedUpdate(Base):
    """Update ids whose transaction committed: a replay of the same update changes nothing."""

    __tablename__ = "processed_updates"

    bot_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, info=person_id("none")
    )
    update_id: Mapped[int] = mapped_column(
        BigInteger, primary_key=True, autoincrement=False, info=person_id("none")
    )
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=_now_default())

    __table_args__ = (Index("ix_processed_updates_processed_at", "processed_at"),)


class FsmState(Base):
    """aiogram FSM state and data, persisted so a half-finished wizard survives a restart."""

    __tablename__ = "fsm_states"

    # "fsm:<bot>:<chat>:<user>:<destiny>": private chats only, where chat = user.
    key: Mapped[str] = mapped_column(String(200), primary_key=True, info=person_id("key"))
    state: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[str] = mapped_column(Text, default="{}")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=_now_default())
