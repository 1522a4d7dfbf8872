"""The one place where SQL differs by dialect: INSERT … ON CONFLICT."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def _insert_for(session: AsyncSession, table):
    name = session.bind.dialect.name if session.bind is not None else "sqlite"
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upsert is not implemented for dialect {name}")


async def insert_ignore(
    session: AsyncSession, table, values: Mapping[str, Any], conflict: Iterable[str]
) -> bool:
    """Insert a row unless one with the same `conflict` key exists. True when inserted."""
    stmt = (
        _insert_for(session, table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(conflict))
    )
    result = await session.execute(stmt)
    return (result.rowcount or 0) > 0


async def upsert(
    session: AsyncSession,
    table,
    values: Mapping[str, Any],
    conflict: Iterable[str],
    update: Iterable[str],
) -> None:
    """Insert a row, or update the listed columns of the row with the same `conflict` key."""
    ins = _insert_for(session, table).values(**values)
    cols = list(update)
    if cols:
        stmt = ins.on_conflict_do_update(
            index_elements=list(conflict), set_={c: ins.excluded[c] for c in cols}
        )
    else:
        stmt = ins.on_conflict_do_nothing(index_elements=list(conflict))
    await session.execute(stmt)
