"""Unfinished forms that name another person, and forgetting that person in them.

A form (aiogram FSM data) that refers to someone other than the person filling it in keeps
that person's id under one key, PERSON_KEY (the owner's "record payout" form keeps the member
it pays). /forgetme calls `forget_person` in its update, before the commit: every form of
anyone that holds the id loses it and is marked PERSON_GONE, whatever the storage (the SQL
table, Redis — scanned, as several instances share it — or aiogram's memory storage). The
form's state stays, so its next step answers clearly that the person is no longer known and
ends the form instead of acting. A form step also re-checks that the person still exists, so
even a form written between the scrub and the commit cannot act on a forgotten person.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram.fsm.storage.base import BaseStorage
from aiogram.fsm.storage.memory import MemoryStorage

from bot.storage import SQLStorage

log = logging.getLogger(__name__)

PERSON_KEY = "person_id"  # the id of the other person a form is about
PERSON_GONE = "person_forgotten"  # set in place of PERSON_KEY once that person was forgotten


def holds(data: dict[str, Any] | None, user_id: int) -> bool:
    return bool(data) and data.get(PERSON_KEY) == user_id


def scrubbed(data: dict[str, Any]) -> dict[str, Any]:
    """The form's data without the person."""
    rest = {k: v for k, v in data.items() if k != PERSON_KEY}
    rest[PERSON_GONE] = True
    return rest


async def _redis(storage: Any, user_id: int) -> int:
    redis = storage.redis
    builder = storage.key_builder
    separator = getattr(builder, "separator", ":")
    prefix = getattr(builder, "prefix", "fsm")
    suffix = f"{separator}data"
    count = 0
    async for raw in redis.scan_iter(match=f"{prefix}{separator}*{suffix}", count=500):
        key = raw.decode() if isinstance(raw, bytes) else raw
        value = await redis.get(key)
        if value is None:
            continue
        try:
            data = storage.json_loads(value)
        except ValueError:
            continue
        if isinstance(data, dict) and holds(data, user_id):
            await redis.set(key, storage.json_dumps(scrubbed(data)), keepttl=True)
            count += 1
    return count


def _memory(storage: MemoryStorage, user_id: int) -> int:
    count = 0
    for record in storage.storage.values():
        if holds(record.data, user_id):
            record.data = scrubbed(record.data)
            count += 1
    return count


async def forget_person(storage: BaseStorage, user_id: int) -> int:
    """Remove the person from every unfinished form that holds them; returns how many."""
    if isinstance(storage, SQLStorage):
        count = await storage.rewrite_data(
            lambda data: scrubbed(data) if holds(data, user_id) else None,
            contains=f'"{PERSON_KEY}"',
        )
    elif isinstance(storage, MemoryStorage):
        count = _memory(storage, user_id)
    elif hasattr(storage, "redis") and hasattr(storage, "key_builder"):
        count = await _redis(storage, user_id)
    else:  # pragma: no cover - Tuan uses one of the above
        raise TypeError(f"cannot forget a person in {type(storage).__name__}")
    if count:
        log.info("user %s removed from %s unfinished forms", user_id, count)
    return count
