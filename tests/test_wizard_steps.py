"""Both private wizards through the real Dispatcher, step by step: stray input at every step
of /newdeal and /schedule stays on the step, changes nothing and shows the step's hint
again; Cancel and Back work the same way in both; a button of another step or of a wizard
that is over is refused with an alert."""

from __future__ import annotations

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.types import Location, PhotoSize

from handlers.callbacks import ScheduleCB, WizardCB
from services import deal_draft, post_draft
from tests.test_deal_wizard import NOW, OWNER, add_group, full_draft

WHERE = Location(latitude=31.2, longitude=121.5)


def key(harness) -> StorageKey:
    return StorageKey(bot_id=harness.app.bot.id, chat_id=OWNER.id, user_id=OWNER.id)


async def put(harness, state: str, data: dict) -> None:
    storage = harness.app.dispatcher.storage
    await storage.set_state(key(harness), state)
    await storage.set_data(key(harness), data)


async def fsm(harness) -> tuple[str | None, dict]:
    storage = harness.app.dispatcher.storage
    return await storage.get_state(key(harness)), await storage.get_data(key(harness))


@pytest.fixture
def frozen(harness):
    harness.clock.set(NOW)


def deal_data(gid: int) -> dict:
    draft = full_draft(gid, NOW, min_kind="units", min_value=10, tiers=[[10, 1100]])
    return {"draft": draft}


STRAYS = [
    (step, stray)
    for step in deal_draft.STEPS
    for stray in ("location", "photo", "text")
    if (stray, step) != ("photo", "photo") and not (stray == "text" and step in deal_draft.TYPED)
]  # what each step does not accept


@pytest.mark.parametrize(("step", "stray"), STRAYS)
async def test_stray_input_at_every_deal_step_shows_the_step_again(
    harness, frozen, step: str, stray: str
) -> None:
    gid = await add_group(harness)
    data = deal_data(gid)
    await put(harness, f"DealWizard:{step}", data)
    harness.api.clear()
    fields = {
        "location": {"location": WHERE},
        "photo": {"photo": [PhotoSize(file_id="p", file_unique_id="p", width=9, height=9)]},
        "text": {},
    }[stray]
    text = "hello" if stray == "text" else None
    await harness.send(OWNER, text, **fields)
    [reply] = harness.api.sent(OWNER.id)
    assert {"« Back", "✖ Cancel"} <= set(harness.buttons(reply))
    if step == "photo":
        assert "Send a photo" in reply.text
    elif stray == "text":
        assert "use the buttons" in reply.text
    else:
        assert "as text" in reply.text
    assert await fsm(harness) == (f"DealWizard:{step}", data)


def post_data(gid: int) -> dict:
    draft = {"group_ids": [gid], "text": "Hi", "kind": "daily", "weekdays": [1]}
    return {"draft": draft}


@pytest.mark.parametrize("step", post_draft.STEPS)
async def test_stray_input_at_every_schedule_step_shows_the_step_again(
    harness, frozen, step: str
) -> None:
    gid = await add_group(harness)
    data = post_data(gid)
    await put(harness, f"ScheduleWizard:{step}", data)
    harness.api.clear()
    await harness.send(OWNER, None, location=WHERE)
    reply = harness.last(OWNER)
    assert "Please use the buttons above, or /cancel." in reply.text
    assert "✖ Cancel" in set(harness.buttons(reply))
    assert await fsm(harness) == (f"ScheduleWizard:{step}", data)


@pytest.mark.parametrize(
    ("cb", "state", "farewell"),
    [
        (WizardCB, "DealWizard:price", "The draft is discarded."),
        (ScheduleCB, "ScheduleWizard:when", "Cancelled; nothing was saved."),
    ],
)
async def test_cancel_and_back_work_alike_in_both_wizards(harness, frozen, cb, state, farewell):
    gid = await add_group(harness)
    step = state.split(":")[1]
    data = deal_data(gid) if cb is WizardCB else post_data(gid)

    await put(harness, state, data)
    answer = await harness.tap(
        OWNER, cb(step="kind" if cb is ScheduleCB else "title", action="skip").pack()
    )
    assert answer.show_alert  # a button of another step
    assert (await fsm(harness))[0] == state
    await harness.tap(OWNER, cb(step=step, action="back").pack())
    previous = (await fsm(harness))[0]
    assert previous != state and previous.split(":")[0] == state.split(":")[0]
    await put(harness, state, data)
    answer = await harness.tap(OWNER, cb(step="groups", action="cancel").pack())  # from any step
    assert answer.text == "Cancelled."
    assert farewell in harness.last(OWNER).text
    assert await fsm(harness) == (None, {})
    answer = await harness.tap(OWNER, cb(step=step, action="back").pack())
    assert answer.show_alert  # the wizard is over
    await put(harness, state, data)
    await harness.send(OWNER, "/cancel")
    assert farewell in harness.last(OWNER).text
    assert await fsm(harness) == (None, {})


async def test_back_on_the_first_step_says_so_in_both(harness, frozen) -> None:
    gid = await add_group(harness)
    for cb, state, data in [
        (WizardCB, "DealWizard:title", {"draft": {}}),
        (ScheduleCB, "ScheduleWizard:groups", post_data(gid)),
    ]:
        await put(harness, state, data)
        await harness.feed(
            harness.updates.callback(OWNER, cb(step=state.split(":")[1], action="back").pack())
        )
        assert harness.api.answers()[-1].text == "This is the first step."
        assert await fsm(harness) == (state, data)
