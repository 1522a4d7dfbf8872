"""Parsers for what owners and members type: prices, tiers, quantities, local times.

Each returns a value or raises `ParseError` with a reason code that handlers turn into a
localized message with an example. They never guess silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from services.errors import DomainError
from services.money import is_known_currency, minor_digits

MAX_QUANTITY = 10_000
MAX_PRICE_MAJOR = 10_000_000
MAX_TITLE = 100
MAX_INT = 2**31 - 1  # what a 32-bit Integer column holds: ids, counts


class ParseError(DomainError):
    """`reason` is a stable code (e.g. "price_decimals"); `detail` carries numbers for the text."""

    def __init__(self, reason: str, **detail: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


# ---------------------------------------------------------------- text and numbers from outside

# What never belongs in a stored text: C0 controls (tab and line breaks are handled apart),
# DEL and the C1 controls, bidi embeddings, overrides and isolates (they reorder the bot's
# own text around them), lone surrogates and the Unicode noncharacters. PostgreSQL refuses
# NUL in text, and Telegram refuses invalid UTF-16.
_NONCHARACTERS = "".join(
    f"{chr(p * 0x10000 + 0xFFFE)}{chr(p * 0x10000 + 0xFFFF)}" for p in range(17)
)
_UNSAFE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
    "\ud800-\udfff\ufdd0-\ufdef" + _NONCHARACTERS + "]"
)
_LINE_BREAKS = re.compile("\r\n?|[\u2028\u2029\x85]")


def clean_text(text: str | None, *, multiline: bool = True) -> str:
    """A person's text as it may be stored and shown: control characters, bidi controls,
    lone surrogates and noncharacters removed; line breaks normalised to "\\n" (multiline) or
    made spaces, like tabs (a single line); stripped. Idempotent, never longer than `text`.
    Every text input goes through here before it is checked and stored."""
    raw = _LINE_BREAKS.sub("\n", text or "")
    if not multiline:
        raw = raw.replace("\n", " ").replace("\t", " ")
    return _UNSAFE.sub("", raw).strip()


def check_note(text: str | None, maximum: int) -> str:
    """A typed free text (a description, a pickup note): cleaned, not empty (ParseError
    not_text: nothing readable was sent), at most `maximum` characters."""
    cleaned = clean_text(text)
    if not cleaned:
        raise ParseError("not_text")
    if len(cleaned) > maximum:
        raise ParseError("text_too_long", max=maximum, length=len(cleaned))
    return cleaned


_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_ASCII_NUMBER = re.compile(r"[0-9]{1,12}")


def parse_int(text: str | None, *, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """A whole number typed or carried from outside (a command argument, a deep link, a
    button): ASCII digits (full-width ones, as Chinese keyboards type them, count as
    well), from `minimum` to `maximum`. Anything else, superscripts, circled digits and
    other scripts' digits included, raises ParseError ("number_format" or "number_range"),
    never ValueError."""
    raw = (text or "").strip().translate(_FULLWIDTH_DIGITS)
    if not _ASCII_NUMBER.fullmatch(raw):
        raise ParseError("number_format")
    value = int(raw)
    if not minimum <= value <= maximum:
        raise ParseError("number_range", min=minimum, max=maximum)
    return value


def parse_id(text: str | None) -> int | None:
    """An id from outside (1 … 2³¹−1), or None when it is none."""
    try:
        return parse_int(text, minimum=1)
    except ParseError:
        return None


SYMBOLS = {"¥": "CNY", "￥": "CNY", "元": "CNY", "块": "CNY", "$": "USD", "€": "EUR", "£": "GBP"}
DOLLARS = {"USD", "HKD", "SGD", "AUD", "CAD", "NZD", "TWD"}


@dataclass(frozen=True, slots=True)
class Price:
    amount: int  # minor units
    currency: str


def _number(text: str) -> Decimal:
    s = text.replace(" ", "").replace("\u00a0", "")
    if not s or not re.fullmatch(r"[+-]?[0-9.,]+", s):
        raise ParseError("price_format")
    if "," in s and "." in s:
        decimal_sep = "," if s.rfind(",") > s.rfind(".") else "."
        group_sep = "." if decimal_sep == "," else ","
        s = s.replace(group_sep, "").replace(decimal_sep, ".")
    elif "," in s:
        head, _, tail = s.rpartition(",")
        if s.count(",") > 1 or (len(tail) == 3 and head.lstrip("+-").isdigit() and len(head) <= 3):
            s = s.replace(",", "")  # 1,234 or 1,234,567: digit grouping
        else:
            s = s.replace(",", ".")  # 12,50: decimal comma
    if s.count(".") > 1:
        raise ParseError("price_format")
    try:
        return Decimal(s)
    except InvalidOperation as exc:
        raise ParseError("price_format") from exc


def symbol_of(currency: str) -> str | None:
    """The symbol `parse_price` reads as `currency` in a group that uses it (None: only the
    code): ¥ for CNY and JPY, $ for the dollars, € and £."""
    if currency in DOLLARS:
        return "$"
    return {"CNY": "¥", "JPY": "¥", "EUR": "€", "GBP": "£"}.get(currency)


def parse_price(text: str, default_currency: str) -> Price:
    """'12.5', '12,50', '¥12.5', '12.50 CNY', 'USD 3' → Price in minor units (in the currency
    named, else `default_currency`). Every ParseError names the currency the text was read in
    (`detail["currency"]`), for the example of the answer."""
    try:
        return _parse_price(text, default_currency)
    except ParseError as err:
        err.detail.setdefault("currency", default_currency)
        raise


def parse_price_in(text: str, currency: str) -> Price:
    """A price in `currency` only (a deal's price in its group's currency): a price that
    names another currency is refused ("price_other_currency", with both), never converted
    or taken as it is."""
    try:
        return _parse_price(text, currency, only=True)
    except ParseError as err:
        err.detail.setdefault("currency", currency)
        raise


def _parse_price(text: str, default_currency: str, *, only: bool = False) -> Price:
    raw = (text or "").strip()
    if not raw or len(raw) > 40:
        raise ParseError("price_format")
    currency = None
    code = re.search(r"[A-Za-z]{3}", raw)
    if code:
        candidate = code.group(0).upper()
        rest = (raw[: code.start()] + raw[code.end() :]).strip()
        if not is_known_currency(candidate):
            if not re.search(r"[0-9]", rest):
                raise ParseError("price_format")  # a word ("abc"), not a number with a code
            raise ParseError("price_currency", value=code.group(0))
        currency = candidate
        raw = rest
    for symbol, sym_currency in SYMBOLS.items():
        if symbol in raw:
            raw = raw.replace(symbol, "").strip()
            if currency is None:
                if sym_currency == "CNY" and default_currency == "JPY":
                    currency = "JPY"
                elif sym_currency == "USD" and default_currency in DOLLARS:
                    currency = default_currency
                else:
                    currency = sym_currency
    currency = currency or default_currency
    if only and currency != default_currency:
        raise ParseError("price_other_currency", currency=default_currency, given=currency)
    value = _number(raw)
    if value <= 0:
        raise ParseError("price_positive")
    if value > MAX_PRICE_MAJOR:
        raise ParseError("price_too_large", max=MAX_PRICE_MAJOR)
    digits = minor_digits(currency)
    scaled = value * (10**digits)
    if scaled != scaled.to_integral_value():
        raise ParseError("price_decimals", digits=digits, currency=currency)
    return Price(int(scaled), currency)


def parse_tiers(text: str, currency: str, unit_price: int) -> list[tuple[int, int]]:
    """'10:11.00, 20:9.90' → [(10, 1100), (20, 990)]: from 10 units the price is 11.00.

    Thresholds must rise and prices must fall, each below the unit price. Every ParseError
    names `currency` (`detail["currency"]`), for the example of the answer.
    """
    try:
        return _parse_tiers(text, currency, unit_price)
    except ParseError as err:
        err.detail.setdefault("currency", currency)
        raise


def _parse_tiers(text: str, currency: str, unit_price: int) -> list[tuple[int, int]]:
    raw = (text or "").strip()
    if not raw:
        raise ParseError("tiers_format")
    tiers: list[tuple[int, int]] = []
    for part in re.split(r"[;,，；\n]+(?=\s*\d+\s*[:：=])", raw):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*[:：=]\s*(.+)", part)
        if not m:
            raise ParseError("tiers_format")
        threshold = int(m.group(1))
        if threshold < 2 or threshold > MAX_QUANTITY:
            raise ParseError("tiers_threshold", max=MAX_QUANTITY)
        tiers.append((threshold, parse_price_in(m.group(2), currency).amount))
    if not tiers:
        raise ParseError("tiers_format")
    return check_tiers(tiers, unit_price)


def check_tiers(tiers: list[tuple[int, int]], unit_price: int) -> list[tuple[int, int]]:
    """Thresholds rise and prices fall, each below the unit price (or ParseError)."""
    last_threshold, last_price = 0, unit_price
    for threshold, price in tiers:
        if threshold <= last_threshold:
            raise ParseError("tiers_order")
        if price >= last_price:
            raise ParseError("tiers_falling")
        last_threshold, last_price = threshold, price
    return tiers


def parse_quantity(text: str, *, maximum: int = MAX_QUANTITY) -> int:
    raw = (text or "").strip().lstrip("×xX*").translate(_FULLWIDTH_DIGITS)
    if not re.fullmatch(r"[+-]?[0-9]{1,9}", raw):
        raise ParseError("quantity_format")
    value = int(raw)
    if value <= 0:
        raise ParseError("quantity_positive")
    if value > maximum:
        raise ParseError("quantity_too_large", max=maximum)
    return value


def parse_title(text: str) -> str:
    title = " ".join(clean_text(text, multiline=False).split())
    if not title:
        raise ParseError("title_empty")
    if len(title) > MAX_TITLE:
        raise ParseError("title_too_long", max=MAX_TITLE, length=len(title))
    return title


# ---------------------------------------------------------------- times

_RELATIVE = re.compile(r"^\+\s*(\d{1,4})\s*(m|min|h|d|分钟|小时|天)$", re.IGNORECASE)
_UNIT_MINUTES = {"m": 1, "min": 1, "分钟": 1, "h": 60, "小时": 60, "d": 1440, "天": 1440}
_DAY_WORDS = {
    "today": 0, "今天": 0, "今日": 0,
    "tomorrow": 1, "明天": 1, "明日": 1,
    "后天": 2, "day after tomorrow": 2,
}  # fmt: skip


def _clock(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d{1,2})(?:[:：.](\d{2}))?\s*(点|時|时)?", text.strip())
    if not m:
        raise ParseError("time_format")
    hour, minute = int(m.group(1)), int(m.group(2) or 0)
    if hour > 23 or minute > 59:
        raise ParseError("time_invalid")
    return hour, minute


def local_to_utc(naive: datetime, timezone: str) -> datetime:
    """A wall-clock time in `timezone` → UTC. Times skipped by a DST change are refused;
    repeated times take the first occurrence."""
    zone = ZoneInfo(timezone)
    aware = naive.replace(tzinfo=zone, fold=0)
    back = aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if back != naive:
        raise ParseError("time_nonexistent")
    return aware.astimezone(UTC)


def parse_local_datetime(text: str, timezone: str, now: datetime) -> datetime:
    """'2026-12-01 20:00', 'tomorrow 20:00', '明天 20:00', '20:00', '+2h' → aware UTC, to the
    minute (a relative time is rounded up to the next whole minute)."""
    raw = " ".join((text or "").strip().lower().split())
    if not raw or len(raw) > 40:
        raise ParseError("time_format")
    m = _RELATIVE.match(raw)
    if m:
        n, unit = int(m.group(1)), m.group(2).lower()
        delta = timedelta(minutes=n * _UNIT_MINUTES[unit])
        if delta <= timedelta(0):
            raise ParseError("time_past")
        # Rounded UP to a whole minute: times are kept to the minute, and "+1m" leaves at
        # least a minute (never only the seconds left of the current one).
        moment = now.astimezone(UTC) + delta
        if moment.second or moment.microsecond:
            moment = moment.replace(second=0, microsecond=0) + timedelta(minutes=1)
        return moment
    local_now = now.astimezone(ZoneInfo(timezone))
    for word, days in sorted(_DAY_WORDS.items(), key=lambda kv: -len(kv[0])):
        if raw.startswith(word):
            rest = raw[len(word) :].strip() or "20:00"
            hour, minute = _clock(rest)
            day = (local_now + timedelta(days=days)).date()
            return local_to_utc(datetime(day.year, day.month, day.day, hour, minute), timezone)
    m = re.fullmatch(r"(?:(\d{4})[-/.年])?(\d{1,2})[-/.月](\d{1,2})日?\s*(.*)", raw)
    if m:
        year = int(m.group(1)) if m.group(1) else local_now.year
        month, day = int(m.group(2)), int(m.group(3))
        hour, minute = _clock(m.group(4)) if m.group(4) else (20, 0)
        try:
            naive = datetime(year, month, day, hour, minute)
        except ValueError as exc:
            raise ParseError("date_invalid") from exc
        if not m.group(1) and naive < local_now.replace(tzinfo=None):
            naive = naive.replace(year=year + 1)
        return local_to_utc(naive, timezone)
    hour, minute = _clock(raw)
    candidate = local_now.replace(hour=hour, minute=minute, second=0, microsecond=0, tzinfo=None)
    if candidate <= local_now.replace(tzinfo=None):
        candidate += timedelta(days=1)
    return local_to_utc(candidate, timezone)


# ---------------------------------------------------------------- reminders before closing

DEFAULT_REMINDERS = (120, 15)  # minutes before closing, when a deal says nothing (NULL)
REMINDER_MIN_MINUTES = 5
REMINDER_MAX_MINUTES = 7 * 24 * 60
MAX_REMINDERS = 3
_OFF_WORDS = {"off", "none", "no", "关", "无", "关闭", "不要", "不提醒"}
_DEFAULT_WORDS = {"default", "默认"}
_DURATION = re.compile(
    r"(?:(\d{1,3})(?:d|天))?(?:(\d{1,4})(?:h|小时|時|时))?(?:(\d{1,5})(?:m|min|分钟|分))?"
)


def _reminder_minutes(token: str) -> int:
    m = _DURATION.fullmatch(token)
    if not token or not m or not any(m.groups()):
        raise ParseError("reminders_format", value=token[:20])
    days, hours, minutes = (int(g or 0) for g in m.groups())
    return days * 1440 + hours * 60 + minutes


def parse_reminders(text: str) -> str | None:
    """'2h, 15m', '90m', '1h30m', '2小时 15分钟', '1d' → '120,15' (minutes, descending, the
    form stored in Deal.reminders); 'off' / 'none' / '关' / '无' → '' (no reminders);
    'default' → None (the default, 2 h and 15 min). Each between 5 minutes and 7 days, at
    most 3, all different."""
    raw = " ".join((text or "").strip().lower().split())
    if raw in _OFF_WORDS:
        return ""
    if raw in _DEFAULT_WORDS:
        return None
    if not raw or len(raw) > 60:
        raise ParseError("reminders_format", value=raw[:20])
    tokens = [t for t in re.split(r"[\s,，;；、/]+", raw) if t]
    # "1 h 30 m" / "2 小时": a number followed by its unit as a separate word
    merged: list[str] = []
    for token in tokens:
        if merged and not token[0].isdigit() and merged[-1][-1].isdigit():
            merged[-1] += token
        else:
            merged.append(token)
    return reminders_from_minutes([_reminder_minutes(t) for t in merged])


def reminders_from_minutes(values: list[int]) -> str:
    """Minutes before closing → the stored form ('120,15'), checked: each between 5 minutes
    and 7 days, at most 3, all different."""
    if len(values) > MAX_REMINDERS:
        raise ParseError("reminders_too_many", max=MAX_REMINDERS)
    for value in values:
        if not REMINDER_MIN_MINUTES <= value <= REMINDER_MAX_MINUTES:
            raise ParseError(
                "reminders_range", min=REMINDER_MIN_MINUTES, max_days=REMINDER_MAX_MINUTES // 1440
            )
    if len(set(values)) != len(values):
        raise ParseError("reminders_duplicate")
    return ",".join(str(v) for v in sorted(values, reverse=True))


def check_stored_reminders(stored: str | None) -> str | None:
    """A stored value (None, '', '120,15') checked and normalised, or ParseError."""
    if stored is None or not stored.strip():
        return stored if stored is None else ""
    try:
        values = [int(v) for v in stored.split(",")]
    except ValueError as exc:
        raise ParseError("reminders_format", value=stored[:20]) from exc
    return reminders_from_minutes(values)


def reminder_list(stored: str | None) -> list[int]:
    """Deal.reminders → minutes before closing, descending (NULL: the default; '': none).
    Anything unreadable in the column counts as the default rather than as nothing."""
    if stored is None:
        return list(DEFAULT_REMINDERS)
    if not stored.strip():
        return []
    try:
        values = sorted({int(v) for v in stored.split(",") if v.strip()}, reverse=True)
    except ValueError:
        return list(DEFAULT_REMINDERS)
    return [v for v in values if v > 0]


def tg_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units); tags count too, to be safe."""
    return len(text.encode("utf-16-le")) // 2
