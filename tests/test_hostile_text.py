"""Text that is not what it seems (issue 12, class 3), through the real Dispatcher on both
databases: control characters never reach storage (PostgreSQL refuses NUL in text), digits
that `str.isdigit()` accepts but `int()` does not never crash a command, and every answer
that quotes what a person typed stays within Telegram's limits, which the fake Bot API
enforces for the whole suite. Property tests pin the one cleaner and the one integer
parser."""

from __future__ import annotations

import re
import unicodedata

import pytest
from aiogram.exceptions import TelegramBadRequest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from models import Deal, Group, Order, ScheduledPost, User
from services.parsing import MAX_INT, ParseError, clean_text, parse_id, parse_int
from tests.builders import group
from tests.fake_api import visible_length
from tests.test_deal_wizard import NOW, OWNER, add_group, at_step, cb, fsm, full_draft, settle
from tests.test_deal_wizard import key as wizard_key

APOLOGY = "Something went wrong. Please try again."
HOSTILE = "Man\x00go\u202ees\x07 \x1b[31m\ud800\ufffe\x85fresh\u2066"
SPOOF = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff\ufffe\uffff]"
)


# ---------------------------------------------------------------- the cleaner, as properties

TRICKY = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, 0xFEFF, 0x200B)]
TRICKY += [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0xD800, 0xDFFF)]
TRICKY += ["\ufffe", "\uffff", "\U0001fffe", "\U0010ffff", "\ufdd0", "😀", "\u200d", "é"]
ANY_TEXT = st.text(alphabet=st.one_of(st.characters(), st.sampled_from(TRICKY)))


@given(ANY_TEXT)
def test_cleaned_text_has_no_control_characters_and_is_idempotent(text: str) -> None:
    for multiline in (True, False):
        cleaned = clean_text(text, multiline=multiline)
        assert not SPOOF.search(cleaned)
        assert all(unicodedata.category(c) not in ("Cc", "Cs") or c in "\n\t" for c in cleaned)
        assert clean_text(cleaned, multiline=multiline) == cleaned
        assert len(cleaned) <= len(text)
        assert cleaned == cleaned.strip()
        if not multiline:
            assert "\n" not in cleaned and "\t" not in cleaned
        cleaned.encode("utf-8")  # no lone surrogate left: storable and sendable


@given(st.text(alphabet=st.characters(categories=("L", "N", "P", "Zs"))))
def test_ordinary_text_is_kept(text: str) -> None:
    assert clean_text(text) == text.strip()


def test_line_breaks_and_tabs() -> None:
    assert clean_text("a\r\nb\rc\u2028d\te") == "a\nb\nc\nd\te"
    assert clean_text("a\r\nb\tc", multiline=False) == "a b c"
    assert clean_text(HOSTILE) == "Mangoes [31m\nfresh"


# ---------------------------------------------------------------- the integer parser


@given(st.one_of(ANY_TEXT, st.from_regex(r"\A\s*[0-9０-９²①٣]{1,14}\s*\Z")))
def test_parse_int_returns_a_bounded_int_or_parse_error(text: str) -> None:
    try:
        value = parse_int(text)
    except ParseError as err:
        assert err.reason in ("number_format", "number_range")
    else:
        assert isinstance(value, int) and 0 <= value <= MAX_INT
    found = parse_id(text)
    assert found is None or 1 <= found <= MAX_INT


@given(st.integers(min_value=0, max_value=MAX_INT))
def test_parse_int_reads_every_number_in_range(n: int) -> None:
    assert parse_int(str(n)) == n
    assert parse_int(f" {n} ") == n


@pytest.mark.parametrize("text", ["²", "①", "٣", "1²", "D²", "𝟙", "+1", "-1", "1_000", "1e3", ""])
def test_parse_int_refuses_what_is_not_ascii_digits(text: str) -> None:
    with pytest.raises(ParseError):
        parse_int(text)


def test_parse_int_bounds_and_full_width_digits() -> None:
    assert parse_int("１２") == 12  # as Chinese keyboards type them
    assert parse_int("7", minimum=1, maximum=7) == 7
    for text in ("0", "8", str(MAX_INT + 1), "9" * 40):
        with pytest.raises(ParseError):
            parse_int(text, minimum=1, maximum=7 if len(text) == 1 else MAX_INT)


# ---------------------------------------------------------------- nothing unclean is stored


async def test_control_characters_never_reach_a_deal(harness) -> None:
    gid = await add_group(harness)
    harness.clock.set(NOW)
    await at_step(harness, "title", full_draft(gid, NOW, title=None))
    await harness.say(OWNER, HOSTILE)
    _state, data = await fsm(harness)
    assert data["draft"]["title"] == "Mangoes [31m fresh"
    # nothing readable is refused with the answer for "send text", and changes nothing
    await at_step(harness, "description", data["draft"])
    reply = await harness.say(OWNER, "\x00\x01\u202e")
    assert "Please send the value as text" in reply.text
    assert (await fsm(harness))[1] == data
    await harness.say(OWNER, "Sweet\x00 and\r\nripe\x1f")
    _state, data = await fsm(harness)
    assert data["draft"]["description"] == "Sweet and\nripe"
    await at_step(harness, "pickup", data["draft"])
    await harness.say(OWNER, "Gate\x00 3\u2067")
    _state, data = await fsm(harness)
    assert data["draft"]["pickup"] == "Gate 3"
    # and it publishes (on PostgreSQL a NUL would make every publish fail)
    await at_step(harness, "preview", data["draft"])
    await harness.tap(OWNER, cb("preview", "publish"))
    await settle(harness)
    async with harness.db.read() as s:
        deal = await s.scalar(select(Deal))
    assert (deal.title, deal.description, deal.pickup_note) == (
        "Mangoes [31m fresh",
        "Sweet and\nripe",
        "Gate 3",
    )


async def test_control_characters_never_reach_a_scheduled_post(harness) -> None:
    gid = await add_group(harness)
    storage = harness.app.dispatcher.storage
    await storage.set_state(wizard_key(harness), "ScheduleWizard:content")
    await storage.set_data(wizard_key(harness), {"draft": {"group_ids": [gid]}})
    reply = await harness.say(OWNER, "\x00\u202e\x07")
    assert "The post is empty" in reply.text
    await harness.say(OWNER, "Fresh\x00 mangoes\u202e today!\r\nCome early")
    data = await storage.get_data(wizard_key(harness))
    assert data["draft"]["text"] == "Fresh mangoes today!\nCome early"
    async with harness.db.read() as s:
        assert await s.scalar(select(ScheduledPost)) is None  # not stored before the end


async def test_a_new_groups_title_and_a_members_name_are_cleaned(harness) -> None:
    chat = group(-1001000000555, "Fruit\x00 \u202eLovers")
    gid = await add_group(harness, chat=chat)
    async with harness.db.read() as s:
        assert (await s.get(Group, gid)).title == "Fruit Lovers"
        assert (await s.get(User, OWNER.id)).first_name == OWNER.first_name


# ---------------------------------------------------------------- digits int() refuses


@pytest.mark.parametrize(
    "command",
    [
        "/orders D²",
        "/orders D①",
        "/commission D² 5",
        "/start deal_²",
        "/start inv_①",
        "/digest time ² 08:30",
        "/top ²",
    ],
)
async def test_digits_int_refuses_never_crash_a_command(harness, command: str) -> None:
    await add_group(harness)
    harness.api.clear()
    reply = await harness.say(OWNER, command)
    assert reply.text != APOLOGY


async def test_buy_with_a_superscript_is_answered_and_orders_nothing(harness) -> None:
    chat = group(-1001000000556, "Buyers")
    await add_group(harness, chat=chat)
    harness.api.clear()
    for text in ("/buy D² 1", "/buy D1 ²", "/cancel D①"):
        reply = await harness.say(OWNER, text, chat)
        assert reply.text != APOLOGY, text
    async with harness.db.read() as s:
        assert await s.scalar(select(Order)) is None


# ---------------------------------------------------------------- answers within the limits


async def test_answers_quoting_long_input_stay_within_telegram_limits(harness) -> None:
    await add_group(harness)
    harness.api.clear()
    long = "x" * 5000
    for command in (
        f"/pickup {long}",
        f"/pickup {'<&>' * 1700}",
        f"/digest time 1 {long}",
        f"/digest {long}",
        f"/commission D1 {long}",
    ):
        reply = await harness.say(OWNER, command)
        assert reply.text != APOLOGY, command
        assert visible_length(reply.text) <= 4096, command
        assert len(reply.text) < 1000, command  # the quoted part is cut, not the answer
    assert harness.api.refused == []
    pickup = harness.api.sent(OWNER.id)[0].text
    assert "x" * 60 in pickup and "…" in pickup


async def test_the_fake_api_refuses_what_telegram_refuses(harness) -> None:
    bot = harness.app.bot
    await bot.send_message(OWNER.id, "&amp;" * 4096)  # 4096 characters once parsed
    await bot.send_message(OWNER.id, "<b>" + "é" * 4096 + "</b>")
    for text in ("x" * 4097, "😀" * 2049, "<i>" + "&lt;" * 4097 + "</i>"):  # 😀: 2 UTF-16 units
        with pytest.raises(TelegramBadRequest, match="message is too long"):
            await bot.send_message(OWNER.id, text)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.edit_message_text("y" * 4097, chat_id=OWNER.id, message_id=1)
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(OWNER.id, "&amp;" * 1000, parse_mode=None)  # 5000 as plain text
    await bot.send_photo(OWNER.id, "photo-id", caption="<b>" + "c" * 1024 + "</b>")
    with pytest.raises(TelegramBadRequest, match="caption is too long"):
        await bot.send_photo(OWNER.id, "photo-id", caption="c" * 1025)
    assert len(harness.api.refused) == 6
    harness.api.refused.clear()  # these were meant to be refused
