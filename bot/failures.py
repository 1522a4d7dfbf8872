"""Why an update failed, decided once: transient (worth another try) or permanent.

Used by the errors router (handlers/errors.py: what to tell the person) and the runner
(bot/runner.py: retry, record, acknowledge). Transient: the connection to the database or
to Telegram was lost or timed out, the pool was exhausted, a lock or serialization conflict
(SQLite "database is locked", PostgreSQL 40001, 40P01, 55P03, class 08, 57P01…), Telegram
network and server errors, flood waits. Everything else is permanent: a data error ("value
out of int range"), an integrity error, a programming error, a bug — it would fail the same
way on every redelivery.

On PostgreSQL asyncpg's errors arrive wrapped in SQLAlchemy's DBAPIError; its `.orig` (the
driver adapter) carries the SQLSTATE (`sqlstate`/`pgcode`, or on its `__cause__`).
"""

from __future__ import annotations

import json

from aiogram.exceptions import TelegramNetworkError, TelegramRetryAfter, TelegramServerError
from aiogram.types import Update
from aiogram.types.update import UpdateTypeLookupError
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    StatementError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLSTATE codes and classes that say "try again": connection exceptions (08), serialization
# failure, deadlock, lock not available, query cancelled (statement or lock timeout), shutdowns
# and "cannot connect now", too many connections.
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03"})
TRANSIENT_SQLSTATE_CLASSES = ("08", "53300")
# SQLite reports contention in the message only.
TRANSIENT_SQLITE = ("database is locked", "database table is locked", "database is busy")
REASON_LIMIT = 200
DETAIL_LIMIT = 200


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE behind a (wrapped) database error, if the driver gave one."""
    orig = getattr(exc, "orig", None)
    for candidate in (orig, getattr(orig, "__cause__", None), exc):
        if candidate is None:
            continue
        code = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(code, str) and code:
            return code
    return None


def is_transient(exc: BaseException) -> bool:
    """True when the same update may well succeed if it is processed again."""
    if isinstance(exc, TelegramNetworkError | TelegramServerError | TelegramRetryAfter):
        return True
    if isinstance(exc, PoolTimeout | DisconnectionError | InterfaceError):
        return True
    if isinstance(exc, StatementError):
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        code = sqlstate(exc)
        if code is not None:
            return code in TRANSIENT_SQLSTATES or code.startswith(TRANSIENT_SQLSTATE_CLASSES)
        orig = exc.orig
        if isinstance(orig, OSError | TimeoutError):  # the connection itself went away
            return True
        message = str(orig).lower()
        return any(text in message for text in TRANSIENT_SQLITE)
    return isinstance(exc, OSError | TimeoutError)  # ConnectionError is an OSError


def reason(exc: BaseException) -> str:
    """The exception's class and the first line of its message, short; for database errors
    the driver's message only (SQLAlchemy's text adds the statement and its parameters,
    which may hold what a person typed)."""
    source = exc.orig if isinstance(exc, StatementError) and exc.orig is not None else exc
    lines = str(source).strip().splitlines()
    first = lines[0] if lines else ""
    text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def facts(update: Update) -> dict[str, object]:
    """What the failure record keeps of an update: its type and ids, never message text
    (the privacy rule). For a button its callback data (made by the bot, at most 64
    bytes), for a command the command word only (its arguments are typed text)."""
    try:
        kind = update.event_type
        event = update.event
    except UpdateTypeLookupError:
        return {"update_type": "unknown", "chat_id": None, "user_id": None, "detail": ""}
    chat = getattr(event, "chat", None)
    message = getattr(event, "message", None)
    if chat is None:
        chat = getattr(message, "chat", None)
    user = getattr(event, "from_user", None)
    detail: dict[str, object] = {}
    data = getattr(event, "data", None)
    if kind == "callback_query" and isinstance(data, str):
        detail["data"] = data
    text = getattr(event, "text", None)
    if isinstance(text, str) and text.startswith("/"):
        detail["command"] = text.split(maxsplit=1)[0][:33]
    message_id = getattr(event, "message_id", None) or getattr(message, "message_id", None)
    if message_id is not None:
        detail["message_id"] = message_id
    return {
        "update_type": kind[:32],
        "chat_id": chat.id if chat is not None else None,
        "user_id": user.id if user is not None else None,
        "detail": _cut(json.dumps(detail, ensure_ascii=False), DETAIL_LIMIT),
    }
