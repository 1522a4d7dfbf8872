"""The format helpers every view uses, in one place: user text made safe for HTML and cut to
Telegram's limits, money, local times and durations, in the current gettext locale."""

from __future__ import annotations

from datetime import datetime
from html import escape

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext
from babel.dates import format_skeleton

from services.locales import BABEL_LOCALES
from services.money import format_money
from services.parsing import clean_text, tg_len
from services.timezones import to_local

TEXT_LIMIT = 4096  # a message
CAPTION_LIMIT = 1024  # a photo's caption
ALERT_LIMIT = 200  # answerCallbackQuery text
ECHO_LIMIT = 64  # what a person typed, quoted back in an answer
WALL_CLOCK = "%Y-%m-%d %H:%M"

__all__ = [
    "ALERT_LIMIT",
    "CAPTION_LIMIT",
    "TEXT_LIMIT",
    "cut",
    "echo",
    "duration",
    "money",
    "post_time",
    "quote",
    "reminder_distance",
    "tg_len",
    "time_left",
    "wall_clock",
]


def quote(text: str | None) -> str:
    """User text, made safe for HTML parse mode."""
    return escape(text or "", quote=False)


def echo(text: str | None, limit: int = ECHO_LIMIT) -> str:
    """What a person typed, quoted back in an answer ("“…” is not a time"): one line, cut
    to `limit` characters BEFORE it is escaped (no entity is split), safe for HTML. However
    long the input, the answer stays within Telegram's limits."""
    return quote(cut(clean_text(text, multiline=False), limit))


def cut(text: str, limit: int) -> str:
    """At most `limit` characters, the last one "…" when it was longer."""
    text = text.strip()
    if len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def money(amount: int, currency: str, language: str) -> str:
    """'CN¥12.50' / '¥12.50' for the reader's language."""
    return format_money(amount, currency, language)


def post_time(moment: datetime, timezone: str, language: str) -> str:
    """'Tue, Dec 1 20:00' / '12月1日周二 20:00' in the group's timezone (what posts show)."""
    local = to_local(moment, timezone)
    day = format_skeleton("MMMEd", local, locale=BABEL_LOCALES.get(language, "en"))
    return f"{day} {local:%H:%M}"


def wall_clock(moment: datetime | None, timezone: str, *, with_zone: bool = False) -> str:
    """'2026-12-01 20:00' (with_zone: '… (Asia/Shanghai)') as the group's wall clock; '—'
    for no moment (what owners' lists and forms show)."""
    if moment is None:
        return "—"
    text = to_local(moment, timezone).strftime(WALL_CLOCK)
    return f"{text} ({timezone})" if with_zone else text


def duration(seconds: float) -> str:
    """Time until a closing: '1 d 2 h', '2 h 5 min', '42 min' (at least a minute)."""
    minutes = max(int(seconds // 60), 1)
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return _("{days} d {hours} h").format(days=days, hours=hours)
    if hours:
        return _("{hours} h {minutes} min").format(hours=hours, minutes=mins)
    return _("{minutes} min").format(minutes=mins)


def time_left(seconds: float) -> str:
    """A reminder's '2 hours left', '1 h 30 min left', '15 minutes left'."""
    minutes = max(round(seconds / 60), 1)
    hours, mins = divmod(minutes, 60)
    if hours and not mins:
        return ngettext("{n} hour left", "{n} hours left", hours).format(n=hours)
    if hours:
        return _("{hours} h {minutes} min left").format(hours=hours, minutes=mins)
    return ngettext("{n} minute left", "{n} minutes left", mins).format(n=mins)


def reminder_distance(minutes: int) -> str:
    """A reminder's distance before closing: '2 h', '1 h 30 min', '15 min', '1 d 2 h'."""
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = []
    if days:
        parts.append(_("{n} d").format(n=days))
    if hours:
        parts.append(_("{n} h").format(n=hours))
    if mins:
        parts.append(_("{n} min").format(n=mins))
    return " ".join(parts)
