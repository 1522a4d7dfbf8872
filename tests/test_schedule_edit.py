"""Editing a content post's schedule and target groups (services.calendar.edit_schedule /
edit_groups and /schedule list → Edit): the same checks as creating, each group's next run
recomputed in its own timezone, a run claimed by another instance left to finish safely, and
refused input changing nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiogram.fsm.storage.base import StorageKey
from sqlalchemy import delete, select, update

from models import GroupAdmin, ScheduledPost, ScheduledTarget
from scheduler.jobs import tick
from services import calendar
from services.calendar import PostSpec
from services.parsing import ParseError
from tests.test_calendar import sc, si
from tests.test_deal_post import GROUP, OTHER, OWNER, add_group

NOW = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)  # Berlin 07:00 CET, Shanghai 14:00 CST


async def make_post(harness, group_ids, *, now=NOW, **values) -> int:
    values.setdefault("kind", "daily")
    if values["kind"] in ("daily", "weekly"):
        values.setdefault("at_time", "09:00")
    spec = PostSpec(text=values.pop("text", "Hello group"), group_ids=list(group_ids), **values)
    async with harness.db.transaction() as s:
        return (await calendar.create(s, OWNER.id, spec, now)).id


async def runs(harness, post_id: int) -> dict[int, datetime | None]:
    async with harness.db.read() as s:
        rows = await s.scalars(select(ScheduledTarget).where(ScheduledTarget.post_id == post_id))
        return {t.group_id: t.next_run_at for t in rows}


async def post_row(harness, post_id: int) -> ScheduledPost:
    async with harness.db.read() as s:
        return await s.get(ScheduledPost, post_id, populate_existing=True)


async def target_of(harness, post_id: int, group_id: int) -> ScheduledTarget:
    async with harness.db.read() as s:
        return await s.scalar(
            select(ScheduledTarget).where(
                ScheduledTarget.post_id == post_id, ScheduledTarget.group_id == group_id
            )
        )


@pytest.fixture
async def two_groups(harness) -> tuple[int, int]:
    berlin = await add_group(harness, GROUP, timezone="Europe/Berlin")
    shanghai = await add_group(harness, OTHER, timezone="Asia/Shanghai")
    return berlin, shanghai


# ---------------------------------------------------------------- the schedule (service)


async def test_new_schedule_recomputes_each_groups_next_run(harness, two_groups) -> None:
    berlin, shanghai = two_groups
    post_id = await make_post(harness, [berlin, shanghai])
    assert await runs(harness, post_id) == {
        berlin: datetime(2026, 3, 20, 8, 0, tzinfo=UTC),
        shanghai: datetime(2026, 3, 21, 1, 0, tzinfo=UTC),
    }

    async def edit(**values) -> dict[int, datetime | None]:
        async with harness.db.transaction() as s:
            await calendar.edit_schedule(s, post_id, OWNER.id, NOW, **values)
        return await runs(harness, post_id)

    assert await edit(kind="weekly", at_time="10:30", weekdays="5") == {
        berlin: datetime(2026, 3, 21, 9, 30, tzinfo=UTC),  # Saturday 10:30 CET
        shanghai: datetime(2026, 3, 21, 2, 30, tzinfo=UTC),  # Saturday 10:30 CST
    }
    post = await post_row(harness, post_id)
    assert (post.kind, post.at_time, post.weekdays, post.cron) == ("weekly", "10:30", "5", None)

    assert await edit(kind="cron", cron="0  12 * * *") == {
        berlin: datetime(2026, 3, 20, 11, 0, tzinfo=UTC),
        shanghai: datetime(2026, 3, 21, 4, 0, tzinfo=UTC),  # 12:00 today has passed there
    }
    assert (await post_row(harness, post_id)).cron == "0 12 * * *"

    once = datetime(2026, 3, 29, 7, 0, tzinfo=UTC)  # after Berlin's DST change
    assert await edit(kind="once", run_at=once, at_time="09:00") == {
        berlin: once,
        shanghai: once,
    }
    post = await post_row(harness, post_id)
    assert (post.kind, post.run_at, post.at_time) == ("once", once, None)

    assert await edit(kind="daily", at_time="9:00") == {
        berlin: datetime(2026, 3, 20, 8, 0, tzinfo=UTC),
        shanghai: datetime(2026, 3, 21, 1, 0, tzinfo=UTC),
    }


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"kind": "cron", "cron": "* * * * *"}, "cron_too_often"),
        ({"kind": "cron", "cron": "0 0 30 2 *"}, "cron_never"),
        ({"kind": "once", "run_at": NOW - timedelta(minutes=1)}, "time_past"),
        ({"kind": "once"}, "time_past"),
        ({"kind": "daily", "at_time": "25:61"}, "clock_invalid"),
        ({"kind": "weekly", "at_time": "09:00", "weekdays": ""}, "weekdays_empty"),
        ({"kind": "hourly"}, "kind_unknown"),
    ],
)
async def test_a_refused_schedule_changes_nothing(harness, two_groups, values, reason) -> None:
    berlin, shanghai = two_groups
    post_id = await make_post(harness, [berlin, shanghai])
    before = await runs(harness, post_id)
    async with harness.db.transaction() as s:  # the error is caught: this commits
        with pytest.raises(ParseError) as err:
            await calendar.edit_schedule(s, post_id, OWNER.id, NOW, **values)
    assert err.value.reason == reason
    post = await post_row(harness, post_id)
    assert (post.kind, post.at_time, post.run_at, post.cron) == ("daily", "09:00", None, None)
    assert await runs(harness, post_id) == before


async def test_only_the_owner_edits(harness, two_groups) -> None:
    berlin, _shanghai = two_groups
    post_id = await make_post(harness, [berlin])
    async with harness.db.transaction() as s:
        with pytest.raises(calendar.PostNotFound):
            await calendar.edit_schedule(
                s, post_id, OWNER.id + 1, NOW, kind="daily", at_time="10:00"
            )
        with pytest.raises(calendar.PostNotFound):
            await calendar.edit_groups(s, post_id, OWNER.id + 1, [berlin], {berlin}, NOW)
    assert (await post_row(harness, post_id)).at_time == "09:00"


async def test_a_run_claimed_by_another_instance_finishes_on_the_new_schedule(
    harness, two_groups
) -> None:
    berlin, _shanghai = two_groups
    post_id = await make_post(harness, [berlin])
    due_at = datetime(2026, 3, 20, 8, 0, 5, tzinfo=UTC)
    target = await target_of(harness, post_id, berlin)
    async with harness.db.transaction() as s:
        assert await calendar.claim(s, target.id, due_at, owner="other-instance")
    async with harness.db.transaction() as s:  # the owner edits while it is being sent
        await calendar.edit_schedule(s, post_id, OWNER.id, due_at, kind="daily", at_time="18:00")
    target = await target_of(harness, post_id, berlin)
    assert target.claimed_by == "other-instance" and target.claimed_until > due_at
    assert target.next_run_at == datetime(2026, 3, 20, 17, 0, tzinfo=UTC)
    # This instance does not take it meanwhile, and nothing is sent twice.
    assert (await tick(harness.app, due_at + timedelta(seconds=1))).posts_sent == []
    async with harness.db.transaction() as s:
        following = await calendar.finish(s, target.id, due_at, owner="other-instance")
    assert following == datetime(2026, 3, 20, 17, 0, tzinfo=UTC)
    target = await target_of(harness, post_id, berlin)
    assert target.claimed_by is None and target.last_run_at == due_at


async def test_a_one_off_post_moved_later_during_its_run_runs_again_then(
    harness, two_groups
) -> None:
    berlin, _shanghai = two_groups
    post_id = await make_post(harness, [berlin], kind="once", run_at=NOW + timedelta(minutes=1))
    at = NOW + timedelta(minutes=2)
    target = await target_of(harness, post_id, berlin)
    async with harness.db.transaction() as s:
        assert await calendar.claim(s, target.id, at, owner="other-instance")
    later = NOW + timedelta(hours=3)
    async with harness.db.transaction() as s:
        await calendar.edit_schedule(s, post_id, OWNER.id, at, kind="once", run_at=later)
    async with harness.db.transaction() as s:
        assert await calendar.finish(s, target.id, at, owner="other-instance") == later
    result = await tick(harness.app, later + timedelta(seconds=5))
    assert result.posts_sent == [(post_id, berlin)]
    assert (await runs(harness, post_id)) == {berlin: None}


# ---------------------------------------------------------------- the groups (service)


async def test_new_groups_get_their_own_next_run_and_removed_ones_go(harness, two_groups) -> None:
    berlin, shanghai = two_groups
    post_id = await make_post(harness, [berlin])
    allowed = {berlin, shanghai}
    async with harness.db.transaction() as s:
        await calendar.edit_groups(s, post_id, OWNER.id, [berlin, shanghai], allowed, NOW)
    assert await runs(harness, post_id) == {
        berlin: datetime(2026, 3, 20, 8, 0, tzinfo=UTC),  # kept as it was
        shanghai: datetime(2026, 3, 21, 1, 0, tzinfo=UTC),  # 09:00 in Shanghai
    }
    async with harness.db.transaction() as s:
        await calendar.edit_groups(s, post_id, OWNER.id, [shanghai], allowed, NOW)
    assert await runs(harness, post_id) == {shanghai: datetime(2026, 3, 21, 1, 0, tzinfo=UTC)}
    result = await tick(harness.app, datetime(2026, 3, 20, 8, 0, 5, tzinfo=UTC))
    assert result.posts_sent == []  # Berlin no longer gets it


@pytest.mark.parametrize(("wanted", "reason"), [([], "groups_empty"), (["x"], "groups_not_yours")])
async def test_refused_groups_change_nothing(harness, two_groups, wanted, reason) -> None:
    berlin, shanghai = two_groups
    post_id = await make_post(harness, [berlin])
    ids = [shanghai if w == "x" else w for w in wanted]
    async with harness.db.transaction() as s:
        with pytest.raises(ParseError) as err:
            await calendar.edit_groups(s, post_id, OWNER.id, ids, {berlin}, NOW)
        with pytest.raises(ParseError):
            await calendar.edit_groups(s, post_id, OWNER.id, [berlin, 999_999], {berlin}, NOW)
    assert err.value.reason == reason
    assert await runs(harness, post_id) == {berlin: datetime(2026, 3, 20, 8, 0, tzinfo=UTC)}


async def test_removing_a_group_whose_run_is_being_sent_is_safe(harness, two_groups) -> None:
    berlin, shanghai = two_groups
    post_id = await make_post(harness, [berlin])
    due_at = datetime(2026, 3, 20, 8, 0, 5, tzinfo=UTC)
    target = await target_of(harness, post_id, berlin)
    async with harness.db.transaction() as s:
        assert await calendar.claim(s, target.id, due_at, owner="other-instance")
    async with harness.db.transaction() as s:
        await calendar.edit_groups(s, post_id, OWNER.id, [shanghai], {berlin, shanghai}, due_at)
    async with harness.db.transaction() as s:  # the other instance records its run
        assert await calendar.finish(s, target.id, due_at, owner="other-instance") is None
    assert await runs(harness, post_id) == {shanghai: datetime(2026, 3, 21, 1, 0, tzinfo=UTC)}


async def test_a_group_added_to_a_one_off_post_that_ran_gets_nothing(harness, two_groups) -> None:
    berlin, shanghai = two_groups
    post_id = await make_post(harness, [berlin], kind="once", run_at=NOW + timedelta(minutes=1))
    assert (await tick(harness.app, NOW + timedelta(minutes=2))).posts_sent == [(post_id, berlin)]
    async with harness.db.transaction() as s:
        await calendar.edit_groups(
            s, post_id, OWNER.id, [berlin, shanghai], {berlin, shanghai}, NOW + timedelta(minutes=3)
        )
    assert await runs(harness, post_id) == {berlin: None, shanghai: None}
    assert (await tick(harness.app, NOW + timedelta(minutes=4))).posts_sent == []


# ---------------------------------------------------------------- through the Dispatcher


@pytest.fixture
def frozen(harness):
    harness.clock.set(NOW)
    return NOW


async def owned_groups(harness) -> tuple[int, int, int]:
    from tests.test_deal_wizard import BERLIN, ELSEWHERE, SHANGHAI, STRANGER
    from tests.test_deal_wizard import add_group as add_owned

    berlin = await add_owned(harness, BERLIN, timezone="Europe/Berlin")
    shanghai = await add_owned(harness, SHANGHAI)
    elsewhere = await add_owned(harness, ELSEWHERE, owner=STRANGER)
    return berlin, shanghai, elsewhere


def owner_state_key(harness) -> StorageKey:
    return StorageKey(bot_id=harness.app.bot.id, chat_id=OWNER.id, user_id=OWNER.id)


async def owner_state(harness) -> str | None:
    return await harness.app.dispatcher.storage.get_state(owner_state_key(harness))


async def test_owner_edits_the_schedule_and_bad_times_change_nothing(harness, frozen) -> None:
    berlin, shanghai, _elsewhere = await owned_groups(harness)
    post_id = await make_post(harness, [berlin, shanghai])
    before = await runs(harness, post_id)

    await harness.say(OWNER, "/schedule list")
    await harness.tap(OWNER, si("edit", post_id))
    menu = harness.last(OWNER)
    labels = {b.callback_data: b.text for row in menu.reply_markup.inline_keyboard for b in row}
    assert {si("etext", post_id), si("etime", post_id), si("egroups", post_id)} <= set(labels)

    await harness.tap(OWNER, si("etime", post_id))
    assert f"Post #{post_id}: new schedule." in harness.last(OWNER).text
    await harness.tap(OWNER, sc("kind", "kind", "once"))
    assert "Europe/Berlin" in harness.last(OWNER).text  # the first group's timezone
    for bad, expected in [
        ("2026-02-30 10:00", "date does not exist"),
        ("25:61", "00 to 23"),
        ("2026-01-01 10:00", "already passed"),
    ]:
        answer = (await harness.say(OWNER, bad)).text
        assert expected in answer and "<code>" in answer, (bad, answer)
        assert await owner_state(harness) == "ScheduleWizard:when"
        assert (await post_row(harness, post_id)).kind == "daily"
        assert await runs(harness, post_id) == before

    answer = (await harness.say(OWNER, "2026-03-29 09:00")).text
    assert f"Schedule of post #{post_id} updated." in answer
    assert "Next run in Berliner Runde: 2026-03-29 09:00 (Europe/Berlin)" in answer
    assert "Next run in Fruit Lovers: 2026-03-29 15:00 (Asia/Shanghai)" in answer
    moment = datetime(2026, 3, 29, 7, 0, tzinfo=UTC)
    assert await runs(harness, post_id) == {berlin: moment, shanghai: moment}
    assert await owner_state(harness) is None

    await harness.tap(OWNER, si("etime", post_id))
    await harness.tap(OWNER, sc("kind", "kind", "cron"))
    answer = (await harness.say(OWNER, "* * * * *")).text
    assert "every 5 minutes" in answer and await runs(harness, post_id) == {
        berlin: moment,
        shanghai: moment,
    }
    answer = (await harness.say(OWNER, "30 8 * * 1-5")).text
    assert "Schedule: cron <code>30 8 * * 1-5</code>" in answer
    assert await runs(harness, post_id) == {
        berlin: datetime(2026, 3, 20, 7, 30, tzinfo=UTC),  # 08:30 CET today
        shanghai: datetime(2026, 3, 23, 0, 30, tzinfo=UTC),  # Monday 08:30 CST
    }


async def test_owner_edits_weekly_days_and_back_returns_to_the_menu(harness, frozen) -> None:
    berlin, _shanghai, _elsewhere = await owned_groups(harness)
    post_id = await make_post(harness, [berlin], kind="weekly", weekdays="0")
    await harness.tap(OWNER, si("etime", post_id))
    await harness.tap(OWNER, sc("kind", "back"))
    assert "what do you want to change" in harness.last(OWNER).text
    assert await owner_state(harness) is None

    await harness.tap(OWNER, si("etime", post_id))
    await harness.tap(OWNER, sc("kind", "kind", "weekly"))
    await harness.tap(OWNER, sc("days", "day", "0"))  # Monday was chosen: now none
    assert (await harness.tap(OWNER, sc("days", "done"))).show_alert
    await harness.tap(OWNER, sc("days", "day", "4"))
    await harness.tap(OWNER, sc("days", "done"))
    await harness.say(OWNER, "20:00")
    post = await post_row(harness, post_id)
    assert (post.kind, post.weekdays, post.at_time) == ("weekly", "4", "20:00")
    assert await runs(harness, post_id) == {berlin: datetime(2026, 3, 20, 19, 0, tzinfo=UTC)}


async def test_owner_edits_the_groups_only_their_own_and_at_least_one(harness, frozen) -> None:
    from tests.test_deal_wizard import STRANGER

    berlin, shanghai, elsewhere = await owned_groups(harness)
    post_id = await make_post(harness, [berlin])
    await harness.tap(OWNER, si("egroups", post_id))
    prompt = harness.last(OWNER)
    assert f"Post #{post_id}: which groups get it?" in prompt.text
    shown = [b.text for row in prompt.reply_markup.inline_keyboard for b in row]
    assert "✅ Berliner Runde" in shown and "▫️ Fruit Lovers" in shown
    assert not any("Not Yours" in t for t in shown)

    answer = await harness.tap(OWNER, sc("groups", "toggle", str(elsewhere)))  # forged
    assert answer.show_alert
    await harness.tap(OWNER, sc("groups", "toggle", str(berlin)))
    answer = await harness.tap(OWNER, sc("groups", "done"))
    assert answer.show_alert and "at least one group" in answer.text
    assert await runs(harness, post_id) == {berlin: datetime(2026, 3, 20, 8, 0, tzinfo=UTC)}
    assert await owner_state(harness) == "ScheduleWizard:groups"

    await harness.tap(OWNER, sc("groups", "toggle", str(shanghai)))
    assert (await harness.tap(OWNER, sc("groups", "done"))).text == "Saved"
    assert f"Groups of post #{post_id} updated." in harness.last(OWNER).text
    assert "Next run in Fruit Lovers: 2026-03-21 09:00 (Asia/Shanghai)" in harness.last(OWNER).text
    assert await runs(harness, post_id) == {shanghai: datetime(2026, 3, 21, 1, 0, tzinfo=UTC)}

    # Somebody else cannot open the post's edits.
    for action in ("edit", "etime", "egroups", "etext"):
        assert (await harness.tap(STRANGER, si(action, post_id))).show_alert


async def test_a_group_the_owner_no_longer_runs_cannot_be_saved(harness, frozen) -> None:

    berlin, shanghai, _elsewhere = await owned_groups(harness)
    post_id = await make_post(harness, [berlin])
    await harness.tap(OWNER, si("egroups", post_id))
    await harness.tap(OWNER, sc("groups", "toggle", str(shanghai)))
    async with harness.db.transaction() as s:  # the owner is no longer an admin there
        await s.execute(
            delete(GroupAdmin).where(
                GroupAdmin.group_id == shanghai, GroupAdmin.user_id == OWNER.id
            )
        )
    answer = await harness.tap(OWNER, sc("groups", "done"))
    assert answer.show_alert
    assert await runs(harness, post_id) == {berlin: datetime(2026, 3, 20, 8, 0, tzinfo=UTC)}


async def test_a_group_that_refused_the_bot_stays_stopped_after_an_edit(
    harness, two_groups
) -> None:
    from models import Group

    berlin, shanghai = two_groups
    post_id = await make_post(harness, [berlin, shanghai])
    async with harness.db.transaction() as s:
        await s.execute(update(Group).where(Group.id == shanghai).values(is_active=False))
        await calendar.stop_group(s, shanghai)
    async with harness.db.transaction() as s:
        await calendar.edit_schedule(s, post_id, OWNER.id, NOW, kind="daily", at_time="10:00")
    assert await runs(harness, post_id) == {
        berlin: datetime(2026, 3, 20, 9, 0, tzinfo=UTC),
        shanghai: None,
    }
