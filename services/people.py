"""Users: who the bot has seen, their language choice."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from models import User
from models.upsert import insert_for
from services import outbox
from services.errors import InvalidLanguage
from services.locales import SUPPORTED_LANGUAGES
from services.parsing import clean_text
from services.timezones import utcnow


@dataclass(frozen=True, slots=True)
class Person:
    """The Telegram-free description of a user, as the bot layer passes it in."""

    id: int
    first_name: str
    last_name: str | None = None
    username: str | None = None
    is_bot: bool = False
    language_code: str | None = None

    def __post_init__(self) -> None:  # names are stored and shown: cleaned like any text
        object.__setattr__(self, "first_name", clean_text(self.first_name, multiline=False))
        if self.last_name is not None:
            object.__setattr__(self, "last_name", clean_text(self.last_name, multiline=False))


async def remember(session: AsyncSession, person: Person) -> User:
    """Insert or refresh a user's public profile and return the row (one statement: the
    upsert returns it)."""
    ins = insert_for(session, User).values(
        id=person.id,
        first_name=person.first_name[:256],
        last_name=(person.last_name or None) and person.last_name[:256],
        username=person.username,
        is_bot=person.is_bot,
        language_code=person.language_code,
        started=False,
        updated_at=utcnow(),
    )
    cols = ("first_name", "last_name", "username", "language_code", "updated_at")
    stmt = (
        ins.on_conflict_do_update(index_elements=["id"], set_={c: ins.excluded[c] for c in cols})
        .returning(User)
        .execution_options(populate_existing=True)
    )
    user = (await session.scalars(stmt)).one()
    return user


async def mark_started(session: AsyncSession, user_id: int) -> outbox.Resumed:
    """The person started the bot (/start, a deep link): what waited for them (parked
    outbox rows) goes out now, after this transaction commits."""
    return await set_started(session, user_id, True)


async def set_started(session: AsyncSession, user_id: int, started: bool) -> outbox.Resumed:
    """Whether the bot may write to the person (False: they blocked it). Coming back
    releases their parked outbox rows, in this transaction."""
    await session.execute(update(User).where(User.id == user_id).values(started=started))
    if not started:
        return outbox.Resumed(0, 0)
    return await outbox.resume(session, user_id, utcnow())


async def set_language(session: AsyncSession, user_id: int, language: str) -> None:
    if language not in SUPPORTED_LANGUAGES:
        raise InvalidLanguage(language)
    await session.execute(
        update(User).where(User.id == user_id).values(language=language, updated_at=utcnow())
    )


async def chosen_language(session: AsyncSession, user_id: int) -> str | None:
    return await session.scalar(select(User.language).where(User.id == user_id))


async def reachable(session: AsyncSession, ids: set[int] | list[int]) -> list[User]:
    """The people among `ids` a private message can reach: they started the bot, not bots."""
    rows = await session.scalars(
        select(User).where(User.id.in_(ids), User.started.is_(True), User.is_bot.is_(False))
    )
    return list(rows)


async def get(session: AsyncSession, user_id: int) -> User | None:
    return await session.get(User, user_id)
