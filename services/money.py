"""Money: integer minor units with an ISO 4217 code, formatted with Babel."""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache

from babel.numbers import format_currency, get_currency_precision, list_currencies

from services.errors import InvalidCurrency
from services.locales import BABEL_LOCALES


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    return frozenset(list_currencies())


def is_known_currency(code: str) -> bool:
    return bool(re.fullmatch(r"[A-Z]{3}", code)) and code in _known()


def parse_currency(value: str) -> str:
    code = value.strip().upper()
    if not is_known_currency(code):
        raise InvalidCurrency(value.strip())
    return code


STARS = "XTR"  # Telegram Stars: whole stars, no ISO 4217 entry (digital items only)


def minor_digits(currency: str) -> int:
    """Decimal places of a currency (CNY 2, JPY 0, KWD 3, Stars 0)."""
    if currency == STARS:
        return 0
    return get_currency_precision(currency)


def format_money(amount_minor: int, currency: str, language: str) -> str:
    if currency == STARS:
        return f"⭐ {amount_minor}"
    value = Decimal(amount_minor).scaleb(-minor_digits(currency))  # exact, never a float
    return format_currency(value, currency, locale=BABEL_LOCALES.get(language, "en"))
