"""Pieces every view uses."""

from __future__ import annotations

from aiogram.utils.i18n import get_i18n


def current_language() -> str:
    """The language of the update (or notice) being written now, for Babel formatting of
    money, numbers and dates ("en" outside any i18n context). Whom a private notice is written
    for is services.locales.recipient_language's to decide."""
    try:
        return get_i18n().current_locale
    except LookupError:  # pragma: no cover - outside an update
        return "en"
