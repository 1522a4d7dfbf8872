"""Privacy: what the database holds about a person, exported (/mydata) or forgotten (/forgetme).

Generic over the ORM metadata: every column that holds a Telegram user id carries a policy in
its `info` (models.base.person_id / personal), so a table added later is covered as soon as
its columns are annotated (tests/test_privacy.py fails on an unannotated id-like column).

- "key" columns make the row the person's own: exported, deleted when forgotten.
- "anonymise" columns put the person in someone else's books (an owner's orders, a ledger):
  exported, and when forgotten the id is replaced by one pseudonym per forgetting — a random
  negative 63-bit number far outside Telegram's id range — the same in every row, so an
  owner's book still shows one anonymous buyer, and uniqueness constraints hold.
- "personal" columns (names, link names, share codes, pickup codes) are tied to an id column of
  their row: exported only to that person, blanked when that id is anonymised (unless marked
  blank=False: a pickup code stays, the goods may still be collected with it).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, String, Table, Text, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from models import Base, Deal, Group, InviteLink, Order, Review
from services import events
from services.timezones import utcnow

# Pseudonyms lie in [-2**63 + 1, -2**62]: no Telegram user or chat id comes near (ids fit in
# 52 bits), so one can never be mistaken for a real chat.
PSEUDONYM_FLOOR = -(2**62)


def is_pseudonym(user_id: int | None) -> bool:
    """True for an id that /forgetme put in place of a person: never send to it."""
    return user_id is not None and user_id <= PSEUDONYM_FLOOR


def new_pseudonym() -> int:
    return PSEUDONYM_FLOOR - secrets.randbelow(2**62 - 1)


@dataclass(frozen=True, slots=True)
class TablePolicy:
    table: Table
    keys: tuple[Column, ...]  # rows matching any of these are the person's own
    anonymise: tuple[Column, ...]  # ids of the person in others' rows
    personal: dict[str, str]  # personal column name → the id column it belongs to
    blank: frozenset[str]  # personal columns blanked when their id column is anonymised

    @property
    def people(self) -> tuple[Column, ...]:
        return self.keys + self.anonymise


def policies() -> list[TablePolicy]:
    """The tables that can hold a person, in dependency order (parents first)."""
    result = []
    for table in Base.metadata.sorted_tables:
        keys = tuple(c for c in table.columns if c.info.get("person") == "key")
        anonymise = tuple(c for c in table.columns if c.info.get("person") == "anonymise")
        personal = {c.name: c.info["personal"] for c in table.columns if "personal" in c.info}
        blank = frozenset(c.name for c in table.columns if c.info.get("blank", True))
        if keys or anonymise:
            result.append(TablePolicy(table, keys, anonymise, personal, blank & set(personal)))
    return result


def _is_text(column: Column) -> bool:
    return isinstance(column.type, String | Text)


def _matches(column: Column, user_id: int) -> ColumnElement[bool]:
    """The column holds the person: equal to the id, or (text) one ':'-separated field of it."""
    if not _is_text(column):
        return column == user_id
    uid = str(user_id)
    return or_(
        column == uid,
        column.like(f"{uid}:%"),
        column.like(f"%:{uid}"),
        column.like(f"%:{uid}:%"),
    )


def _holds(value: Any, user_id: int) -> bool:
    if isinstance(value, str):
        return str(user_id) in value.split(":")
    return value == user_id


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return value


async def export(session: AsyncSession, user_id: int) -> dict[str, Any]:
    """Every row that holds the person, table by table, JSON-safe. Other people's ids in those
    rows (an inviter, a referrer, the owner who wrote a ledger line) and their personal
    columns are left out (None)."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for policy in policies():
        table = policy.table
        order = list(table.primary_key.columns) or list(table.columns)
        rows = (
            await session.execute(
                select(table)
                .where(or_(*(_matches(c, user_id) for c in policy.people)))
                .order_by(*order)
            )
        ).mappings()
        out = []
        for row in rows:
            record = {}
            for column in table.columns:
                value = row[column]
                if column in policy.people and not _holds(value, user_id):
                    value = None
                owner = policy.personal.get(column.name)
                if owner is not None and not _holds(row[table.columns[owner]], user_id):
                    value = None
                record[column.name] = _json_value(value)
            out.append(record)
        if out:
            tables[table.name] = out
    return {
        "user_id": user_id,
        "exported_at": utcnow().isoformat(),
        "about": (
            "Everything Tuan stores about this Telegram user, table by table. Ids of other "
            "people are left out (null). Tuan never stores the text of chat messages."
        ),
        "tables": tables,
    }


@dataclass
class ForgetSummary:
    user_id: int
    pseudonym: int
    deleted: dict[str, int] = field(default_factory=dict)  # table → rows
    anonymised: dict[str, int] = field(default_factory=dict)  # "table.column" → rows
    # The person's live invite links (group chat id, link), to revoke at Telegram after commit.
    invite_links: list[tuple[int, str]] = field(default_factory=list)
    # The deals they had orders in: given a new version, so their posts drop the name.
    deals: list[int] = field(default_factory=list)


def _blank(column: Column) -> Any:
    if column.nullable:
        return None
    if _is_text(column):
        return ""
    raise TypeError(f"cannot blank {column.table.name}.{column.name}: not nullable, not text")


async def forget(session: AsyncSession, user_id: int) -> ForgetSummary:
    """Delete the person's own rows and put a pseudonym in place of their id in everyone
    else's (blanking the personal columns tied to it). Inside the caller's transaction."""
    await session.flush()  # pending ORM changes first: the statements below bypass the ORM
    summary = ForgetSummary(user_id, new_pseudonym())
    summary.invite_links = [
        (chat_id, link)
        for chat_id, link in await session.execute(
            select(Group.chat_id, InviteLink.link)
            .join(Group, Group.id == InviteLink.group_id)
            .where(InviteLink.user_id == user_id, InviteLink.revoked_at.is_(None))
            .order_by(InviteLink.id)
        )
    ]
    shown_in = await _deals_showing(session, user_id)
    table_policies = policies()
    # Children before parents: rows that reference a deleted row go with it (or are set NULL)
    # by the foreign keys' own rules.
    for policy in reversed(table_policies):
        if not policy.keys:
            continue
        result = await session.execute(
            delete(policy.table).where(or_(*(_matches(c, user_id) for c in policy.keys)))
        )
        if result.rowcount:
            summary.deleted[policy.table.name] = result.rowcount
    for policy in table_policies:
        for column in policy.anonymise:
            values: dict[str, Any] = {column.name: summary.pseudonym}
            for name, owner in policy.personal.items():
                if owner == column.name and name in policy.blank:
                    values[name] = _blank(policy.table.columns[name])
            result = await session.execute(
                update(policy.table).where(column == user_id).values(**values)
            )
            if result.rowcount:
                summary.anonymised[f"{policy.table.name}.{column.name}"] = result.rowcount
    await _new_versions(session, shown_in)
    summary.deals = shown_in
    # The ORM objects loaded in this session (the user of the update, say) may be gone.
    session.expire_all()
    return summary


async def _deals_showing(session: AsyncSession, user_id: int) -> list[int]:
    """The deals whose group posts may show the person: those they ordered in, and every
    deal of a product they reviewed (the posts show the reviews' figures)."""
    rows = await session.scalars(
        select(Order.deal_id).where(Order.user_id == user_id).distinct().order_by(Order.deal_id)
    )
    families = select(Review.product_key).where(Review.user_id == user_id)
    reviewed = await session.scalars(
        select(Deal.id).where(or_(Deal.id.in_(families), Deal.product_key.in_(families)))
    )
    return sorted(set(rows) | set(reviewed))


async def _new_versions(session: AsyncSession, deal_ids: list[int]) -> None:
    """A new version of each deal, in the forgetting's transaction: their posts are behind it
    (services.deals.stale_posts), so they are re-rendered without the name — soon by this
    process (DealChanged), or by the catch-up at the next start if it dies after the commit."""
    if not deal_ids:
        return
    now = utcnow()
    for start in range(0, len(deal_ids), 500):
        await session.execute(
            update(Deal).where(Deal.id.in_(deal_ids[start : start + 500])).values(updated_at=now)
        )
    for deal_id in deal_ids:
        events.record(session, events.DealChanged(deal_id))
