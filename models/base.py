"""Declarative base, naming convention (stable Alembic names) and portable column types."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL stores `timestamptz`; SQLite has no such type, so values are normalised to UTC
    on the way in and given back their UTC tzinfo on the way out.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use an aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# Privacy annotations (Column.info), read by services.privacy and enforced by
# tests/test_privacy.py so that no column holding a person slips through:
#   person_id("key")        a Telegram user id (or a private chat id, equal to it) that makes the
#                           row the person's own: /mydata exports it, /forgetme deletes it. On a
#                           text column: the id is one ':'-separated field of it (FSM keys).
#   person_id("anonymise")  a user id in a row of someone else's books: exported, and on
#                           /forgetme replaced by a pseudonym (services.privacy).
#   person_id("none")       looks like one, is not (group chat ids, message ids).
#   personal("col")         not an id but personal data of the person in `col` of the same row
#                           (names, link names): exported only to that person, blanked when
#                           `col` is anonymised (rows deleted with `col` lose it anyway).
#                           blank=False: kept when anonymised (a pickup code: not identifying,
#                           and the goods may still be collected with it).
PERSON_POLICIES = ("key", "anonymise", "none")


def person_id(policy: str) -> dict[str, str]:
    if policy not in PERSON_POLICIES:
        raise ValueError(f"unknown person policy {policy!r}")
    return {"person": policy}


def personal(of: str, *, blank: bool = True) -> dict[str, Any]:
    return {"personal": of, "blank": blank}
