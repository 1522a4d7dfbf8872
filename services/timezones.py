"""IANA timezones: validation and conversion between UTC and a group's local time."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from services.errors import InvalidTimezone


def parse_timezone(value: str) -> str:
    """Return the canonical IANA name for what an owner typed, or raise InvalidTimezone.

    Matching is case-insensitive ('asia/shanghai' works); only names in the IANA database
    are accepted, so a typo never silently becomes UTC.
    """
    raw = value.strip()
    if not raw or len(raw) > 64:
        raise InvalidTimezone(raw)
    names = _names()
    name = names.get(raw.lower())
    if name is None:
        raise InvalidTimezone(raw)
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:  # pragma: no cover - listed but not loadable
        raise InvalidTimezone(raw) from exc
    return name


_NAMES: dict[str, str] | None = None


def _names() -> dict[str, str]:
    global _NAMES
    if _NAMES is None:
        # "localtime" is a link some systems add to the zoneinfo directory: the host's own
        # zone, which differs between machines; it is not an IANA name.
        _NAMES = {n.lower(): n for n in available_timezones() if n != "localtime"}
    return _NAMES


def utcnow() -> datetime:
    return datetime.now(UTC)


class Clock:
    """The time handlers read: the Dispatcher passes one to them as `clock` (tests pass a
    settable one). Aware, in UTC."""

    def now(self) -> datetime:
        return utcnow()


def to_local(moment: datetime, timezone: str) -> datetime:
    if moment.tzinfo is None:  # SQLite returns naive datetimes; they are stored as UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(ZoneInfo(timezone))
