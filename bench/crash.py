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
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import time
from collections import Counter
from pathlib import Path

import aiohttp
from sqlalchemy import select

from bench.common import add_groups, create_deal, mark_posted, member_id
from bench.process import SECRET, BotProcess, bot_env, free_port, healthy, wait_until, webhook_env
from bot.runner import SECRET_HEADER
from handlers.callbacks import DealCB
from models import Database, Deal, Order
from tests.builders import Updates, group, person
from tests.http_fake import FakeBotApiServer

QUANTITY = re.compile(r"×(\d+)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--stock", type=int, default=700)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=11)


def build_updates(count: int, deal_id: int, rng: random.Random) -> list[dict]:
    """Joins (+1) from `count` members, a fifth of them asking for ×2 instead."""
    build = Updates(start=1)
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
        [group_id] = await add_groups(db, 1)
        deal_id = await create_deal(db, [group_id], title="Crash test", stock=args.stock)
        await mark_posted(db, deal_id)
    finally:
        await db.dispose()
    updates = build_updates(args.updates, deal_id, rng)
    by_callback = {u["callback_query"]["id"]: u for u in updates}

    server = FakeBotApiServer(TOKEN)
    await server.start()
    port = free_port()
    tmp = Path(args.tmp)
    env = bot_env(db_url, server.url, tmp / "data", **webhook_env(port))
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
        await asyncio.sleep(0.5)
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
    finally:
        await db.dispose()
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
    )
    return result
