"""Who is calling: the page's `initData`, checked as Telegram documents it.

The page sends `Authorization: tma <initData>`. aiogram's `safe_parse_webapp_init_data`
checks its hash (HMAC-SHA256 with the key HMAC("WebAppData", bot token)); we check its
`auth_date` is no older than WEBAPP_AUTH_SECONDS (and not in the future beyond a minute of
clock skew). The person is the initData's `user`, never a field of the request body.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from aiogram.utils.web_app import WebAppInitData, WebAppUser, safe_parse_webapp_init_data

SCHEME = "tma "
MAX_INIT_DATA = 4096  # Telegram's initData is a few hundred bytes
SKEW = timedelta(minutes=1)


@dataclass(frozen=True)
class Caller:
    user: WebAppUser
    start_param: str | None
    auth_date: datetime


def init_data_of(header: str | None) -> str | None:
    if not header or not header.startswith(SCHEME):
        return None
    raw = header[len(SCHEME) :].strip()
    return raw if 0 < len(raw) <= MAX_INIT_DATA else None


def authenticate(token: str, header: str | None, now: datetime, max_age: int) -> Caller | None:
    """The caller of a request, or None: no initData, a forged one, or one too old."""
    raw = init_data_of(header)
    if raw is None:
        return None
    try:
        data: WebAppInitData = safe_parse_webapp_init_data(token, raw)
    except (ValueError, TypeError, KeyError):
        return None
    if data.user is None or data.user.is_bot:
        return None
    auth_date = data.auth_date
    if auth_date.tzinfo is None:  # pragma: no cover - aiogram gives an aware time
        return None
    if now - auth_date > timedelta(seconds=max_age) or auth_date - now > SKEW:
        return None
    return Caller(data.user, data.start_param, auth_date)
