"""One hand-off to aiosqlite's worker thread per SQL statement.

SQLAlchemy's aiosqlite adapter (sqlalchemy.connectors.asyncio.AsyncAdapt_dbapi_cursor) makes
three or four hand-offs to aiosqlite's worker thread for every statement: `connection.cursor()`,
`cursor.execute()`, `cursor.fetchall()` (when the statement returns rows) and `cursor.close()`.
Each one is a thread switch and a GIL hand-over, which costs more than the statement itself.

`OneHopCursor` runs the whole statement in one call on that thread (aiosqlite's
`Connection._execute`): make a `sqlite3` cursor, execute, fetch every row if the statement
returns any, read `description`, `rowcount` and `lastrowid`, close the cursor. The results are
then served from memory, just as the stock cursor serves the rows it buffered. Errors are the
same `sqlite3` exceptions and pass through the adapter's own `_handle_exception`, so SQLAlchemy
maps them exactly as before (IntegrityError, OperationalError "database is locked", ...).
Server-side cursors (`stream()`), COMMIT and ROLLBACK (one hand-off each already) keep the stock
path.

It is installed through `create_async_engine(..., module=OneHopDBAPI(...))`, SQLAlchemy's
supported way to give a dialect another DBAPI module; the dialect and the URL stay
`sqlite+aiosqlite`. It relies on a few non-public names of SQLAlchemy 2.1 and aiosqlite 0.22;
tests/test_sqlite_adapter.py fails loudly if any of them changes.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT

# What a one-hop statement brings back from the worker thread:
# (description, rows, rowcount, lastrowid).
_Outcome = tuple[Any, list, int, Any]


def _run(conn: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """Runs on aiosqlite's worker thread: the whole life of one sqlite3 cursor."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description and not many else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A client-side cursor whose every statement is one hand-off to the worker thread.

    It holds no driver cursor between statements (`_cursor` stays None), so making and
    closing it cost no hand-off either.
    """

    __slots__ = ("_description", "_rowcount", "_lastrowid", "_arraysize")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # Not super().__init__: that makes a driver cursor on the worker thread (a hand-off).
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description = None
        self._rowcount = -1
        self._lastrowid = None
        self._arraysize = 1  # sqlite3's default

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    async def _one_hop(self, operation: Any, parameters: Any, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            conn = self._connection._conn  # raises ValueError("no active connection") if closed
            description, rows, rowcount, lastrowid = await self._connection._execute(
                _run, conn, operation, parameters, many
            )
        self._description = description
        self._rows = collections.deque(rows)
        self._rowcount = rowcount
        self._lastrowid = lastrowid

    async def _execute_async(self, operation: Any, parameters: Any) -> None:
        await self._one_hop(operation, parameters, False)

    async def _executemany_async(self, operation: Any, seq_of_parameters: Any) -> None:
        await self._one_hop(operation, seq_of_parameters, True)

    async def _async_soft_close(self) -> None:
        # The driver cursor is already closed; description and rows stay in memory.
        return None

    def close(self) -> None:
        self._rows.clear()

    def nextset(self) -> None:
        # sqlite3 has no result sets after the first; the stock cursor would fail here too.
        raise NotImplementedError("sqlite3 cursors have no nextset()")

    def setinputsizes(self, *inputsizes: Any) -> None:
        # sqlite3's setinputsizes does nothing; no need to cross to the worker thread.
        return None


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """The aiosqlite adapter connection with `OneHopCursor` for client-side cursors.

    COMMIT and ROLLBACK stay one hand-off each, and none when no transaction is open
    (`sqlite3.Connection.in_transaction` false): sqlite3's commit() and rollback() do nothing
    then either. That is the ROLLBACK the pool issues when a connection whose transaction was
    committed is given back.
    """

    __slots__ = ()
    _cursor_cls = OneHopCursor

    def _nothing_open(self) -> bool:
        conn = self._connection._connection
        if conn is None or not self._connection._running:
            return False  # the stock path raises or skips as it always did
        try:
            return not conn.in_transaction
        except sqlite3.Error:  # closed under us: let the stock path report it
            return False

    def rollback(self) -> None:
        if not self._nothing_open():
            super().rollback()

    def commit(self) -> None:
        if not self._nothing_open():
            super().commit()


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The aiosqlite DBAPI shim of SQLAlchemy, handing out `OneHopConnection`s."""

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        stock = super().connect(*arg, **kw)  # aiosqlite.connect, daemon thread, awaited
        return OneHopConnection(self, stock._connection)


def one_hop_dbapi() -> OneHopDBAPI:
    """The DBAPI module to pass as `module=` to create_async_engine for sqlite+aiosqlite."""
    return OneHopDBAPI(aiosqlite, sqlite3)


__all__ = ["OneHopConnection", "OneHopCursor", "OneHopDBAPI", "one_hop_dbapi"]
