"""Languages: complete catalogs, Telegram language codes, which language an update is
answered in (through the real Dispatcher), and locale-aware money and timezones."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from bot.factory import create_app
from bot.i18n import LOCALES_DIR, make_i18n
from bot.runner import process
from handlers.callbacks import LangCB
from services import groups as group_service
from services import people
from services.errors import InvalidCurrency, InvalidLanguage, InvalidTimezone
from services.groups import Defaults
from services.locales import SUPPORTED_LANGUAGES, from_telegram, parse_language
from services.money import format_money, minor_digits, parse_currency
from services.people import Person
from services.timezones import parse_timezone, to_local
from tests.builders import Updates, group, person, private
from tests.conftest import make_settings
from tests.fake_api import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = ("bot", "handlers", "services", "scheduler")
KEYWORDS = {"_": None, "__": None, "N_": None, "ngettext": (1, 2)}
PLACEHOLDER = re.compile(r"\{[^{}]*\}")
TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>")

ENGLISH_HELP = "this help"
CHINESE_HELP = "查看帮助"


# --------------------------------------------------------------------------- catalogs


def extracted() -> dict[str, tuple[str, int]]:
    """msgid (the singular for plurals) → where it was found."""
    found: dict[str, tuple[str, int]] = {}
    for directory in SOURCE_DIRS:
        path = ROOT / directory
        if not path.is_dir():
            continue
        for filename, lineno, message, _comments, _context in extract_from_dir(
            str(path), method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            msgid = message if isinstance(message, str) else message[0]
            if msgid:
                found.setdefault(msgid, (f"{directory}/{filename}", lineno))
    return found


def catalog(language: str) -> Catalog:
    with open(LOCALES_DIR / language / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f, locale=language)


def strings(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [v for v in value if v is not None]
    return [value] if value is not None else []


def markup(text: str) -> tuple[Counter, Counter]:
    return Counter(PLACEHOLDER.findall(text)), Counter(TAG.findall(text))


@pytest.fixture(scope="module")
def msgids() -> dict[str, tuple[str, int]]:
    found = extracted()
    assert len(found) > 20  # the extraction really ran over the sources
    assert "Choose your language" in found  # N_() in bot/commands.py
    assert "/help: this help" in found  # _() in handlers/common.py
    return found


@pytest.mark.parametrize("language", ["en", "zh_Hans"])
def test_every_extracted_message_is_in_the_catalog(msgids, language: str) -> None:
    cat = catalog(language)
    missing = [
        f"{where[0]}:{where[1]} {msgid!r}"
        for msgid, where in msgids.items()
        if cat.get(msgid) is None
    ]
    assert missing == [], f"missing from locales/{language}: " + "\n".join(missing)


def test_chinese_catalog_is_fully_translated() -> None:
    problems = []
    for message in catalog("zh_Hans"):
        if not message.id:
            continue  # the header
        if message.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        translations = strings(message.string)
        if not translations or not all(t.strip() for t in translations):
            problems.append(f"untranslated: {message.id!r}")
    assert problems == []


@pytest.mark.parametrize("language", ["en", "zh_Hans"])
def test_translations_keep_placeholders_and_tags(language: str) -> None:
    problems = []
    for message in catalog(language):
        if not message.id:
            continue
        forms = strings(message.id)
        expected = markup(forms[0])
        if any(markup(form) != expected for form in forms[1:]):
            problems.append(f"singular and plural differ: {message.id!r}")
        # Each translated form (one for Chinese, two for English) carries the same markup.
        for translation in strings(message.string):
            if translation and markup(translation) != expected:
                problems.append(f"{message.id!r} -> {translation!r}")
    assert problems == []


def test_markup_check_notices_differences() -> None:
    assert markup("<b>Hi</b> {name}") == markup("<b>你好</b> {name}")
    assert markup("<b>Hi</b> {name}") != markup("<b>你好</b> {nom}")
    assert markup("<b>Hi</b> {name}") != markup("<i>你好</i> {name}")
    assert markup("<code>x</code>") != markup("<code>x")


@pytest.mark.parametrize("language", ["en", "zh_Hans"])
def test_compiled_catalogs_are_up_to_date(language: str) -> None:
    mo_path = LOCALES_DIR / language / "LC_MESSAGES" / "messages.mo"
    assert mo_path.is_file(), f"{mo_path} is missing: run `make locales-compile`"
    with open(mo_path, "rb") as f:
        compiled = read_mo(f)
    stale = []
    for message in catalog(language):
        if not message.id or message.fuzzy or not any(strings(message.string)):
            continue
        entry = compiled.get(message.id)
        if entry is None or strings(entry.string) != strings(message.string):
            stale.append(message.id)
    assert stale == [], f"{mo_path} is older than the .po: run `make locales-compile`"


def test_aiogram_i18n_loads_both_locales() -> None:
    i18n = make_i18n("en")
    assert {"en", "zh_Hans"} <= set(i18n.available_locales)
    assert set(SUPPORTED_LANGUAGES) <= set(i18n.available_locales)
    assert i18n.gettext("Choose your language", locale="zh_Hans") == "选择语言"
    assert i18n.gettext("Choose your language", locale="en") == "Choose your language"
    assert CHINESE_HELP in i18n.gettext("/help: this help", locale="zh_Hans")


# --------------------------------------------------------------------------- language codes


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("en", "en"),
        ("en-US", "en"),
        ("en-gb", "en"),
        ("EN", "en"),
        ("zh", "zh_Hans"),
        ("zh-hans", "zh_Hans"),
        ("zh-Hans-CN", "zh_Hans"),
        ("zh-CN", "zh_Hans"),
        ("zh_CN", "zh_Hans"),
        ("zh-SG", "zh_Hans"),
        ("zh-hant", None),
        ("zh-TW", None),
        ("zh-HK", None),
        ("de", None),
        ("eng", None),
        (None, None),
        ("", None),
    ],
)
def test_from_telegram(code: str | None, expected: str | None) -> None:
    assert from_telegram(code) == expected


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("en", "en"),
        (" English ", "en"),
        ("英文", "en"),
        ("zh", "zh_Hans"),
        ("ZH-CN", "zh_Hans"),
        ("zh_Hans", "zh_Hans"),
        ("Chinese", "zh_Hans"),
        ("中文", "zh_Hans"),
        ("简体中文", "zh_Hans"),
    ],
)
def test_parse_language(typed: str, expected: str) -> None:
    assert parse_language(typed) == expected


@pytest.mark.parametrize("typed", ["xx", "", "  ", "zh-TW", "繁體中文", "fr"])
def test_parse_language_refuses(typed: str) -> None:
    with pytest.raises(InvalidLanguage) as info:
        parse_language(typed)
    assert info.value.value == typed.strip()


# --------------------------------------------------------------------------- the middleware


async def remember(db, user, *, language: str | None = None) -> None:
    async with db.transaction() as session:
        await people.remember(
            session,
            Person(id=user.id, first_name=user.first_name, language_code=user.language_code),
        )
        if language:
            await people.set_language(session, user.id, language)


async def register_group(db, chat, language: str) -> None:
    async with db.transaction() as session:
        await group_service.register(
            session,
            chat_id=chat.id,
            title=chat.title,
            chat_type=chat.type,
            added_by=None,
            defaults=Defaults("Asia/Shanghai", "CNY", "en"),
            language=language,
        )


async def private_help(harness, user) -> str:
    return (await harness.say(user, "/help")).text


async def group_help(harness, chat, user) -> str:
    return (await harness.say(user, "/help", chat)).text


def english(text: str) -> bool:
    return ENGLISH_HELP in text and CHINESE_HELP not in text


def chinese(text: str) -> bool:
    return CHINESE_HELP in text and ENGLISH_HELP not in text


async def test_private_stored_choice_beats_telegram_code(harness) -> None:
    alice = person(601, "Alice", language="zh-hans")
    bob = person(602, "Bob", language="en-US")
    await remember(harness.db, alice, language="en")
    await remember(harness.db, bob, language="zh_Hans")
    assert english(await private_help(harness, alice))
    assert chinese(await private_help(harness, bob))


async def test_private_telegram_code_then_default(harness) -> None:
    assert chinese(await private_help(harness, person(611, language="zh-CN")))
    assert english(await private_help(harness, person(612, language="en-GB")))
    assert english(await private_help(harness, person(613, language="de")))  # default: en
    assert english(await private_help(harness, person(614, language=None)))


async def test_language_chosen_with_lang_is_used_at_once(harness) -> None:
    user = person(621, language="en")
    assert english(await private_help(harness, user))
    await harness.feed(harness.updates.callback(user, LangCB(code="zh_Hans").pack()))
    assert chinese(await private_help(harness, user))


async def test_group_language_wins_over_member_code(harness) -> None:
    zh_group = group(-1001000000701, "水果团")
    en_group = group(-1001000000702, "Fruit")
    await register_group(harness.db, zh_group, "zh_Hans")
    await register_group(harness.db, en_group, "en")
    english_member = person(631, language="en")
    chinese_member = person(632, language="zh-hans")
    await remember(harness.db, english_member, language="en")  # a private choice too

    assert chinese(await group_help(harness, zh_group, english_member))
    assert chinese(await group_help(harness, zh_group, chinese_member))
    assert english(await group_help(harness, en_group, chinese_member))
    # the private choice still applies in private chat
    assert english(await private_help(harness, english_member))


async def test_unknown_group_uses_member_code_or_default(harness) -> None:
    stranger = group(-1001000000799, "Unknown")
    assert chinese(await group_help(harness, stranger, person(641, language="zh")))
    assert english(await group_help(harness, stranger, person(642, language="de")))
    assert english(await group_help(harness, stranger, person(643, language=None)))


@pytest.fixture
async def chinese_default(db, database_url, tmp_path):
    """An app whose DEFAULT_LANGUAGE is zh_Hans, so the default is told apart from English."""
    settings = make_settings(database_url, tmp_path, default_language="zh_Hans")
    api = FakeTelegram()
    app = create_app(settings, session=api, db=db)
    yield app, api
    await app.close()


async def test_default_language_applies_when_nothing_else_does(chinese_default) -> None:
    app, api = chinese_default
    updates = Updates()

    async def help_from(chat, user) -> str:
        await process(app, updates.command(chat, user, "/help"))
        return api.texts(chat.id)[-1]

    german = person(651, language="de")
    english_user = person(652, language="en")
    stranger = group(-1001000000801, "Unknown")
    assert chinese(await help_from(private(german), german))
    assert english(await help_from(private(english_user), english_user))
    assert chinese(await help_from(stranger, german))
    assert english(await help_from(stranger, english_user))


# --------------------------------------------------------------------------- money


@pytest.mark.parametrize(("typed", "code"), [("usd", "USD"), (" cny ", "CNY"), ("Eur", "EUR")])
def test_parse_currency(typed: str, code: str) -> None:
    assert parse_currency(typed) == code


@pytest.mark.parametrize("typed", ["XY1", "US", "ABCD", "", "元", "QQQ"])
def test_parse_currency_refuses(typed: str) -> None:
    with pytest.raises(InvalidCurrency):
        parse_currency(typed)


def test_minor_digits() -> None:
    assert (minor_digits("CNY"), minor_digits("JPY"), minor_digits("KWD")) == (2, 0, 3)


def test_format_money() -> None:
    english_cny = format_money(1250, "CNY", "en")
    chinese_cny = format_money(1250, "CNY", "zh_Hans")
    assert "12.50" in english_cny
    assert "12.50" in chinese_cny and "¥" in chinese_cny
    assert "1,250" in format_money(1250, "JPY", "en")  # no minor unit: 1250 yen
    assert "12.50" not in format_money(1250, "JPY", "en")
    assert "1.250" in format_money(1250, "KWD", "en")
    assert "1,234,567.89" in format_money(123456789, "CNY", "en")
    assert "$" in format_money(99, "USD", "en") and "0.99" in format_money(99, "USD", "en")


@hypothesis_settings(max_examples=200, deadline=None)
@given(amount=st.integers(min_value=-(10**13), max_value=10**13))
def test_format_money_shows_the_exact_amount(amount: int) -> None:
    for currency, digits in (("CNY", 2), ("JPY", 0), ("KWD", 3)):
        shown = re.sub(r"[^\d.\-]", "", format_money(amount, currency, "en"))
        whole, part = divmod(abs(amount), 10**digits)
        expected = str(whole) + (f".{part:0{digits}d}" if digits else "")
        assert shown == ("-" if amount < 0 else "") + expected


# --------------------------------------------------------------------------- timezones


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("asia/shanghai", "Asia/Shanghai"),
        (" Asia/Shanghai ", "Asia/Shanghai"),
        ("AMERICA/NEW_YORK", "America/New_York"),
        ("utc", "UTC"),
        ("Etc/GMT-8", "Etc/GMT-8"),  # IANA's (sign-inverted) fixed offset zone exists
    ],
)
def test_parse_timezone(typed: str, name: str) -> None:
    assert parse_timezone(typed) == name


@pytest.mark.parametrize(
    "typed",
    [
        "Mars/Base",
        "",
        "   ",
        "UTC+8",
        "GMT+8",
        "+08:00",
        "Asia/Beijing",
        "Shanghai",
        "../etc/passwd",
        "/usr/share/zoneinfo/UTC",
        "Asia/Shanghai\x00",
        "localtime",  # a host link on some systems, not an IANA name
        "a" * 65,
    ],
)
def test_parse_timezone_refuses(typed: str) -> None:
    if typed != "localtime":  # the premise: IANA has no such name
        assert typed.strip() not in available_timezones()
    with pytest.raises(InvalidTimezone):
        parse_timezone(typed)


@hypothesis_settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_parse_timezone_only_raises_invalid_timezone(typed: str) -> None:
    try:
        name = parse_timezone(typed)
    except InvalidTimezone:
        return
    ZoneInfo(name)
    assert name.lower() == typed.strip().lower()


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    name=st.sampled_from(sorted(n for n in available_timezones() if n != "localtime")),
    flips=st.lists(st.booleans(), min_size=64, max_size=64),
)
def test_parse_timezone_accepts_any_casing_of_iana_names(name: str, flips: list[bool]) -> None:
    typed = "".join(c.swapcase() if flip else c for c, flip in zip(name, flips, strict=False))
    assert parse_timezone(typed) == name


def test_to_local() -> None:
    moment = datetime(2024, 1, 1, 0, 30, tzinfo=UTC)
    local = to_local(moment, "Asia/Shanghai")
    assert (local.hour, local.minute, local.utcoffset().total_seconds()) == (8, 30, 8 * 3600)
    assert to_local(datetime(2024, 1, 1, 0, 30), "Asia/Shanghai") == local  # naive = UTC
