"""services.locales.recipient_language: the one rule for the language of a private notice."""

from __future__ import annotations

from types import SimpleNamespace

from services.locales import recipient_language


def person(language: str | None = None, code: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(language=language, language_code=code)


def group(language: str) -> SimpleNamespace:
    return SimpleNamespace(language=language)


def test_the_person_s_choice_comes_first() -> None:
    assert recipient_language(person("zh_Hans", "en-US"), group("en"), "en") == "zh_Hans"


def test_then_their_telegram_language() -> None:
    assert recipient_language(person(None, "zh-hans"), group("en"), "en") == "zh_Hans"
    assert recipient_language(person(None, "en-GB"), group("zh_Hans"), "zh_Hans") == "en"


def test_then_the_group_the_notice_is_about() -> None:
    assert recipient_language(person(None, "de"), group("zh_Hans"), "en") == "zh_Hans"
    assert recipient_language(person(None, "zh-hant"), group("zh_Hans"), "en") == "zh_Hans"


def test_then_the_default() -> None:
    assert recipient_language(person(None, None), None, "zh_Hans") == "zh_Hans"
    assert recipient_language(None, None, "en") == "en"
    assert recipient_language(None, group("zh_Hans"), "en") == "zh_Hans"


def test_unknown_stored_languages_are_skipped() -> None:
    assert recipient_language(person("fr", None), group("xx"), "en") == "en"
