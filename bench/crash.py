"""`crash`: the bot as a subprocess in webhook mode is killed with SIGKILL at random moments
while a driver posts 1,000 join updates to it, and restarted; the driver redelivers every
update not acknowledged (HTTP 200), as Telegram does, until all are.

The webhook answers only after the update's transaction committed, and replayed updates are
skipped (processed_updates), so nothing acknowledged may be lost and nothing may count twice.
Checks, in the database at the end:
- lost: members told "You're in" / "now ×N" (an acknowledged order) without that order;
- duplicates: more than one order row for a member, or an update applied twice (a member's
  units differ from the quantity their last successful answer announced);
- stock: stock_left + units of active orders == initial stock, and the deal's counters agree.

Among the joins the driver also sends the owner's actions that promise private notices:
"mark all ready" on a deal that succeeded (a notice to each of its members) and "close now"
on open deals (a closing notice to each participant). Each member is promised exactly one
notice, so at the end (once the outbox is empty) every member promised one must have got
one message: `notices_lost` counts those who got none, `notices_duplicated` the messages
beyond the first (possible only when a kill falls between Telegram accepting a message
and the outbox row being marked sent: a later claim over that row's lapsed lease sends it
again, so the duplicates are at most `notices_reclaimed`, the rows' claims over a lapsed
lease; a kill can hold several rows in flight).

And payments: `pay_members` members hold a unit of a Stars flash sale (50 ⭐, their invoices
issued before the run); among the joins each of them pays it (a `successful_payment`
message, charge id `star-<n>`), a `--pay-redelivered` share of those payments is delivered
a second time as the same update (Telegram redelivers), and a `--pay-second` share of the
members pays the same invoice a second time (another charge id: a surplus, refunded in
Stars through the outbox's refundStarPayment). Once the outbox is empty, in the database:
- `payments_lost`: a successful_payment acknowledged (HTTP 200) whose charge id has no
  Payment row;
- `charged_twice_unrefunded`: an order with more than one Payment whose extra payments
  (those not applied to it) have refund "none" (`refund_pending`: still "pending");
- `orders_paid_twice`: an order with more than one payment applied.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import aiohttp
from sqlalchemy import delete, func, select

from bench.common import OWNER_ID, add_groups, create_deal, mark_posted, member_id
from bench.process import SECRET, BotProcess, bot_env, free_port, healthy, wait_until, webhook_env
from bot.runner import SECRET_HEADER
from handlers.callbacks import DealCB, OrdersCB, OwnerDealCB
from models import Database, Deal, Group, Order, OutboxMessage, Payment, User
from services import deals as deal_service
from services import orders as order_service
from services import payments
from services.timezones import utcnow
from tests.builders import Updates, group, person, private
from tests.http_fake import FakeBotApiServer

QUANTITY = re.compile(r"×(\d+)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--stock", type=int, default=700)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--ready-members", type=int, default=60)
    parser.add_argument("--close-deals", type=int, default=4)
    parser.add_argument("--close-members", type=int, default=10)
    parser.add_argument("--pay-members", type=int, default=60)
    parser.add_argument("--pay-redelivered", type=float, default=0.25, help="share delivered twice")
    parser.add_argument("--pay-second", type=float, default=0.2, help="share paid a second time")


NOTICE_BASE = 6_000_000  # members of the owner-action deals: ids from here
PAY_BASE = 8_000_000  # members of the Stars flash sale: ids from here
STARS_DEAL = dict(pay_method="stars", digital=True, currency="XTR", unit_price=50)


async def prepare_notices(db: Database, group_id: int, args: argparse.Namespace):
    """A deal that succeeded with `ready_members` confirmed orders, and `close_deals` open
    deals with `close_members` orders each; every member started the bot."""
    now = utcnow()
    ids = iter(range(NOTICE_BASE, NOTICE_BASE + 1_000_000))
    members: dict[int, list[int]] = {}
    async with db.transaction() as session:
        session.add(User(id=OWNER_ID, first_name="Owner", started=True))
        deal_ids = []
        for index, count in enumerate(
            [args.ready_members] + [args.close_members] * args.close_deals
        ):
            spec = deal_service.DealSpec(
                title=f"Notice deal {index}",
                currency="CNY",
                unit_price=1000,
                closes_at=now + timedelta(hours=6),
                group_ids=[group_id],
            )
            deal = await deal_service.create(session, OWNER_ID, spec, now)
            deal_ids.append(deal.id)
            members[deal.id] = []
            for _ in range(count):
                user_id = next(ids)
                session.add(User(id=user_id, first_name=f"N{user_id}", started=True))
                await session.flush()
                await order_service.set_quantity(
                    session, deal.id, user_id, 1, now, group_id=group_id
                )
                members[deal.id].append(user_id)
        await deal_service.close(session, deal_ids[0], now)  # succeeded: ready to mark
        await session.execute(delete(OutboxMessage))  # its closing notices are not measured
    return deal_ids[0], deal_ids[1:], members


async def prepare_payments(db: Database, group_id: int, count: int) -> tuple[int, list[tuple]]:
    """A Stars flash sale where `count` members (who started the bot) hold a unit each,
    joined through the one order action; (deal id, [(member, payload, amount)]). The
    invoices promised meanwhile are not measured."""
    deal_id = await create_deal(
        db, [group_id], title="Stars flash sale", stock=max(count, 1), **STARS_DEAL
    )
    now = utcnow()  # the deal opens when created
    members = [PAY_BASE + i for i in range(count)]
    async with db.transaction() as session:
        group_row = await session.get(Group, group_id)
        for user_id in members:
            session.add(User(id=user_id, first_name=f"P{user_id}", started=True))
        await session.flush()
        for user_id in members:
            await order_service.act(
                session, deal_id=deal_id, user_id=user_id, action="join", group=group_row, now=now
            )
        await session.execute(delete(OutboxMessage))
    async with db.read() as session:
        rows = (await session.scalars(select(Order).where(Order.deal_id == deal_id))).all()
        holds = [(o.user_id, payments.payload_of(o), payments.owed(o)) for o in rows]
    return deal_id, sorted(holds)


def payment_updates(
    build: Updates, holds: list[tuple], rng: random.Random, args: argparse.Namespace
) -> tuple[list[dict], list[dict]]:
    """Each member pays once; some of those updates come twice (the same update), some
    members pay a second time (another charge). (first payments, the extra deliveries)"""
    first, extra = [], []
    for n, (user_id, payload, amount) in enumerate(holds):
        member = person(user_id, f"P{user_id}")
        update = build.paid(member, payload, "XTR", amount, f"star-{n}")
        update = update.model_dump(mode="json", by_alias=True, exclude_none=True)
        first.append(update)
        if rng.random() < args.pay_redelivered:
            extra.append(update)  # Telegram redelivers it: the same update id
        if rng.random() < args.pay_second:
            again = build.paid(member, payload, "XTR", amount, f"star-{n}-again")
            extra.append(again.model_dump(mode="json", by_alias=True, exclude_none=True))
    return first, extra


def charge_of(update: dict) -> str | None:
    paid = (update.get("message") or {}).get("successful_payment")
    return paid["telegram_payment_charge_id"] if paid else None


def owner_updates(build: Updates, ready_deal: int, close_deals: list[int]) -> list[dict]:
    owner = person(OWNER_ID, "Owner")
    chat = private(owner)
    actions = [OrdersCB(action="all", deal_id=ready_deal, state="ready").pack()]
    actions += [OwnerDealCB(action="close_yes", deal_id=d).pack() for d in close_deals]
    return [
        build.callback(owner, data, chat=chat).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
        for data in actions
    ]


def build_updates(count: int, deal_id: int, rng: random.Random, build: Updates) -> list[dict]:
    """Joins (+1) from `count` members, a fifth of them asking for ×2 instead."""
    chat = group(-1001_500_000_000, "Group 0")
    out = []
    for i in range(count):
        if rng.random() < 0.2:
            data = DealCB(action="qty", deal_id=deal_id, qty=2).pack()
        else:
            data = DealCB(action="join", deal_id=deal_id).pack()
        update = build.callback(person(member_id(i), f"M{i}"), data, chat=chat)
        out.append(update.model_dump(mode="json", by_alias=True, exclude_none=True))
    return out


async def run(db_url: str, args: argparse.Namespace) -> dict:
    from bench.common import TOKEN

    rng = random.Random(args.seed)
    db = Database(db_url)
    try:
        [group_id] = await add_groups(db, 1, owned=True)
        deal_id = await create_deal(db, [group_id], title="Crash test", stock=args.stock)
        await mark_posted(db, deal_id)
        ready_deal, close_deals, notice_members = await prepare_notices(db, group_id, args)
        for other in close_deals:
            await mark_posted(db, other)
        pay_deal, holds = await prepare_payments(db, group_id, args.pay_members)
    finally:
        await db.dispose()
    build = Updates(start=1)
    updates = build_updates(args.updates, deal_id, rng, build)
    by_callback = {u["callback_query"]["id"]: u for u in updates}
    for action in owner_updates(build, ready_deal, close_deals):  # among the joins
        updates.insert(rng.randrange(len(updates) // 4, len(updates)), action)
    first_payments, extra_payments = payment_updates(build, holds, rng, args)
    for paid in first_payments:  # among the joins, and the extra ones after their first
        updates.insert(rng.randrange(0, len(updates) + 1), paid)
    for paid in extra_payments:
        after = max(
            i
            for i, u in enumerate(updates)
            if u["update_id"] == paid["update_id"]
            or (charge_of(u) and charge_of(u) == (charge_of(paid) or "").removesuffix("-again"))
        )
        updates.insert(rng.randrange(after + 1, len(updates) + 1), paid)

    server = FakeBotApiServer(TOKEN)
    await server.start()
    port = free_port()
    tmp = Path(args.tmp)
    env = bot_env(
        db_url,
        server.url,
        tmp / "data",
        # A lease must outlive a live holder's slowest send and settle on a loaded machine
        # (a 2-s lease expired under full-suite load and let a live row go out twice): only
        # a killed holder's rows may be sent again, at most once per kill.
        OUTBOX_LEASE_SECONDS="8",
        OUTBOX_POLL_SECONDS="0.5",
        ADMIN_CACHE_SECONDS="86400",  # the stored list above: no refetch from the fake
        **webhook_env(port),
    )
    bot = BotProcess(env, tmp, tmp / "bot.log")
    url = f"http://127.0.0.1:{port}/webhook"
    headers = {SECRET_HEADER: SECRET}
    # kill after these many acknowledgements (random moments, seeded), plus a random delay
    thresholds = sorted(rng.sample(range(1, args.updates), min(args.kills, args.updates - 1)))
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(len(updates)):
        queue.put_nowait(index)
    acked: set[int] = set()
    deliveries = Counter()
    statuses = Counter()
    up = asyncio.Event()
    progress = asyncio.Event()  # set at each acknowledgement
    kills = 0
    started = time.perf_counter()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:

        async def boot() -> None:
            await bot.start()
            await wait_until(lambda: healthy(http, port), 60, "the webhook", bot)
            up.set()

        async def worker() -> None:
            while len(acked) < len(updates):
                try:
                    index = queue.get_nowait()
                except asyncio.QueueEmpty:
                    await asyncio.sleep(0.01)
                    continue
                await up.wait()
                deliveries[index] += 1
                try:
                    async with http.post(url, json=updates[index], headers=headers) as response:
                        status = response.status
                        await response.read()
                except (aiohttp.ClientError, OSError, TimeoutError):
                    status = 0
                statuses[status] += 1
                if status == 200:
                    acked.add(index)
                    progress.set()
                else:  # Telegram sends it again later
                    await asyncio.sleep(0.02)
                    queue.put_nowait(index)

        async def killer() -> None:
            nonlocal kills
            for threshold in thresholds:
                while len(acked) < threshold:
                    progress.clear()
                    await progress.wait()
                await asyncio.sleep(rng.uniform(0, 0.05))
                up.clear()
                await bot.kill()
                kills += 1
                await boot()

        await boot()
        await asyncio.gather(killer(), *(worker() for _ in range(args.concurrency)))
        duration = time.perf_counter() - started

        async def outbox_empty() -> bool:
            check = Database(db_url)
            try:
                async with check.read() as session:
                    left = await session.scalar(
                        select(func.count())
                        .select_from(OutboxMessage)
                        .where(OutboxMessage.status == "pending")
                    )
            finally:
                await check.dispose()
            return left == 0

        await wait_until(outbox_empty, 120, "the outbox to empty", bot)
        exit_code = await bot.stop()
    await server.stop()

    # what the members were told: the last successful answer per callback
    told: dict[int, int] = {}
    for params in server.called("answerCallbackQuery"):
        text = str(params.get("text") or "")
        update = by_callback.get(str(params.get("callback_query_id")))
        match = QUANTITY.search(text)
        if update is None or match is None or not text.startswith(("You're in", "Your order")):
            continue
        told[update["callback_query"]["from"]["id"]] = int(match.group(1))

    db = Database(db_url)
    try:
        async with db.read() as session:
            deal = await session.get(Deal, deal_id)
            rows = (await session.scalars(select(Order).where(Order.deal_id == deal_id))).all()
            notice_rows = (
                await session.execute(
                    select(OutboxMessage.chat_id, OutboxMessage.expired_leases).where(
                        OutboxMessage.chat_id >= NOTICE_BASE, OutboxMessage.chat_id < PAY_BASE
                    )
                )
            ).all()
            promised_to = [chat_id for chat_id, _ in notice_rows]
            notices_reclaimed = sum(reclaimed for _, reclaimed in notice_rows)
            pay_orders = (
                await session.scalars(select(Order).where(Order.deal_id == pay_deal))
            ).all()
            recorded = (await session.scalars(select(Payment).order_by(Payment.id))).all()
            failed_rows = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == "failed")
            )
    finally:
        await db.dispose()
    members = {m for group in notice_members.values() for m in group}
    received = Counter(
        int(p["chat_id"]) for p in server.called("sendMessage") if int(p["chat_id"]) in members
    )
    notices_lost = sum(1 for m in promised_to if received[m] == 0)
    notices_duplicated = sum(n - 1 for n in received.values() if n > 1)
    expected_promises = len(members)
    # payments: every acknowledged charge recorded, every extra one given back
    acked_charges = {charge_of(updates[i]) for i in acked} - {None}
    charges = {p.charge_id for p in recorded}
    payments_lost = len(acked_charges - charges)
    by_order: dict[int, list[Payment]] = {}
    for payment in recorded:
        by_order.setdefault(payment.order_id or 0, []).append(payment)
    charged_twice = {o: ps for o, ps in by_order.items() if len(ps) > 1}
    extras = [p for ps in charged_twice.values() for p in ps if not p.applied]
    charged_twice_unrefunded = sum(
        1 for ps in charged_twice.values() if any(p.refund == "none" for p in ps if not p.applied)
    )
    orders_paid_twice = sum(1 for ps in by_order.values() if sum(p.applied for p in ps) > 1)
    refund_calls = Counter(
        str(p.get("telegram_payment_charge_id")) for p in server.called("refundStarPayment")
    )
    per_user = Counter(o.user_id for o in rows)
    active = {o.user_id: o.quantity for o in rows if o.status == "active" and o.quantity > 0}
    lost = sum(1 for user_id, qty in told.items() if active.get(user_id) != qty)
    duplicates = sum(n - 1 for n in per_user.values() if n > 1)
    units = sum(active.values())
    stock_equal = (deal.stock_left or 0) + units == args.stock
    counters_agree = deal.total_qty == units and deal.participants == len(active)
    result = {
        "updates": len(updates),
        "acknowledged": len(acked),
        "deliveries": sum(deliveries.values()),
        "redelivered": sum(n - 1 for n in deliveries.values()),
        "kills": kills,
        "starts": bot.starts,
        "http_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "told_in": len(told),
        "orders": len(active),
        "lost": lost,
        "duplicates": duplicates,
        "initial_stock": args.stock,
        "stock_left": deal.stock_left,
        "units_ordered": units,
        "stock_plus_ordered": (deal.stock_left or 0) + units,
        "stock_equal": stock_equal,
        "counters_agree": counters_agree,
        "notices_promised": len(promised_to),
        "notices_expected": expected_promises,
        "notices_delivered": sum(1 for m in promised_to if received[m] > 0),
        "notices_lost": notices_lost,
        "notices_duplicated": notices_duplicated,
        "notices_reclaimed": notices_reclaimed,
        "notices_failed": failed_rows,
        "payments_sent": len(first_payments) + len(extra_payments),
        "payments_redelivered": sum(
            1 for p in extra_payments if not charge_of(p).endswith("-again")
        ),
        "second_charges": sum(1 for p in extra_payments if charge_of(p).endswith("-again")),
        "payments_acknowledged": len(acked_charges),
        "payments_recorded": len(recorded),
        "payments_lost": payments_lost,
        "orders_paid": sum(1 for o in pay_orders if o.paid_at is not None),
        "pay_members": len(holds),
        "orders_charged_twice": len(charged_twice),
        "charged_twice_unrefunded": charged_twice_unrefunded,
        "orders_paid_twice": orders_paid_twice,
        "extra_refunded": sum(1 for p in extras if p.refund == "refunded"),
        "refund_pending": sum(1 for p in extras if p.refund == "pending"),
        "star_refund_calls": sum(refund_calls.values()),
        "star_refunds_repeated": sum(n - 1 for n in refund_calls.values() if n > 1),
        "clean_exit": exit_code == 0,
        "duration_s": round(duration, 2),
    }
    result["ok"] = (
        len(acked) == len(updates)
        and lost == 0
        and duplicates == 0
        and stock_equal
        and counters_agree
        and kills == len(thresholds)
        and len(promised_to) == expected_promises
        and notices_lost == 0
        and notices_duplicated <= notices_reclaimed
        and payments_lost == 0
        and charged_twice_unrefunded == 0
        and orders_paid_twice == 0
        and result["refund_pending"] == 0
        and sum(1 for o in pay_orders if o.paid_at is not None) == len(holds)
    )
    return result
