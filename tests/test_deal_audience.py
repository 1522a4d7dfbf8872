"""Who may join from shared inline cards (Deal.audience): the owner's choice in /newdeal (the
preview's switch; members of the group by default) and in /deals (a button, through
services.deals.set_audience and the rights of services.rights); a duplicate keeps it; a
person who no longer manages the deal is refused and nothing changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from handlers.callbacks import OwnerDealCB, WizardCB
from models import Deal
from services import deals
from services.parsing import ParseError
from services.timezones import utcnow
from tests.builders import person
from tests.test_deal_wizard import OWNER, add_group, at_step, deal_count, fsm, full_draft
from tests.test_rights import OWNER as ADMIN
from tests.test_rights import demote, staffed

OWNER_ZH = person(503, "王老板", language="zh-hans")


def cb(step: str, action: str, value: str = "") -> str:
    return WizardCB(step=step, action=action, value=value).pack()


def od(action: str, deal_id: int) -> str:
    return OwnerDealCB(action=action, deal_id=deal_id).pack()


async def newest(harness) -> Deal:
    async with harness.db.read() as s:
        return await s.scalar(select(Deal).order_by(Deal.id.desc()).limit(1))


async def audience_of(harness, deal_id: int) -> str:
    async with harness.db.read() as s:
        return await s.scalar(select(Deal.audience).where(Deal.id == deal_id))


# ---------------------------------------------------------------- /newdeal


async def test_the_wizard_defaults_to_members_and_publishes_it(harness) -> None:
    gid = await add_group(harness)
    await at_step(harness, "preview", full_draft(gid, datetime.now(UTC)))
    await harness.say(OWNER, "no")  # a stray text shows the preview again
    preview = harness.last(OWNER)
    assert "Who may join from shared cards: members of the group (default)" in preview.text
    buttons = harness.buttons(preview)
    assert buttons["🌍 Cards: open to anyone"] == cb("preview", "audience", "anyone")
    await harness.tap(OWNER, cb("preview", "publish"))
    assert await deal_count(harness) == 1
    assert (await newest(harness)).audience == "members"


async def test_the_preview_switch_stores_anyone_and_back(harness) -> None:
    gid = await add_group(harness)
    await at_step(harness, "preview", full_draft(gid, datetime.now(UTC)))
    await harness.tap(OWNER, cb("preview", "audience", "anyone"))
    preview = harness.last(OWNER)
    assert "Who may join from shared cards: anyone with the card" in preview.text
    assert harness.buttons(preview)["👥 Cards: members only"] == cb(
        "preview", "audience", "members"
    )
    state, data = await fsm(harness)
    assert state == "DealWizard:preview" and data["draft"]["audience"] == "anyone"
    # Back and forth keeps the choice (it is part of the draft)
    await harness.tap(OWNER, cb("preview", "back"))
    await harness.tap(OWNER, cb("pickup", "skip"))
    assert "anyone with the card" in harness.last(OWNER).text
    await harness.tap(OWNER, cb("preview", "publish"))
    assert (await newest(harness)).audience == "anyone"

    await at_step(harness, "preview", full_draft(gid, datetime.now(UTC), audience="anyone"))
    await harness.tap(OWNER, cb("preview", "audience", "members"))
    await harness.tap(OWNER, cb("preview", "publish"))
    assert (await newest(harness)).audience == "members"


async def test_a_forged_audience_is_refused_and_changes_nothing(harness) -> None:
    gid = await add_group(harness)
    await at_step(harness, "preview", full_draft(gid, datetime.now(UTC)))
    answer = await harness.tap(OWNER, cb("preview", "audience", "everyone"))
    assert answer.show_alert
    assert "audience" not in (await fsm(harness))[1]["draft"]
    answer = await harness.tap(OWNER, cb("pickup", "audience", "anyone"))  # another step's
    assert answer.show_alert and (await fsm(harness))[1]["draft"].get("audience") is None
    # a forged value stored in the FSM data is read as the default
    await at_step(harness, "preview", full_draft(gid, datetime.now(UTC), audience="all"))
    await harness.tap(OWNER, cb("preview", "publish"))
    assert (await newest(harness)).audience == "members"


async def test_the_preview_in_chinese(harness) -> None:
    gid = await add_group(harness, owner=OWNER_ZH)
    await at_step(harness, "preview", full_draft(gid, datetime.now(UTC)), user=OWNER_ZH)
    await harness.tap(OWNER_ZH, cb("preview", "audience", "anyone"))
    preview = harness.last(OWNER_ZH)
    assert "谁可以通过分享的卡片参加：任何拿到卡片的人" in preview.text
    assert "👥 卡片：仅限群成员" in harness.buttons(preview)


def test_the_service_accepts_only_the_two_audiences() -> None:
    spec = deals.DealSpec(
        title="T",
        currency="CNY",
        unit_price=100,
        closes_at=utcnow() + timedelta(hours=1),
        group_ids=[1],
        audience="friends",
    )
    with pytest.raises(ParseError):
        deals.validate(spec, utcnow())
    spec.audience = "anyone"
    deals.validate(spec, utcnow())


# ---------------------------------------------------------------- /deals


async def test_deals_switch_changes_the_deal_and_refreshes_its_posts(harness) -> None:
    _closed, opened, _ids = await staffed(harness)
    await harness.tap(ADMIN, od("open", opened))
    card = harness.last(ADMIN)
    assert "Who may join from shared cards: members of the group (default)" in card.text
    assert harness.buttons(card)["🌍 Cards: open to anyone"] == od("audall", opened)

    answer = await harness.tap(ADMIN, od("audall", opened))
    assert answer.text == "Saved."
    card = harness.last(ADMIN)
    assert f"D{opened}: anyone with a shared card may join it now." in card.text
    assert "anyone with the card" in card.text
    assert harness.buttons(card)["👥 Cards: members only"] == od("audmem", opened)
    assert await audience_of(harness, opened) == "anyone"
    await harness.tap(ADMIN, od("audall", opened))  # a stale button sets it again
    assert await audience_of(harness, opened) == "anyone"

    await harness.tap(ADMIN, od("audmem", opened))
    assert "only members of the group may join it" in harness.last(ADMIN).text
    assert await audience_of(harness, opened) == "members"


async def test_a_demoted_creator_cannot_switch_it(harness) -> None:
    _closed, opened, _ids = await staffed(harness)
    await demote(harness, ADMIN)
    for action in ("audall", "audmem"):
        answer = await harness.tap(ADMIN, od(action, opened))
        assert answer.show_alert and "not yours" in answer.text
    assert await audience_of(harness, opened) == "members"
    with pytest.raises(deals.NotDealOwner):
        async with harness.db.transaction() as s:
            await deals.set_audience(s, opened, ADMIN.id, "anyone", utcnow())
    assert await audience_of(harness, opened) == "members"


async def test_a_closed_deal_keeps_its_audience(harness) -> None:
    closed, _opened, _ids = await staffed(harness)
    await harness.tap(ADMIN, od("open", closed))
    assert "🌍 Cards: open to anyone" not in harness.buttons(harness.last(ADMIN))
    answer = await harness.tap(ADMIN, od("audall", closed))
    assert answer.show_alert and "closed" in answer.text
    assert await audience_of(harness, closed) == "members"


async def test_duplicate_copies_the_audience(harness) -> None:
    _closed, opened, _ids = await staffed(harness)
    await harness.tap(ADMIN, od("audall", opened))
    await harness.tap(ADMIN, od("dup", opened))
    assert (await fsm(harness, ADMIN))[0] == "DealWizard:closes"
    preview = (await harness.say(ADMIN, "+3d")).text
    assert "Who may join from shared cards: anyone with the card" in preview
    await harness.tap(ADMIN, cb("preview", "publish"))
    copy = await newest(harness)
    assert copy.id != opened and copy.audience == "anyone"
