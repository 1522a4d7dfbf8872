"""aiogram FSM storage in the SQL database, so a half-finished wizard survives a restart.

Writes join the update's transaction when there is one (state and the data it describes
commit together). Tuan keeps conversation state only in private chats; reads for a group
chat answer "no state" without a database round trip, so group chatter stays free.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey
from sqlalchemy import delete, select

from models import Database, FsmState
from models.upsert import upsert
from services.timezones import utcnow


def _state_name(state: StateType) -> str | None:
    if isinstance(state, State):
        return state.state
    return state


class SQLStorage(BaseStorage):
    def __init__(self, db: Database) -> None:
        self.db = db
        self.keys = DefaultKeyBuilder(prefix="fsm", with_bot_id=True, with_destiny=True)

    @staticmethod
    def _private(key: StorageKey) -> bool:
        return key.chat_id == key.user_id and key.thread_id is None

    async def _row(self, key: StorageKey) -> FsmState | None:
        async with self.db.read() as session:
            return await session.scalar(
                select(FsmState).where(FsmState.key == self.keys.build(key))
            )

    async def _write(self, key: StorageKey, **values: Any) -> None:
        name = self.keys.build(key)
        async with self.db.transaction() as session:
            row = await session.get(FsmState, name)
            state = values.get("state", row.state if row else None)
            data = values.get("data", row.data if row else "{}")
            if state is None and data == "{}":
                await session.execute(delete(FsmState).where(FsmState.key == name))
                return
            await upsert(
                session,
                FsmState.__table__,
                {"key": name, "state": state, "data": data, "updated_at": utcnow()},
                conflict=["key"],
                update=["state", "data", "updated_at"],
            )

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        name = _state_name(state)
        if not self._private(key):
            if name is None:
                return
            raise ValueError("Tuan keeps conversation state only in private chats")
        await self._write(key, state=name)

    async def get_state(self, key: StorageKey) -> str | None:
        if not self._private(key):
            return None
        row = await self._row(key)
        return row.state if row else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not self._private(key):
            if not data:
                return
            raise ValueError("Tuan keeps conversation state only in private chats")
        await self._write(key, data=json.dumps(dict(data), ensure_ascii=False, sort_keys=True))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        if not self._private(key):
            return {}
        row = await self._row(key)
        return json.loads(row.data) if row else {}

    async def rewrite_data(
        self,
        change: Callable[[dict[str, Any]], dict[str, Any] | None],
        *,
        contains: str,
    ) -> int:
        """Rewrite the data of every form whose data text contains `contains` and for which
        `change` returns new data (None: leave it). In the update's transaction when there is
        one. Returns how many changed (bot.forms: forgetting a person in others' forms)."""
        count = 0
        async with self.db.transaction() as session:
            rows = await session.scalars(
                select(FsmState).where(FsmState.data.contains(contains, autoescape=True))
            )
            for row in list(rows):
                new = change(json.loads(row.data))
                if new is not None:
                    row.data = json.dumps(new, ensure_ascii=False, sort_keys=True)
                    row.updated_at = utcnow()
                    count += 1
            await session.flush()
        return count

    async def close(self) -> None:
        return None
