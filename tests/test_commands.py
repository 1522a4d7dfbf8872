"""The command menu: setMyCommands per scope and language, translated, tolerant of errors,
and every command in it is one the bot really handles."""

from __future__ import annotations

import logging
import re

import pytest
from aiogram.methods import SendDocument, SetMyCommands

from bot.commands import GROUP, GROUP_ADMINS, PRIVATE, set_commands
from bot.i18n import make_i18n
from tests.builders import group, person

CJK = re.compile(r"[\u4e00-\u9fff]")
SCOPES = {
    "all_private_chats": PRIVATE,
    "all_group_chats": GROUP,
    "all_chat_administrators": GROUP_ADMINS,
}


def menus(api) -> dict[tuple[str, str | None], dict[str, str]]:
    """(scope type, language code) → {command: description}, one entry per call."""
    result = {}
    for call in api.of(SetMyCommands):
        key = (call.scope.type, call.language_code)
        assert key not in result, f"setMyCommands sent twice for {key}"
        result[key] = {c.command: c.description for c in call.commands}
    return result


async def test_menu_for_every_scope_and_language(harness) -> None:
    await set_commands(harness.app.bot, harness.app.i18n, "en")

    sent = menus(harness.api)
    assert set(sent) == {(scope, lang) for scope in SCOPES for lang in (None, "en", "zh")}
    for scope, commands in SCOPES.items():
        names = [name for name, _ in commands]
        for lang in (None, "en", "zh"):
            assert list(sent[scope, lang]) == names
        # English in the default menu and the "en" one; Chinese in the "zh" one.
        assert sent[scope, None] == sent[scope, "en"] == dict(commands)
        assert all(CJK.search(d) for d in sent[scope, "zh"].values())
        assert sent[scope, "zh"] != sent[scope, "en"]

    assert sent["all_private_chats", "zh"]["lang"] == "选择语言"
    assert sent["all_private_chats", "en"]["lang"] == "Choose your language"
    assert "settings" not in sent["all_group_chats", None]
    assert "settings" in sent["all_chat_administrators", None]


async def test_commands_are_valid_for_telegram(harness) -> None:
    await set_commands(harness.app.bot, harness.app.i18n, "en")
    calls = harness.api.of(SetMyCommands)
    assert calls
    for call in calls:
        assert 1 <= len(call.commands) <= 100
        for c in call.commands:
            assert re.fullmatch(r"[a-z0-9_]{1,32}", c.command)
            assert 1 <= len(c.description) <= 256


async def test_default_menu_follows_default_language(harness) -> None:
    await set_commands(harness.app.bot, make_i18n("zh_Hans"), "zh_Hans")
    sent = menus(harness.api)
    for scope in SCOPES:
        assert sent[scope, None] == sent[scope, "zh"]
        assert all(CJK.search(d) for d in sent[scope, None].values())
    assert sent["all_private_chats", None]["lang"] == "选择语言"


@pytest.mark.parametrize("kind", ["network", "retry_after", "bad_request"])
async def test_failure_is_logged_not_raised(harness, caplog, kind: str) -> None:
    harness.api.fail_next(kind, SetMyCommands)
    with caplog.at_level(logging.WARNING, logger="bot.commands"):
        await set_commands(harness.app.bot, harness.app.i18n, "en")  # does not raise
    assert harness.api.of(SetMyCommands)  # it was tried
    warnings = [r for r in caplog.records if r.name == "bot.commands"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "command menu" in warnings[0].getMessage()
    assert harness.app.bot.token not in warnings[0].getMessage()

    # The next start sets every menu.
    harness.api.clear()
    await set_commands(harness.app.bot, harness.app.i18n, "en")
    assert len(harness.api.of(SetMyCommands)) == len(SCOPES) * 3


async def test_private_menu_commands_are_handled(harness) -> None:
    user = person(801, "Menu")
    for name, _ in PRIVATE:
        harness.api.clear()
        await harness.send(user, f"/{name}")
        replies = harness.api.texts(user.id) + [  # /mydata answers with a document
            d.caption for d in harness.api.of(SendDocument) if d.chat_id == user.id
        ]
        assert replies, f"/{name} got no answer in private chat"
        assert not any("don't know that command" in r for r in replies), name


async def test_group_menu_commands_are_handled(harness) -> None:
    chat = group(-1001000000811, "Menu Group")
    owner = person(811, "Owner")
    harness.api.set_admins(chat.id, owner)
    await harness.feed(harness.updates.my_chat_member(chat, owner, "left", "administrator"))
    for name in {n for n, _ in GROUP} | {n for n, _ in GROUP_ADMINS}:
        harness.api.clear()
        await harness.send(owner, f"/{name}", chat)
        assert harness.api.texts(chat.id), f"/{name} got no answer in the group"
