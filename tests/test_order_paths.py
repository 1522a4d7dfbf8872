"""Every path that places an order goes through the one order action (services.orders.act):
the group's Join button, `/buy` in the group and the Join button under the deal card a
share link opens in private chat each pass the admission gate, attribute the order to the
sharer, count the sign-up in the deal's group and refresh the group's post — the same way.
Replays change nothing, and a sold-out deal is refused by the gate on every path."""

from __future__ import annotations

from aiogram.methods import EditMessageText
from sqlalchemy import select

from handlers.callbacks import PrivateDealCB
from models import MemberActivityDay, Order
from tests.builders import person, private
from tests.test_deal_post import GROUP, press, ready
from tests.test_share_links import share, start

REF = person(801, "Ref")
BY_BUTTON = person(811, "Button")
BY_COMMAND = person(812, "Command")
BY_CARD = person(813, "Card")
LATE = person(814, "Late")


class GateSpy:
    """Counts the admission gate's entries per deal (the gate itself stays the app's)."""

    def __init__(self, gate) -> None:
        self.entered: list[int] = []
        original = gate.admit_now

        def admit_now(deal_id: int, units: int, member: int | None = None):
            self.entered.append(units)
            return original(deal_id, units, member)

        gate.admit_now = admit_now


async def place(harness, path: str, user, deal_id: int, group_id: int) -> str:
    """Place one unit through `path`; the answer the member got."""
    if path == "button":
        return (await press(harness, user, deal_id, "join")).text
    if path == "command":
        return (await harness.say(user, f"/buy D{deal_id} 1", GROUP)).text
    data = PrivateDealCB(action="join", deal_id=deal_id, group_id=group_id)
    return (await harness.tap(user, data)).text


async def test_the_three_paths_count_attribute_and_refresh_alike(harness) -> None:
    group_id, deal_id = await ready(harness, stock=3)
    gate = GateSpy(harness.app.dispatcher["gate"])
    code = await share(harness, REF, deal_id)
    members = {"button": BY_BUTTON, "command": BY_COMMAND, "card": BY_CARD}
    for user in members.values():  # each opened Ref's link first (a click in the group)
        await start(harness, user, code)
    entries = {}
    for path, user in members.items():
        harness.api.clear()
        before = len(gate.entered)
        answer = await place(harness, path, user, deal_id, group_id)
        entries[path] = len(gate.entered) - before
        assert "You're in" in answer, (path, answer)
        await harness.settle()
        edits = [e for e in harness.api.of(EditMessageText) if e.chat_id == GROUP.id]
        assert edits and user.first_name in edits[-1].text, path  # the post shows them
    # every path queued at the gate (the first also probed the unknown stock first)
    assert all(n >= 1 for n in entries.values()) and set(gate.entered) == {1}, entries
    async with harness.db.read() as s:
        orders = {o.user_id: o for o in await s.scalars(select(Order))}
    assert {uid: (o.quantity, o.referrer_id, o.group_id) for uid, o in orders.items()} == {
        user.id: (1, REF.id, group_id) for user in members.values()
    }
    await harness.app.flush_activity()
    async with harness.db.read() as s:
        signups = {
            row.user_id: row.signups
            for row in await s.scalars(select(MemberActivityDay))
            if row.signups
        }
    assert signups == {user.id: 1 for user in members.values()}
    assert harness.app.dispatcher["gate"]._deal(deal_id).known == 0  # learned from the commits

    # Sold out now: each path is refused from a read at the gate, and nothing is written.
    await start(harness, LATE, code)
    for path in members:
        answer = await place(harness, path, LATE, deal_id, group_id)
        assert "Sold out" in answer, (path, answer)
    async with harness.db.read() as s:
        assert await s.scalar(select(Order).where(Order.user_id == LATE.id)) is None


async def test_a_replayed_update_changes_nothing_on_any_path(harness) -> None:
    group_id, deal_id = await ready(harness, stock=10)
    updates = [
        harness.updates.callback(BY_BUTTON, f"dp:qty:{deal_id}:2", chat=GROUP, message_id=1),
        harness.updates.command(GROUP, BY_COMMAND, f"/buy D{deal_id} 2"),
        harness.updates.callback(
            BY_CARD,
            PrivateDealCB(action="qty", deal_id=deal_id, group_id=group_id, qty=2).pack(),
            chat=private(BY_CARD),
        ),
    ]
    for update in updates:
        await harness.feed(update)
        await harness.feed(update)  # delivered twice
    async with harness.db.read() as s:
        rows = {o.user_id: o.quantity for o in await s.scalars(select(Order))}
        from models import Deal

        deal = await s.get(Deal, deal_id)
    assert rows == {BY_BUTTON.id: 2, BY_COMMAND.id: 2, BY_CARD.id: 2}
    assert (deal.stock_left, deal.total_qty, deal.participants) == (4, 6, 3)
