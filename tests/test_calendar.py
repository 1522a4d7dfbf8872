"""The content calendar: validation of what owners type, next runs in each group's timezone
through DST changes, and the /schedule wizard and list through the real Dispatcher (every
refused input stays on its step and saves nothing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiogram.methods import SendPhoto
from aiogram.types import PhotoSize
from sqlalchemy import func, select

from handlers.callbacks import ScheduleCB, ScheduleItemCB
from models import ScheduledPost, ScheduledTarget
from services import calendar
from services.parsing import ParseError
from tests.test_deal_wizard import OWNER, SHANGHAI, STRANGER, add_group

NOW = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)


# ---------------------------------------------------------------- rules


@pytest.mark.parametrize("text", ["25:61", "24:00", "9:60", "nine", "", "0900"])
def test_bad_clock_times_are_refused(text: str) -> None:
    with pytest.raises(ParseError):
        calendar.parse_clock(text)


@pytest.mark.parametrize(("text", "expected"), [("9:00", "09:00"), ("21.30", "21:30")])
def test_clock_times(text: str, expected: str) -> None:
    assert calendar.parse_clock(text) == expected


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        ("0 0 30 2 *", "cron_never"),
        ("* * * * *", "cron_too_often"),
        ("*/2 * * * *", "cron_too_often"),
        ("0,1 9 * * *", "cron_too_often"),
        ("* * * * * *", "cron_seconds"),
        ("0 9 * *", "cron_format"),
        ("61 9 * * *", "cron_format"),
        ("hello world a b c", "cron_format"),
    ],
)
def test_bad_cron_expressions_are_refused(expr: str, reason: str) -> None:
    with pytest.raises(ParseError) as err:
        calendar.check_cron(expr, "Europe/Berlin", NOW)
    assert err.value.reason == reason


@pytest.mark.parametrize("expr", ["*/5 * * * *", "0 9 * * 1-5", "0 0 29 2 *", "55,0 * * * *"])
def test_cron_expressions_at_most_every_5_minutes_are_accepted(expr: str) -> None:
    assert calendar.check_cron(expr, "Europe/Berlin", NOW) == expr


def test_text_limits() -> None:
    assert calendar.check_text("x" * 4096, photo=False)
    with pytest.raises(ParseError) as err:
        calendar.check_text("x" * 4097, photo=False)
    assert err.value.reason == "post_too_long"
    assert calendar.check_text("x" * 1024, photo=True)
    with pytest.raises(ParseError) as err:
        calendar.check_text("x" * 1025, photo=True)
    assert err.value.reason == "caption_too_long"
    with pytest.raises(ParseError):
        calendar.check_text("  ", photo=False)
    assert calendar.check_text("", photo=True) == ""


def post(kind: str, **values) -> ScheduledPost:
    return ScheduledPost(kind=kind, text="hi", **values)


BERLIN = "Europe/Berlin"


def test_daily_0900_in_berlin_follows_dst() -> None:
    daily = post("daily", at_time="09:00")
    moment = datetime(2026, 3, 26, 12, 0, tzinfo=UTC)
    runs = []
    for _ in range(5):
        moment = calendar.next_run(daily, BERLIN, moment)
        runs.append(moment)
    assert runs == [
        datetime(2026, 3, 27, 8, 0, tzinfo=UTC),
        datetime(2026, 3, 28, 8, 0, tzinfo=UTC),
        datetime(2026, 3, 29, 7, 0, tzinfo=UTC),  # CEST from 2026-03-29
        datetime(2026, 3, 30, 7, 0, tzinfo=UTC),
        datetime(2026, 3, 31, 7, 0, tzinfo=UTC),
    ]
    # and back in October
    assert calendar.next_run(daily, BERLIN, datetime(2026, 10, 24, 12, 0, tzinfo=UTC)) == datetime(
        2026, 10, 25, 8, 0, tzinfo=UTC
    )


def test_weekly_and_cron_in_berlin_follow_dst() -> None:
    weekly = post("weekly", at_time="09:00", weekdays="5")  # Saturdays
    first = calendar.next_run(weekly, BERLIN, datetime(2026, 3, 22, tzinfo=UTC))
    second = calendar.next_run(weekly, BERLIN, first)
    assert (first, second) == (
        datetime(2026, 3, 28, 8, 0, tzinfo=UTC),
        datetime(2026, 4, 4, 7, 0, tzinfo=UTC),
    )
    cron = post("cron", cron="0 9 * * *")
    assert calendar.next_run(cron, BERLIN, datetime(2026, 3, 28, 8, 0, tzinfo=UTC)) == datetime(
        2026, 3, 29, 7, 0, tzinfo=UTC
    )
    # A time skipped by the change (02:30 on 2026-03-29) runs right after the gap.
    night = post("daily", at_time="02:30")
    assert calendar.next_run(night, BERLIN, datetime(2026, 3, 28, 12, 0, tzinfo=UTC)) == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC
    )


def test_once_runs_only_at_its_moment() -> None:
    once = post("once", run_at=NOW)
    assert calendar.next_run(once, BERLIN, NOW - timedelta(minutes=1)) == NOW
    assert calendar.next_run(once, BERLIN, NOW) is None


# ---------------------------------------------------------------- the wizard


def sc(step: str, action: str, value: str = "") -> str:
    return ScheduleCB(step=step, action=action, value=value).pack()


def si(action: str, post_id: int = 0) -> str:
    return ScheduleItemCB(action=action, post_id=post_id).pack()


async def saved(harness) -> int:
    async with harness.db.read() as s:
        return await s.scalar(select(func.count()).select_from(ScheduledPost))


@pytest.fixture
def frozen(harness):
    moment = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)
    harness.clock.set(moment)
    return moment


async def to_when(harness, kind: str, text: str = "Fresh mangoes today!") -> None:
    assert "Which groups" in (await harness.say(OWNER, "/schedule")).text
    await harness.tap(OWNER, sc("groups", "done"))
    assert "Send the post" in harness.last(OWNER).text
    assert "Add a button" in (await harness.say(OWNER, text)).text
    await harness.tap(OWNER, sc("button", "nodeal"))
    await harness.tap(OWNER, sc("kind", "kind", kind))


async def test_daily_post_end_to_end_then_list_pause_edit_delete(harness, frozen) -> None:
    group_id = await add_group(harness, timezone="Europe/Berlin")
    await to_when(harness, "daily")
    assert "HH:MM" in harness.last(OWNER).text
    refused = (await harness.say(OWNER, "25:61")).text
    assert "00 to 23" in refused and "<code>09:00</code>" in refused
    assert await saved(harness) == 0
    preview = (await harness.say(OWNER, "09:00")).text
    assert "Schedule: daily at 09:00" in preview
    assert "Next run in Fruit Lovers: 2026-03-20 09:00 (Europe/Berlin)" in preview
    assert harness.api.sent(OWNER.id)[-2].text == "Fresh mangoes today!"  # the post itself
    answer = await harness.tap(OWNER, sc("preview", "save"))
    assert answer.text == "Saved"
    async with harness.db.read() as s:
        row = await s.scalar(select(ScheduledPost))
        target = await s.scalar(select(ScheduledTarget))
    assert (row.kind, row.at_time, row.owner_id) == ("daily", "09:00", OWNER.id)
    assert (target.group_id, target.next_run_at) == (
        group_id,
        datetime(2026, 3, 20, 8, 0, tzinfo=UTC),
    )

    listing = (await harness.say(OWNER, "/schedule list")).text
    assert f"#{row.id} · daily at 09:00 · next: 2026-03-20 09:00 (Europe/Berlin)" in listing
    await harness.tap(OWNER, si("pause", row.id))
    assert "paused" in harness.last(OWNER).text
    async with harness.db.read() as s:
        assert (await s.get(ScheduledPost, row.id)).paused is True
    await harness.tap(OWNER, si("resume", row.id))
    async with harness.db.read() as s:
        assert (await s.get(ScheduledPost, row.id)).paused is False

    await harness.tap(OWNER, si("edit", row.id))
    assert "what do you want to change" in harness.last(OWNER).text
    await harness.tap(OWNER, si("etext", row.id))
    too_long = (await harness.say(OWNER, "y" * 4097)).text
    assert "at most 4096" in too_long
    assert "updated" in (await harness.say(OWNER, "Mangoes are back!")).text
    async with harness.db.read() as s:
        assert (await s.get(ScheduledPost, row.id)).text == "Mangoes are back!"

    # Somebody else's buttons change nothing.
    assert (await harness.tap(STRANGER, si("delete", row.id))).show_alert
    assert await saved(harness) == 1
    await harness.tap(OWNER, si("delete", row.id))
    assert await saved(harness) == 0


async def test_weekly_post_with_photo_and_deal_button(harness, frozen) -> None:
    from tests.test_deal_post import create_deal

    group_id = await add_group(harness, timezone="Europe/Berlin")
    deal_id = await create_deal(harness, [group_id], owner=OWNER.id)
    await harness.say(OWNER, "/schedule")
    await harness.tap(OWNER, sc("groups", "done"))
    photo = [PhotoSize(file_id="PHOTO1", file_unique_id="u1", width=10, height=10)]
    refused = (await harness.say(OWNER, None, photo=photo, caption="c" * 1025)).text
    assert "at most 1024" in refused
    await harness.say(OWNER, None, photo=photo, caption="Weekend special")
    assert "not one of your deals" in (await harness.say(OWNER, "D99999")).text
    await harness.say(OWNER, f"D{deal_id}")
    await harness.tap(OWNER, sc("kind", "kind", "weekly"))
    answer = await harness.tap(OWNER, sc("days", "done"))
    assert answer.show_alert  # no day chosen
    await harness.tap(OWNER, sc("days", "day", "5"))
    await harness.tap(OWNER, sc("days", "day", "6"))
    await harness.tap(OWNER, sc("days", "done"))
    preview = (await harness.say(OWNER, "9:00")).text
    assert "every Sat, Sun at 09:00" in preview
    shown = harness.api.of(SendPhoto)[-1]
    assert shown.caption == "Weekend special"
    assert shown.reply_markup.inline_keyboard[0][0].url.endswith(f"?start=deal_{deal_id}")
    await harness.tap(OWNER, sc("preview", "save"))
    async with harness.db.read() as s:
        row = await s.scalar(select(ScheduledPost))
        target = await s.scalar(select(ScheduledTarget))
    assert (row.weekdays, row.photo_file_id, row.deal_id) == ("5,6", "PHOTO1", deal_id)
    assert target.next_run_at == datetime(2026, 3, 21, 8, 0, tzinfo=UTC)  # Saturday 09:00 CET


@pytest.mark.parametrize(
    ("kind", "typed", "expected"),
    [
        ("once", "2026-02-30 10:00", "date"),
        ("once", "25:61", ""),
        ("once", "2026-01-01 10:00", ""),  # in the past
        ("cron", "0 0 30 2 *", "never fires"),
        ("cron", "* * * * *", "every 5 minutes"),
        ("cron", "*/1 * * * * *", "seconds"),
        ("cron", "every day", "five fields"),
        ("daily", "9", "HH:MM"),
    ],
)
async def test_bad_times_are_refused_and_nothing_is_saved(
    harness, frozen, kind: str, typed: str, expected: str
) -> None:
    await add_group(harness, timezone="Europe/Berlin")
    await to_when(harness, kind)
    prompt = harness.last(OWNER).text
    answer = (await harness.say(OWNER, typed)).text
    assert answer != prompt and "<code>" in answer
    assert expected in answer
    assert await saved(harness) == 0
    state = await harness.app.dispatcher.storage.get_state(
        key=__import__("aiogram").fsm.storage.base.StorageKey(
            bot_id=harness.app.bot.id, chat_id=OWNER.id, user_id=OWNER.id
        )
    )
    assert state == "ScheduleWizard:when"  # stays on its step


async def test_too_long_post_is_refused(harness, frozen) -> None:
    await add_group(harness)
    await harness.say(OWNER, "/schedule")
    await harness.tap(OWNER, sc("groups", "done"))
    answer = (await harness.say(OWNER, "x" * 5000)).text
    assert "5000 characters" in answer and "4096" in answer
    assert await saved(harness) == 0


async def test_once_post_and_cancel(harness, frozen) -> None:
    await add_group(harness, timezone="Europe/Berlin")
    await to_when(harness, "once")
    preview = (await harness.say(OWNER, "2026-03-29 09:00")).text
    assert "2026-03-29 09:00 (Europe/Berlin)" in preview
    await harness.tap(OWNER, sc("preview", "back"))
    await harness.tap(OWNER, sc("when", "cancel"))
    assert await saved(harness) == 0
    await to_when(harness, "once")
    await harness.say(OWNER, "2026-03-29 09:00")
    await harness.tap(OWNER, sc("preview", "save"))
    async with harness.db.read() as s:
        target = await s.scalar(select(ScheduledTarget))
    assert target.next_run_at == datetime(2026, 3, 29, 7, 0, tzinfo=UTC)


async def test_only_owners_can_schedule(harness) -> None:
    await add_group(harness, chat=SHANGHAI)
    answer = (await harness.say(STRANGER, "/schedule")).text
    assert "Only owners" in answer


@pytest.mark.parametrize(
    ("dow", "weekdays"),
    [
        ("1-5", {0, 1, 2, 3, 4}),  # crontab: 1 = Monday … 5 = Friday
        ("0", {6}),
        ("7", {6}),
        ("sat,sun", {5, 6}),
        ("5-7", {4, 5, 6}),
        ("*/2", {6, 1, 3, 5}),  # Sunday, Tuesday, Thursday, Saturday
    ],
)
def test_cron_days_of_week_follow_crontab_numbering(dow: str, weekdays: set[int]) -> None:
    cron = post("cron", cron=f"0 9 * * {dow}")
    moment, seen = NOW, set()
    for _ in range(14):
        moment = calendar.next_run(cron, "UTC", moment)
        seen.add(moment.weekday())
    assert seen == weekdays


async def test_forged_numbers_in_wizard_buttons_are_answered_not_crashed(harness, frozen) -> None:
    await add_group(harness, timezone="Europe/Berlin")
    assert "Which groups" in (await harness.say(OWNER, "/schedule")).text
    for value in ("x", "-1", "9" * 16):
        answer = await harness.tap(OWNER, sc("groups", "toggle", value))
        assert answer.show_alert and "out of date" in answer.text
    answer = await harness.tap(OWNER, "sw:groups:toggle:" + "9" * 30)  # too long to unpack
    assert answer.show_alert and "out of date" in answer.text
    await harness.tap(OWNER, sc("groups", "done"))
    assert "Send the post" in harness.last(OWNER).text
    assert await saved(harness) == 0
