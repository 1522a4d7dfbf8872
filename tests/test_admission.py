"""The admission gate: sold-out taps are answered from a read, without a write transaction;
the gate reopens when stock is freed; members with an order can still cancel."""

from __future__ import annotations

import asyncio

from models import Database, Deal
from services.admission import AdmissionGate
from tests.builders import person
from tests.test_deal_post import press, quantities, ready


async def test_gate_admits_up_to_the_stock_and_releases_the_rest_to_probe() -> None:
    gate = AdmissionGate()
    lead = await gate.enter(7, 1)
    assert lead.probe and lead.lead
    waiter = asyncio.ensure_future(gate.enter(7, 1))
    await asyncio.sleep(0)
    assert not waiter.done()  # the stock is being learnt
    gate.learn(7, 1, probe=lead)
    first = await waiter
    assert not first.probe and gate.in_flight(7) == 1
    second = asyncio.ensure_future(gate.enter(7, 1))
    await asyncio.sleep(0)
    assert not second.done() and gate.waiting(7) == 1
    gate.learn(7, 0)  # the join committed: none left
    gate.leave(first)
    assert (await second).probe  # nothing in flight: it must re-check with a read


async def test_gate_reopens_when_stock_is_freed() -> None:
    gate = AdmissionGate()
    gate.learn(7, 1)
    first = await gate.enter(7, 1)
    waiter = asyncio.ensure_future(gate.enter(7, 1))
    await asyncio.sleep(0)
    assert not waiter.done()
    gate.leave(first)  # the join failed (or a cancel freed the unit)
    admitted = await waiter
    assert not admitted.probe and gate.in_flight(7) == 1


async def test_sold_out_taps_use_no_write_transaction(harness, monkeypatch) -> None:
    _group_id, deal_id = await ready(harness, stock=1)
    a, b, c = person(30_001, "A"), person(30_002, "B"), person(30_003, "C")
    assert (await press(harness, a, deal_id)).text.startswith("You're in")
    writes = 0
    original = Database.transaction

    def counting(self):
        nonlocal writes
        writes += 1
        return original(self)

    monkeypatch.setattr(Database, "transaction", counting)
    assert (await press(harness, b, deal_id)).text == "Sold out."
    assert (await press(harness, c, deal_id, "qty", qty=1)).text == "Sold out."
    assert writes == 0
    # a member with an order still changes it: the cancel frees the unit, B then gets it
    assert "cancelled" in (await press(harness, a, deal_id, "cancel")).text
    assert writes == 1
    assert (await press(harness, b, deal_id)).text.startswith("You're in")
    assert await quantities(harness, deal_id) == {30_002: 1}


async def test_a_rush_with_a_cancel_in_it_never_oversells(harness) -> None:
    _group_id, deal_id = await ready(harness, stock=3)
    holder = person(31_000, "H")
    assert (await press(harness, holder, deal_id)).text.startswith("You're in")
    members = [person(31_001 + i, f"M{i}") for i in range(60)]
    taps = [harness.feed(_tap(harness, m, deal_id)) for m in members]
    taps.insert(30, harness.feed(_tap(harness, holder, deal_id, "cancel")))
    await asyncio.gather(*taps)
    held = await quantities(harness, deal_id)
    assert holder.id not in held
    assert 2 <= sum(held.values()) <= 3  # the freed unit goes to a later tap, if any
    texts = [a.text for a in harness.api.answers()]
    assert len(texts) == 62
    assert texts.count("Sold out.") == 60 - sum(held.values())


def _tap(harness, user, deal_id, action="join"):
    from tests.test_deal_post import tap

    return tap(harness, user, deal_id, action)


async def test_two_instances_with_their_own_gates_never_oversell(harness, settings) -> None:
    """Two bot processes share one database, each with its own gate: the database's
    conditional UPDATE still decides, so together they sell exactly the stock, and every
    tap on either instance is answered once."""
    from bot.factory import create_app
    from bot.runner import process
    from tests.fake_api import FakeTelegram

    _group_id, deal_id = await ready(harness, stock=5)
    other_api = FakeTelegram()
    other = create_app(settings, session=other_api, db=harness.db)
    try:
        members = [person(32_001 + i, f"N{i}") for i in range(40)]
        taps = []
        for n, member in enumerate(members):
            update = _tap(harness, member, deal_id)
            taps.append(harness.feed(update) if n % 2 else process(other, update))
        await asyncio.gather(*taps)
    finally:
        await other.close()
    held = await quantities(harness, deal_id)
    assert sum(held.values()) == 5 and all(q == 1 for q in held.values())
    answers = [a.text for a in harness.api.answers() + other_api.answers()]
    assert len(answers) == 40
    assert sum(t.startswith("You're in") for t in answers) == 5
    assert answers.count("Sold out.") == 35
    async with harness.db.read() as s:
        deal = await s.get(Deal, deal_id)
    assert deal.stock_left == 0 and deal.total_qty == 5
