"""Languages Tuan speaks and how Telegram's language codes map onto them."""

from __future__ import annotations

from services.errors import InvalidLanguage

# Catalog names under locales/. Simplified Chinese is "zh_Hans".
SUPPORTED_LANGUAGES: tuple[str, ...] = ("en", "zh_Hans")
LANGUAGE_NAMES = {"en": "English", "zh_Hans": "简体中文"}
# Babel locale used to format numbers, money and dates for each catalog.
BABEL_LOCALES = {"en": "en", "zh_Hans": "zh_Hans_CN"}
# Telegram's setMyCommands takes ISO 639-1 codes.
TELEGRAM_CODES = {"en": "en", "zh_Hans": "zh"}


def from_telegram(code: str | None) -> str | None:
    """Map a Telegram `language_code` (IETF tag such as 'en-US', 'zh-hans', 'zh') to a catalog.

    Traditional Chinese ('zh-hant', 'zh-tw', 'zh-hk') is not mapped: we have no catalog for it,
    and Simplified would be a guess; such users get the group's or the default language.
    """
    if not code:
        return None
    tag = code.strip().lower().replace("_", "-")
    if tag == "zh" or tag.startswith(("zh-hans", "zh-cn", "zh-sg")):
        return "zh_Hans"
    if tag.split("-")[0] == "en":
        return "en"
    return None


def parse_language(value: str) -> str:
    """Accept what an owner might type for a language: 'en', 'English', 'zh', '中文', 'zh-CN'."""
    raw = value.strip()
    lowered = raw.lower()
    aliases = {
        "en": "en",
        "english": "en",
        "英文": "en",
        "英语": "en",
        "zh": "zh_Hans",
        "zh_hans": "zh_Hans",
        "zh-hans": "zh_Hans",
        "zh-cn": "zh_Hans",
        "zh_cn": "zh_Hans",
        "chinese": "zh_Hans",
        "中文": "zh_Hans",
        "简体中文": "zh_Hans",
        "简体": "zh_Hans",
    }
    if lowered in aliases:
        return aliases[lowered]
    raise InvalidLanguage(raw)


def recipient_language(user, group, default: str) -> str:
    """The language of a message to a person, decided once for every notice: the person's
    own choice (/lang), else their Telegram app's language if we speak it, else the
    language of the group the message is about, else the deployment's default. For a
    message to a group (no person): the group's language, else the default."""
    if user is not None:
        if user.language in SUPPORTED_LANGUAGES:
            return user.language
        if language := from_telegram(user.language_code):
            return language
    if group is not None and group.language in SUPPORTED_LANGUAGES:
        return group.language
    return default
