"""Per-deal reminders before closing: the parser of what owners type, each deal's own list
(NULL: 2 h and 15 min; "": none) sent once per deal and kind by the scheduler, changes after
some were sent (never resent), and the owner's ways to set them: a /newdeal step and an edit
in /deals."""

from __future__ import annotations

from datetime import timedelta

import pytest
from aiogram.methods import SendMessage
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select, update

from models import Deal, DealReminderSent
from scheduler import jobs
from services import deals as deal_service
from services.calendar import deal_reminders, reminder_kind
from services.parsing import ParseError, check_stored_reminders, parse_reminders, reminder_list
from services.timezones import utcnow
from tests.test_deal_post import GROUP, OWNER, deal_row, ready

# ---------------------------------------------------------------- the parser


async def tick(app, now=None, **options):
    """The scheduler's tick, then what it promised (the outbox sends reminders)."""
    result = await jobs.tick(app, now, **options)
    await app.settle()
    return result


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("2h, 15m", "120,15"),
        ("15m 2h", "120,15"),
        ("90m", "90"),
        ("1h30m", "90"),
        ("1H30M", "90"),
        ("2小时 15分钟", "120,15"),
        ("2小时，15分钟", "120,15"),
        ("1天 3h", "1440,180"),
        ("1d, 1h, 5min", "1440,60,5"),
        ("7d", "10080"),
        ("off", ""),
        ("None", ""),
        ("关", ""),
        ("无", ""),
        ("default", None),
        ("默认", None),
    ],
)
def test_reminders_typed_in_many_ways(text: str, stored: str | None) -> None:
    assert parse_reminders(text) == stored


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "reminders_format"),
        ("90", "reminders_format"),  # no unit: minutes or hours?
        ("25:61", "reminders_format"),
        ("2 hours", "reminders_format"),
        ("h", "reminders_format"),
        ("-15m", "reminders_format"),
        ("4m", "reminders_range"),
        ("0m", "reminders_range"),
        ("7d1m", "reminders_range"),
        ("8d", "reminders_range"),
        ("2h 1h 30m 15m", "reminders_too_many"),
        ("2h, 120m", "reminders_duplicate"),
    ],
)
def test_bad_reminders_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_reminders(text)
    assert info.value.reason == reason


@given(st.lists(st.integers(min_value=5, max_value=7 * 1440), min_size=1, max_size=3, unique=True))
def test_any_valid_reminders_round_trip(minutes: list[int]) -> None:
    typed = ", ".join(f"{m // 60}h{m % 60}m" if m >= 60 else f"{m}m" for m in minutes)
    stored = parse_reminders(typed)
    assert reminder_list(stored) == sorted(minutes, reverse=True)
    assert check_stored_reminders(stored) == stored


def test_stored_forms() -> None:
    assert reminder_list(None) == [120, 15]
    assert reminder_list("") == []
    assert reminder_list("15,120") == [120, 15]
    assert reminder_kind(120) == "m120"
    with pytest.raises(ParseError):
        check_stored_reminders("1,2")


# ---------------------------------------------------------------- the scheduler


async def sent_rows(harness, deal_id: int) -> dict[str, str]:
    async with harness.db.read() as s:
        rows = await s.scalars(select(DealReminderSent).where(DealReminderSent.deal_id == deal_id))
        return {r.kind: r.outcome for r in rows}


def reminder_texts(harness) -> list[str]:
    return [m.text for m in harness.api.of(SendMessage) if m.chat_id == GROUP.id]


async def test_a_deals_own_reminders_are_sent_once_with_the_real_time_left(harness) -> None:
    start = utcnow()
    _group, deal_id = await ready(harness, closes_at=start + timedelta(hours=3), reminders="90,30")
    deal = await deal_row(harness, deal_id)
    assert set(deal_reminders(deal)) == {"m90", "m30"}
    harness.api.clear()
    assert (await tick(harness.app, start + timedelta(minutes=60))).reminders_sent == []
    first = await tick(harness.app, start + timedelta(minutes=90, seconds=20))
    again = await tick(harness.app, start + timedelta(minutes=90, seconds=30))
    assert first.reminders_sent == [(deal_id, "m90")] and again.reminders_sent == []
    # no 2 h reminder: the deal has its own list
    assert await sent_rows(harness, deal_id) == {"m90": "sent"}
    await tick(harness.app, start + timedelta(minutes=150, seconds=10))
    texts = reminder_texts(harness)
    assert len(texts) == 2
    assert "1 h 30 min left" in texts[0] and "30 minutes left" in texts[1]
    assert await sent_rows(harness, deal_id) == {"m90": "sent", "m30": "sent"}


async def test_a_deal_without_reminders_gets_none(harness) -> None:
    start = utcnow()
    _group, deal_id = await ready(harness, reminders="")
    harness.api.clear()
    for minutes in (15, 60, 120, 134):
        await tick(harness.app, start + timedelta(minutes=minutes, seconds=40))
    assert reminder_texts(harness) == [] and await sent_rows(harness, deal_id) == {}


async def test_changing_reminders_after_some_were_sent_never_resends_them(harness) -> None:
    start = utcnow()
    _group, deal_id = await ready(harness)  # the default: 2 h and 15 min
    harness.api.clear()
    await tick(harness.app, start + timedelta(minutes=15, seconds=40))
    assert await sent_rows(harness, deal_id) == {"m120": "sent"}
    async with harness.db.transaction() as s:  # the owner adds 3 h and 1 h; keeps 2 h
        await deal_service.set_reminders(s, deal_id, OWNER.id, "180,120,60", start)
    for minutes in (16, 17, 30):
        await tick(harness.app, start + timedelta(minutes=minutes, seconds=40))
    assert len(reminder_texts(harness)) == 1  # 2 h is not sent again; 3 h is long past
    assert await sent_rows(harness, deal_id) == {"m120": "sent", "m180": "skipped"}
    await tick(harness.app, start + timedelta(minutes=75, seconds=40))
    assert len(reminder_texts(harness)) == 2 and "1 hour left" in reminder_texts(harness)[1]
    assert (await sent_rows(harness, deal_id))["m60"] == "sent"


async def test_a_longer_reminder_added_after_a_shorter_one_went_out_is_skipped(harness) -> None:
    start = utcnow()
    _group, deal_id = await ready(harness, reminders="30")
    harness.api.clear()
    moment = start + timedelta(minutes=105, seconds=40)  # 30 min before closing
    await tick(harness.app, moment)
    async with harness.db.transaction() as s:
        await deal_service.set_reminders(s, deal_id, OWNER.id, "32,30", start)
    await tick(harness.app, moment + timedelta(seconds=20))  # 32 min mark passed 2 min ago
    assert len(reminder_texts(harness)) == 1
    assert await sent_rows(harness, deal_id) == {"m30": "sent", "m32": "skipped"}


async def test_of_several_reminders_due_at_once_only_the_shortest_goes_out(harness) -> None:
    start = utcnow()
    _group, deal_id = await ready(harness, reminders="40,38")
    harness.api.clear()
    await tick(harness.app, start + timedelta(minutes=97, seconds=40))  # both marks passed
    [text] = reminder_texts(harness)
    assert "38 minutes left" in text
    assert await sent_rows(harness, deal_id) == {"m38": "sent", "m40": "skipped"}


async def test_rows_recorded_before_per_deal_reminders_still_count(harness) -> None:
    start = utcnow()
    _group, deal_id = await ready(harness)
    async with harness.db.transaction() as s:
        s.add(DealReminderSent(deal_id=deal_id, kind="2h", outcome="sent", sent_at=start))
    harness.api.clear()
    await tick(harness.app, start + timedelta(minutes=15, seconds=40))
    assert reminder_texts(harness) == []


async def test_set_reminders_checks_owner_status_and_values(harness) -> None:
    start = utcnow()
    _group, deal_id = await ready(harness)
    async with harness.db.transaction() as s:
        with pytest.raises(deal_service.NotDealOwner):
            await deal_service.set_reminders(s, deal_id, OWNER.id + 1, "60", start)
        with pytest.raises(ParseError):
            await deal_service.set_reminders(s, deal_id, OWNER.id, "1,2", start)
        await deal_service.set_reminders(s, deal_id, OWNER.id, None, start)
    assert (await deal_row(harness, deal_id)).reminders is None
    async with harness.db.transaction() as s:
        await s.execute(update(Deal).where(Deal.id == deal_id).values(status="succeeded"))
    async with harness.db.transaction() as s:
        with pytest.raises(deal_service.DealFinished):
            await deal_service.set_reminders(s, deal_id, OWNER.id, "60", start)


# ---------------------------------------------------------------- the owner: /newdeal


async def test_wizard_reminders_step_refuses_bad_input_keeps_default_and_goes_back(harness) -> None:
    from tests.test_deal_wizard import NOW, OWNER, add_group, at_step, cb, fsm, full_draft

    gid = await add_group(harness)
    harness.clock.set(NOW)
    await at_step(harness, "opens", full_draft(gid, NOW))
    await harness.tap(OWNER, cb("opens", "now"))
    prompt = harness.last(OWNER)
    assert "Reminders in the groups before the deal closes" in prompt.text
    assert "step 12 of 13" in prompt.text
    kb = harness.buttons(prompt)
    assert kb["Keep default (2 h and 15 min)"] == cb("reminders", "default")
    assert kb["No reminders"] == cb("reminders", "skip")
    assert {"« Back", "✖ Cancel"} <= set(kb) and "Keep current" not in kb

    for bad, expected in [
        ("25:61", "not a list of reminders"),
        ("4m", "between 5 minutes and 7 days"),
        ("2h 1h 30m 15m", "At most 3 reminders"),
        ("2h, 120m", "different time"),
    ]:
        text = (await harness.say(OWNER, bad)).text
        assert expected in text and "for example <code>" in text, (bad, text)
        state, data = await fsm(harness)
        assert state == "DealWizard:reminders" and "reminders" not in data["draft"]

    assert "pickup or delivery" in (await harness.say(OWNER, "2小时 15分钟, 1d")).text
    assert (await fsm(harness))[1]["draft"]["reminders"] == "1440,120,15"
    await harness.tap(OWNER, cb("pickup", "back"))
    text = harness.last(OWNER).text
    assert "Current: 1 d, 2 h, 15 min before closing" in text
    assert "Keep current" in harness.buttons(harness.last(OWNER))
    await harness.tap(OWNER, cb("reminders", "keep"))
    preview = (await harness.say(OWNER, "Gate 3")).text
    assert "Reminders: 1 d, 2 h, 15 min before closing" in preview

    await harness.tap(OWNER, cb("preview", "back"))
    await harness.tap(OWNER, cb("pickup", "back"))
    await harness.tap(OWNER, cb("reminders", "skip"))  # No reminders
    await harness.tap(OWNER, cb("pickup", "skip"))
    assert "Reminders: none" in harness.last(OWNER).text
    await harness.tap(OWNER, cb("preview", "publish"))
    async with harness.db.read() as s:
        [deal] = (await s.scalars(select(Deal))).all()
    assert deal.reminders == ""


async def test_wizard_keep_default_stores_null(harness) -> None:
    from tests.test_deal_wizard import NOW, OWNER, add_group, at_step, cb, full_draft

    gid = await add_group(harness)
    harness.clock.set(NOW)
    await at_step(harness, "reminders", full_draft(gid, NOW, reminders="30"))
    await harness.tap(OWNER, cb("reminders", "default"))
    await harness.tap(OWNER, cb("pickup", "skip"))
    assert "Reminders: 2 h, 15 min before closing (default)" in harness.last(OWNER).text
    await harness.tap(OWNER, cb("preview", "publish"))
    async with harness.db.read() as s:
        deal = await s.scalar(select(Deal))
    assert deal is not None and deal.reminders is None


# ---------------------------------------------------------------- the owner: /deals


async def test_owner_edits_reminders_from_the_deals_list(harness) -> None:
    from tests.test_owner_deals import (
        ALICE,
        ALICE_GROUP,
        BOB,
        add_group,
        get_deal,
        make_deal,
        od,
        state_of,
    )

    gid = await add_group(harness, ALICE_GROUP, ALICE)
    deal_id = await make_deal(harness, ALICE.id, gid)
    harness.api.clear()
    await harness.tap(ALICE, od("open", deal_id))
    card = harness.last(ALICE)
    assert "Reminders: 2 h, 15 min before closing (default)" in card.text
    assert harness.buttons(card)["🔔 Reminders"] == od("rem", deal_id)

    await harness.tap(ALICE, od("rem", deal_id))
    prompt = harness.last(ALICE)
    assert "Reminders already sent are not sent again" in prompt.text
    assert {"Default (2 h and 15 min)", "No reminders", "✖ Cancel"} <= set(harness.buttons(prompt))
    assert await state_of(harness) == "OwnerEdit:reminders"

    text = (await harness.say(ALICE, "90")).text
    assert "not a list of reminders" in text and "<code>2h, 15m</code>" in text
    assert (await get_deal(harness, deal_id)).reminders is None  # nothing changed
    assert await state_of(harness) == "OwnerEdit:reminders"

    text = (await harness.say(ALICE, "1h30m, 10m")).text
    assert f"Reminders of D{deal_id}: 1 h 30 min, 10 min before closing." in text
    assert (await get_deal(harness, deal_id)).reminders == "90,10"
    assert await state_of(harness) is None

    await harness.tap(ALICE, od("remoff", deal_id))
    assert (await get_deal(harness, deal_id)).reminders == ""
    assert "Reminders: none" in harness.last(ALICE).text
    await harness.tap(ALICE, od("remdef", deal_id))
    assert (await get_deal(harness, deal_id)).reminders is None

    answer = await harness.tap(BOB, od("remoff", deal_id))  # not his deal
    assert answer.show_alert and (await get_deal(harness, deal_id)).reminders is None


async def test_reminders_of_a_closed_deal_cannot_change(harness) -> None:
    from tests.test_owner_deals import ALICE, ALICE_GROUP, add_group, get_deal, make_deal, od

    gid = await add_group(harness, ALICE_GROUP, ALICE)
    deal_id = await make_deal(harness, ALICE.id, gid)
    async with harness.db.transaction() as s:
        await s.execute(update(Deal).where(Deal.id == deal_id).values(status="failed"))
    for action in ("rem", "remoff"):
        answer = await harness.tap(ALICE, od(action, deal_id))
        assert answer.show_alert
    assert (await get_deal(harness, deal_id)).reminders is None
