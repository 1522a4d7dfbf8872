"""The one place where SQL differs by dialect: INSERT … ON CONFLICT."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import and_, case, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def insert_for(session: AsyncSession, table):
    """The dialect's INSERT (with `on_conflict_do_…`) of `table` (a Table or a mapped class)."""
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
        insert_for(session, table)
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
    ins = insert_for(session, table).values(**values)
    cols = list(update)
    if cols:
        stmt = ins.on_conflict_do_update(
            index_elements=list(conflict), set_={c: ins.excluded[c] for c in cols}
        )
    else:
        stmt = ins.on_conflict_do_nothing(index_elements=list(conflict))
    await session.execute(stmt)


async def merge_rows(
    session: AsyncSession,
    table,
    rows: list[Mapping[str, Any]],
    conflict: Iterable[str],
    *,
    add: Iterable[str] = (),
    latest: Iterable[str] = (),
    replace: Iterable[str] = (),
    chunk: int = 500,
) -> None:
    """Insert many rows; where a row with the same `conflict` key exists, add the `add`
    columns to it (increments: two writers never overwrite each other), keep the later of
    the `latest` columns (NULL never wins) and overwrite the `replace` columns, but only
    when one of them differs (an unchanged row is not rewritten). Rows are written in the
    order given: callers sort them so concurrent writers lock rows in the same order."""
    add, latest, replace = list(add), list(latest), list(replace)
    for start in range(0, len(rows), chunk):
        ins = insert_for(session, table).values(list(rows[start : start + chunk]))
        new = ins.excluded
        set_: dict[str, Any] = {c: table.c[c] + new[c] for c in add}
        for c in latest:
            set_[c] = case(
                (
                    and_(new[c].is_not(None), or_(table.c[c].is_(None), table.c[c] < new[c])),
                    new[c],
                ),
                else_=table.c[c],
            )
        for c in replace:
            set_[c] = new[c]
        where = None
        if replace and not add and not latest:
            where = or_(*(table.c[c].is_distinct_from(new[c]) for c in replace))
        if set_:
            stmt = ins.on_conflict_do_update(index_elements=list(conflict), set_=set_, where=where)
        else:
            stmt = ins.on_conflict_do_nothing(index_elements=list(conflict))
        await session.execute(stmt)
