"""The admission gate: sold-out taps are answered from a read, without a write transaction;
the gate reopens when stock is freed; members with an order can still cancel."""

from __future__ import annotations

import asyncio

from models import Deal
from services.admission import AdmissionGate
from tests.builders import person
from tests.test_deal_post import GROUP, press, quantities, ready


async def _pending(future) -> bool:
    await asyncio.sleep(0)
    return not future.done()


async def test_taps_beyond_the_joins_in_flight_wait_for_them_then_read_again() -> None:
    """No refusal on the gate's figures: a tap that does not fit beside the joins in flight
    waits; a failed join's unit goes to the first waiting tap; once the committed stock
    learnt from commits cannot cover a tap it is sent back to read (a ticket not admitted)."""
    gate = AdmissionGate()
    gate.learn(7, 2)
    a = gate.admit_now(7, 1, 1)
    b = gate.admit_now(7, 1, 2)
    assert a.admitted and b.admitted and gate.in_flight(7) == 2
    assert gate.admit_now(7, 1, 3) is None  # no room: read, then wait
    since = gate.epoch(7)
    c = asyncio.ensure_future(gate.wait(7, 1, 3, since=since))
    d = asyncio.ensure_future(gate.wait(7, 1, 4, since=since))
    assert await _pending(c) and await _pending(d)  # the joins in flight decide
    gate.learn(7, 1, member=1)  # a committed: its unit is sold and a is settled
    assert await _pending(c) and await _pending(d)  # one unit left: b may yet fail
    gate.leave(a)  # already settled by its commit: changes nothing
    assert gate.in_flight(7) == 1
    gate.leave(b)  # b failed: its unit goes to c, the first in the queue
    ticket = await c
    assert ticket.admitted and gate.in_flight(7) == 1
    assert await _pending(d)
    gate.learn(7, 0, member=3)  # c committed: nothing left for d, which reads again
    assert not (await d).admitted


async def test_a_members_second_tap_waits_for_the_first_then_goes_to_the_write_path() -> None:
    gate = AdmissionGate()
    gate.learn(7, 1)
    first = await gate.wait(7, 1, 1)
    again = asyncio.ensure_future(gate.wait(7, 1, 1, since=gate.epoch(7)))
    assert await _pending(again)
    gate.learn(7, 0, member=1)  # the first committed
    ticket = await again
    assert ticket.admitted and ticket.units == 0  # not counted: the write path answers it
    gate.leave(first)
    gate.leave(ticket)
    assert gate.in_flight(7) == 0


async def test_after_a_read_only_a_later_commit_makes_a_tap_look_sold_out() -> None:
    """A tap whose read showed stock is never sent back as sold out on the gate's arithmetic
    alone (a "sure" join may yet be refused by its handler): only after a commit learnt
    since that read, and then the middleware reads again before any refusal."""
    gate = AdmissionGate()
    gate.learn(7, 1)
    first = await gate.wait(7, 1, 1)  # sure, in flight
    since = gate.epoch(7)  # the second tap's read began here and showed 1 left
    second = asyncio.ensure_future(gate.wait(7, 1, 2, since=since))
    assert await _pending(second)  # not "sold out": the sure join may still fail
    gate.learn(7, 0, member=1)  # it committed: now it looks sold out, to be read again
    ticket = await second
    assert not ticket.admitted
    gate.leave(first)


async def test_the_gate_reopens_when_stock_is_freed() -> None:
    gate = AdmissionGate()
    gate.learn(7, 0)
    assert not (await gate.wait(7, 1, 1)).admitted
    gate.learn(7, 1)  # a cancel committed
    assert (await gate.wait(7, 1, 1)).admitted


async def test_a_read_begun_before_a_commit_changes_nothing() -> None:
    gate = AdmissionGate()
    since = gate.epoch(7)
    gate.learn(7, 0)  # a commit learnt while the read ran
    gate.learn(7, 5, since=since)
    assert gate.known(7) == 0
    gate.learn(7, 5, since=gate.epoch(7))
    assert gate.known(7) == 5


async def test_a_refusal_is_weighed_once_its_join_has_left() -> None:
    """A sold-out refusal by the database (another instance took units) names no member:
    the queue is looked at after the refused join freed its reservation, not before (its
    units must not count both as sold and as in flight)."""
    gate = AdmissionGate()
    gate.learn(7, 3)
    big = await gate.wait(7, 2, 1)  # sure
    unsure = gate.admit_now(7, 1, 2)
    waiter = asyncio.ensure_future(gate.wait(7, 1, 3))
    assert await _pending(waiter)  # served if `unsure` fails
    gate.learn(7, 1)  # the database refused big: only 1 was left
    gate.leave(big)  # (the middleware frees it right after the effects)
    assert await _pending(waiter)  # not refused: `unsure` may still fail
    gate.leave(unsure)  # it did
    assert (await waiter).admitted


def _count_update_transactions(monkeypatch):
    """Counts the write transactions of updates (each records its update id first); the
    background work (post edits, the outbox) is not counted."""
    from services import updates

    count = 0
    original = updates.mark_processed

    async def counting(*args, **kwargs):
        nonlocal count
        count += 1
        return await original(*args, **kwargs)

    monkeypatch.setattr(updates, "mark_processed", counting)
    return lambda: count


async def test_sold_out_taps_use_no_write_transaction(harness, monkeypatch) -> None:
    _group_id, deal_id = await ready(harness, stock=1)
    a, b, c = person(30_001, "A"), person(30_002, "B"), person(30_003, "C")
    assert (await press(harness, a, deal_id)).text.startswith("You're in")
    writes = _count_update_transactions(monkeypatch)
    assert (await press(harness, b, deal_id)).text == "Sold out."
    assert (await press(harness, c, deal_id, "qty", qty=1)).text == "Sold out."
    assert writes() == 0
    # a member with an order still changes it: the cancel frees the unit, B then gets it
    assert "cancelled" in (await press(harness, a, deal_id, "cancel")).text
    assert writes() == 1
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


def _gate_reads(harness):
    from bot.middlewares.admission import AdmissionMiddleware

    [middleware] = [
        m
        for m in harness.app.dispatcher.callback_query.middleware
        if isinstance(m, AdmissionMiddleware)
    ]
    return middleware.reads


async def test_a_burst_sells_exactly_the_stock_and_refuses_only_when_none_is_left(
    harness, monkeypatch
) -> None:
    """60 members tap Join at once on stock 5, through the real Dispatcher, while the
    group's language is not cached: exactly 5 sold, everyone answered once, the refusals
    only once no unit is left; the 55 refusals open no write transaction; the members'
    orders and the deal are read in a handful of shared reads, the language once."""
    _group_id, deal_id = await ready(harness, stock=5)
    harness.app.locales.forget_group(GROUP.id)
    locale_reads = harness.app.locales.reads
    reads = _gate_reads(harness)
    writes = _count_update_transactions(monkeypatch)
    members = [person(33_001 + i, f"R{i}") for i in range(60)]
    await asyncio.gather(*(harness.feed(_tap(harness, m, deal_id)) for m in members))
    held = await quantities(harness, deal_id)
    assert sum(held.values()) == 5 and all(q == 1 for q in held.values())
    texts = [a.text for a in harness.api.answers()]
    assert len(texts) == 60
    assert sum(t.startswith("You're in") for t in texts) == 5
    assert texts.count("Sold out.") == 55
    async with harness.db.read() as s:
        deal = await s.get(Deal, deal_id)
    assert deal.stock_left == 0  # so every refusal was right
    assert writes() == 5  # only the joins wrote
    # shared: one for the first taps, then at most two per commit (the refusals are read
    # again after a commit: the one it prompts and the one queued behind it)
    assert 1 <= reads.reads <= 2 * (5 + 1)
    assert harness.app.locales.reads - locale_reads == 1


async def test_a_member_tapping_twice_in_a_burst_gets_one_unit_and_no_sold_out(harness) -> None:
    _group_id, deal_id = await ready(harness, stock=3)
    twice = person(34_000, "T")
    members = [person(34_001 + i, f"S{i}") for i in range(20)]
    taps = [harness.feed(_tap(harness, m, deal_id)) for m in members]
    taps.insert(1, harness.feed(_tap(harness, twice, deal_id)))
    taps.insert(2, harness.feed(_tap(harness, twice, deal_id)))
    await asyncio.gather(*taps)
    held = await quantities(harness, deal_id)
    assert sum(held.values()) == 3 and held.get(twice.id) == 1
    answers = harness.api.answers()
    assert len(answers) == 22
    assert sum(a.text.startswith("You're in") for a in answers) == 3
    assert sum(a.text == "Sold out." for a in answers) == 18  # 17 others and not T's 2nd
    assert sum(a.text.startswith("You are already in") for a in answers) == 1


async def test_shared_admission_reads_batch_the_members_of_the_waiting_taps(
    harness, monkeypatch
) -> None:
    """Taps that arrive while a read runs share the next one: 30 taps, 2 reads, the second
    asking for the orders of the 29 members at once."""
    from bot.middlewares.admission import JoinRequest
    from services import orders

    _group_id, deal_id = await ready(harness, stock=10)
    reads = _gate_reads(harness)
    asked: list[list[int]] = []
    original = orders.admission

    async def counting(session, deal, chat_id, user_ids, now, **kw):
        asked.append(sorted(user_ids))
        return await original(session, deal, chat_id, user_ids, now, **kw)

    monkeypatch.setattr(orders, "admission", counting)
    request = JoinRequest(deal_id, GROUP.id, 1, lambda left: None)
    views = await asyncio.gather(*(reads.fetch(request, 35_000 + i) for i in range(30)))
    assert [len(a) for a in asked] == [1, 29]
    assert all(v is not None and v.stock_left == 10 and not v.holders for v in views)
    assert harness.app.dispatcher["gate"].known(deal_id) == 10
