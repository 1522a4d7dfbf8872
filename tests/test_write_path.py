"""The lean write path of a Join tap (issue 13): how many statements a tap on a group post's
Join button sends through the real Dispatcher (pinned: a regression above the count fails),
and the order rules the leaner statements keep (stock, limit, deal state, attribution,
pickup code, `via`, revived orders, replays, concurrent double taps)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import event, select

from models import Deal, Order
from services import deals as deal_service
from services import events, orders
from services.timezones import utcnow
from tests.builders import person
from tests.test_deal_post import GROUP, press, ready, tap
from tests.test_share_links import share, start

# The SQL statements of one Join tap, the COMMIT included (BEGIN, SAVEPOINT and RELEASE are
# transaction control, counted apart): the update id, the user, the deal posted in the chat,
# the order row (inserted with its attribution), the deal's counters, COMMIT.
JOIN_STATEMENTS = 6
JOIN_ROUND_TRIPS = 9  # the same with BEGIN, SAVEPOINT and RELEASE
CONTROL = ("BEGIN", "SAVEPOINT", "RELEASE", "ROLLBACK")

FIRST = person(901, "First")
MEMBER = person(902, "Member")
SHARER = person(903, "Sharer")


class Recorder:
    """The statements the engine sends while `on` (cursor executes, commits, rollbacks)."""

    def __init__(self, db) -> None:
        self.engine = db.engine.sync_engine
        self.seen: list[tuple[int, str]] = []  # (connection, statement)

    def _execute(self, conn, cursor, statement, *args) -> None:
        self.seen.append((id(conn.connection.dbapi_connection), " ".join(statement.split())))

    def __enter__(self) -> Recorder:
        event.listen(self.engine, "before_cursor_execute", self._execute)
        event.listen(self.engine, "commit", self._commit)
        event.listen(self.engine, "rollback", self._rollback)
        return self

    def _commit(self, conn) -> None:
        self.seen.append((id(conn.connection.dbapi_connection), "COMMIT"))

    def _rollback(self, conn) -> None:
        self.seen.append((id(conn.connection.dbapi_connection), "ROLLBACK"))

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._execute)
        event.remove(self.engine, "commit", self._commit)
        event.remove(self.engine, "rollback", self._rollback)

    @property
    def transaction(self) -> list[str]:
        """What the update's write transaction sent on its connection: from the BEGIN before
        the update id to its COMMIT (post refreshes read in sessions of their own)."""
        writer = next(c for c, s in self.seen if "processed_updates" in s)
        sent = [s for c, s in self.seen if c == writer]
        start = next(i for i, s in enumerate(sent) if "processed_updates" in s)
        if start > 0 and sent[start - 1].startswith("BEGIN"):
            start -= 1
        return sent[start : sent.index("COMMIT", start) + 1]

    @property
    def statements(self) -> list[str]:
        return [s for s in self.transaction if not s.upper().startswith(CONTROL)]


async def order_of(harness, deal_id: int, user_id: int) -> Order | None:
    async with harness.db.read() as s:
        return await s.scalar(
            select(Order).where(Order.deal_id == deal_id, Order.user_id == user_id)
        )


async def test_a_join_tap_sends_at_most_six_statements_and_rereads_nothing(harness) -> None:
    group_id, deal_id = await ready(harness, stock=10)
    assert (await press(harness, FIRST, deal_id)).text.startswith("You're in")  # warm caches
    with Recorder(harness.db) as seen:
        answer = await press(harness, MEMBER, deal_id)
    assert answer.text.startswith("You're in")
    statements = seen.statements
    assert len(statements) <= JOIN_STATEMENTS, [s[:60] for s in statements]
    assert len(seen.transaction) <= JOIN_ROUND_TRIPS, seen.transaction
    assert statements[-1] == "COMMIT"
    selects = [s for s in statements if s.startswith("SELECT")]
    assert len(selects) <= 1, selects  # only the deal posted in the chat is read
    assert not any(s.startswith("UPDATE orders") for s in statements)  # no no-op UPDATE
    assert sum(s.startswith("UPDATE deals") for s in statements) == 1  # the conditional one
    assert (await order_of(harness, deal_id, MEMBER.id)).quantity == 1


async def test_a_replayed_join_changes_nothing_in_two_statements(harness) -> None:
    group_id, deal_id = await ready(harness, stock=10)
    update = tap(harness, MEMBER, deal_id)
    await harness.feed(update)
    before = await order_of(harness, deal_id, MEMBER.id)
    with Recorder(harness.db) as seen:
        await harness.feed(update)
    assert [s.split()[0] for s in seen.statements] == ["INSERT", "COMMIT"], seen.transaction
    after = await order_of(harness, deal_id, MEMBER.id)
    assert (after.quantity, after.updated_at, after.pickup_code) == (
        before.quantity,
        before.updated_at,
        before.pickup_code,
    )
    deal = await deal_service_row(harness, deal_id)
    assert (deal.total_qty, deal.participants, deal.stock_left) == (1, 1, 9)


async def deal_service_row(harness, deal_id: int) -> Deal:
    async with harness.db.read() as s:
        return await deal_service.get(s, deal_id)


async def test_the_lean_join_keeps_attribution_pickup_code_and_via(harness) -> None:
    group_id, deal_id = await ready(harness, stock=10)
    code = await share(harness, SHARER, deal_id)
    await start(harness, MEMBER, code)  # the member opened the sharer's link
    assert (await press(harness, MEMBER, deal_id)).text.startswith("You're in")
    order = await order_of(harness, deal_id, MEMBER.id)
    assert (order.referrer_id, order.share_code, order.via) == (SHARER.id, code, "button")
    assert (order.group_id, order.status, order.quantity) == (group_id, "active", 1)
    assert len(order.pickup_code) == 6 and set(order.pickup_code) <= set(orders.PICKUP_ALPHABET)
    # the sharer's own join is never credited to the sharer
    await press(harness, SHARER, deal_id)
    own = await order_of(harness, deal_id, SHARER.id)
    assert own.referrer_id is None and own.share_code is None


async def test_cancel_and_join_again_revives_the_same_order(harness) -> None:
    group_id, deal_id = await ready(harness, stock=10)
    await press(harness, MEMBER, deal_id)
    first = await order_of(harness, deal_id, MEMBER.id)
    assert (await press(harness, MEMBER, deal_id, "cancel")).text.startswith("Your order")
    cancelled = await order_of(harness, deal_id, MEMBER.id)
    assert (cancelled.status, cancelled.quantity) == ("cancelled", 0)
    again = await press(harness, MEMBER, deal_id)
    assert again.text.startswith("You're in")
    revived = await order_of(harness, deal_id, MEMBER.id)
    assert (revived.id, revived.pickup_code, revived.created_at) == (
        first.id,
        first.pickup_code,
        first.created_at,
    )
    assert (revived.status, revived.quantity, revived.via) == ("active", 1, "button")
    double = await press(harness, MEMBER, deal_id)  # a double tap changes nothing
    assert "already" in double.text
    deal = await deal_service_row(harness, deal_id)
    assert (deal.total_qty, deal.participants, deal.stock_left) == (1, 1, 9)


async def act_join(db, deal_id: int, group, user_id: int):
    async with db.transaction() as session:
        return await orders.act(
            session,
            deal_id=deal_id,
            user_id=user_id,
            action="join",
            group=group,
            now=utcnow(),
            via="button",
        )


async def group_row(harness, group_id: int):
    from models import Group

    async with harness.db.read() as s:
        return await s.get(Group, group_id)


async def test_a_sold_out_lean_join_leaves_no_order_row(harness) -> None:
    group_id, deal_id = await ready(harness, stock=1)
    grp = await group_row(harness, group_id)
    await act_join(harness.db, deal_id, grp, 1001)
    try:
        await act_join(harness.db, deal_id, grp, 1002)
    except orders.SoldOut as exc:
        assert exc.left == 0
    else:
        raise AssertionError("sold out expected")
    assert await order_of(harness, deal_id, 1002) is None  # the savepoint took the row back
    deal = await deal_service_row(harness, deal_id)
    assert (deal.total_qty, deal.participants, deal.stock_left) == (1, 1, 0)


async def _set_status(harness, deal_id: int, status: str) -> None:
    async with harness.db.transaction() as session:
        await session.execute(
            Deal.__table__.update().where(Deal.id == deal_id).values(status=status)
        )


async def test_paused_closed_and_limited_deals_refuse_the_lean_join(harness) -> None:
    group_id, deal_id = await ready(harness, stock=5, per_person_limit=2)
    grp = await group_row(harness, group_id)
    await _set_status(harness, deal_id, "paused")
    with pytest.raises(orders.DealPaused):
        await act_join(harness.db, deal_id, grp, 1003)
    assert await order_of(harness, deal_id, 1003) is None
    await _set_status(harness, deal_id, "open")
    change = await act_join(harness.db, deal_id, grp, 1003)
    assert (change.old_quantity, change.new_quantity, change.deal.stock_left) == (0, 1, 4)
    with pytest.raises(orders.LimitExceeded) as refused:
        async with harness.db.transaction() as session:
            await orders.set_quantity(session, deal_id, 1003, 3, utcnow(), group_id=group_id)
    assert refused.value.limit == 2
    await _set_status(harness, deal_id, "succeeded")
    with pytest.raises(orders.DealClosed):
        await act_join(harness.db, deal_id, grp, 1004)
    assert await order_of(harness, deal_id, 1004) is None
    deal = await deal_service_row(harness, deal_id)
    assert (deal.total_qty, deal.participants, deal.stock_left) == (1, 1, 4)


async def test_the_lean_join_records_order_changed_with_its_fields(harness) -> None:
    group_id, deal_id = await ready(harness, stock=3)
    grp = await group_row(harness, group_id)
    async with harness.db.transaction() as session:
        await orders.act(
            session,
            deal_id=deal_id,
            user_id=1005,
            action="join",
            group=grp,
            now=utcnow(),
            via="card",
        )
        happened = list(session.info.get(events.EVENTS, []))
    [changed] = [e for e in happened if isinstance(e, events.OrderChanged)]
    assert (changed.deal_id, changed.user_id, changed.chat_id) == (deal_id, 1005, GROUP.id)
    assert (changed.old_quantity, changed.new_quantity, changed.stock_left) == (0, 1, 2)
    assert changed.via == "card"
    assert (await order_of(harness, deal_id, 1005)).via == "card"


async def test_concurrent_lean_joins_never_oversell_nor_double(harness) -> None:
    group_id, deal_id = await ready(harness, stock=20)
    grp = await group_row(harness, group_id)

    async def one(user_id: int) -> str:
        try:
            await act_join(harness.db, deal_id, grp, user_id)
            return "ok"
        except orders.SoldOut:
            return "sold_out"
        except orders.AlreadyJoined:
            return "already"

    # 40 members, each tapping twice at once: 20 units sold, nobody holds two
    users = [2000 + i for i in range(40)]
    results = await asyncio.gather(*(one(u) for u in users + users))
    assert results.count("ok") == 20
    async with harness.db.read() as s:
        rows = list(await s.scalars(select(Order).where(Order.deal_id == deal_id)))
        deal = await s.get(Deal, deal_id)
    active = [o for o in rows if o.status == "active"]
    assert len(active) == 20 and all(o.quantity == 1 for o in active)
    assert len({o.user_id for o in rows}) == len(rows)
    assert (deal.stock_left, deal.total_qty, deal.participants) == (0, 20, 20)
