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
and the outbox row being marked sent; at most one per kill and row in flight).
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
from models import Database, Deal, Order, OutboxMessage, User
from services import deals as deal_service
from services import orders as order_service
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


NOTICE_BASE = 6_000_000  # members of the owner-action deals: ids from here


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
    finally:
        await db.dispose()
    build = Updates(start=1)
    updates = build_updates(args.updates, deal_id, rng, build)
    by_callback = {u["callback_query"]["id"]: u for u in updates}
    for action in owner_updates(build, ready_deal, close_deals):  # among the joins
        updates.insert(rng.randrange(len(updates) // 4, len(updates)), action)

    server = FakeBotApiServer(TOKEN)
    await server.start()
    port = free_port()
    tmp = Path(args.tmp)
    env = bot_env(
        db_url,
        server.url,
        tmp / "data",
        OUTBOX_LEASE_SECONDS="2",
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
            promised_to = list(
                await session.scalars(
                    select(OutboxMessage.chat_id).where(OutboxMessage.chat_id >= NOTICE_BASE)
                )
            )
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
        "notices_failed": failed_rows,
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
        and notices_duplicated <= kills
    )
    return result
