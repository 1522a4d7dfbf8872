"""`memory`: peak RSS of the running bot with 1,000 groups and 100,000 members registered.

The database is seeded first (groups, users, memberships, 50 open deals posted in 50 of the
groups); then `python -m bot run` polls the HTTP fake Bot API (tests/http_fake.py) and is
fed traffic across all groups: chatter from their members, Join / Cancel taps and group
commands. The peak is the process's VmHWM from /proc once every update was processed.
Target < 200 MB.

The floor, in the same run: a bare aiogram bot (bench/bare_bot.py: one Dispatcher, one router,
one handler) polling another instance of the same fake API, measured the same way as Tuan's
idle (VmHWM when it first calls getUpdates). `bare_idle_mb` builds aiogram's models on first
use as Tuan does (bot/lazy_models.py), so `idle_over_bare_mb` (target <= 50) is what Tuan's
own code, libraries and data cost at start; `bare_stock_idle_mb` is stock aiogram
(TUAN_EAGER_MODELS=1), which builds all its models at import.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from pathlib import Path

from sqlalchemy import insert

from bench.common import add_groups, create_deal, group_chat_id, mark_posted, member_id
from bench.process import BotProcess, bot_env, read_rss, wait_until
from handlers.callbacks import DealCB
from models import Database, Membership, User
from services.timezones import utcnow
from tests.builders import Updates, group, person
from tests.http_fake import FakeBotApiServer

TARGET_MB = 200
OVER_BARE_TARGET_MB = 50
MB = 1024 * 1024


class BareBotProcess(BotProcess):
    """`python -m bench.bare_bot` instead of `python -m bot run`."""

    command = ("bench.bare_bot",)


async def idle_rss(proc: BotProcess, server: FakeBotApiServer) -> tuple[int, int | None]:
    """Start `proc`, read its VmHWM when it first polls, stop it: (bytes, exit code)."""
    before = len(server.called("getUpdates"))
    await proc.start()
    try:

        async def polling() -> bool:
            return len(server.called("getUpdates")) > before

        await wait_until(polling, 60, "the first getUpdates", proc)
        _rss, idle_peak = read_rss(proc.pid)
        code = await proc.stop()
    finally:
        if proc.alive():
            await proc.kill()
    return idle_peak, code


async def bare_idle(tmp: Path) -> dict[str, int | None]:
    """The bare aiogram bot's idle VmHWM, with lazy models and stock ("stock")."""
    from bench.common import TOKEN

    server = FakeBotApiServer(TOKEN)
    await server.start()
    out: dict[str, int | None] = {}
    try:
        for name, extra in (("lazy", {}), ("stock", {"TUAN_EAGER_MODELS": "1"})):
            env = bot_env("", server.url, tmp / "bare", **extra)
            proc = BareBotProcess(env, tmp, tmp / f"bare_{name}.log")
            out[name], out[f"{name}_exit"] = await idle_rss(proc, server)
    finally:
        await server.stop()
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--deals", type=int, default=50)
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=5)


async def seed(db_url: str, groups: int, members: int, deals: int) -> list[int]:
    db = Database(db_url)
    try:
        group_ids = await add_groups(db, groups)
        now = utcnow()
        chunk = 5000
        for start in range(0, members, chunk):
            ids = range(start, min(start + chunk, members))
            users = [
                {"id": member_id(i), "first_name": f"Member {i}", "language_code": "en"}
                for i in ids
            ]
            rows = [
                {
                    "group_id": group_ids[i % groups],
                    "user_id": member_id(i),
                    "status": "member",
                    "joined_at": now,
                }
                for i in ids
            ]
            async with db.transaction() as session:
                await session.execute(insert(User), users)
                await session.execute(insert(Membership), rows)
        deal_ids = []
        for k in range(deals):
            deal_id = await create_deal(db, [group_ids[k]], title=f"Deal {k}", stock=500)
            await mark_posted(db, deal_id)
            deal_ids.append(deal_id)
        return deal_ids
    finally:
        await db.dispose()


def traffic(args: argparse.Namespace, deal_ids: list[int]) -> list[dict]:
    rng = random.Random(args.seed)
    build = Updates(start=1)
    chats = [group(group_chat_id(i), f"Group {i}") for i in range(args.groups)]
    out = []
    for _ in range(args.updates):
        roll = rng.random()
        if roll < 0.8:  # chatter in any group, from one of its members
            g = rng.randrange(args.groups)
            i = g + args.groups * rng.randrange(max(args.members // args.groups, 1))
            update = build.message(chats[g], person(member_id(i)), f"hi {rng.random()}")
        else:  # taps and commands in the groups with deals
            k = rng.randrange(len(deal_ids))
            i = k + args.groups * rng.randrange(max(args.members // args.groups, 1))
            user = person(member_id(i))
            if roll < 0.95:
                action = rng.choice(["join", "join", "cancel"])
                data = DealCB(action=action, deal_id=deal_ids[k]).pack()
                update = build.callback(user, data, chat=chats[k])
            else:
                text = rng.choice(["/deals", f"/buy D{deal_ids[k]} 2"])
                update = build.command(chats[k], user, text)
        out.append(update.model_dump(mode="json", by_alias=True, exclude_none=True))
    return out


async def run(db_url: str, args: argparse.Namespace) -> dict:
    from bench.common import TOKEN

    started = time.perf_counter()
    deal_ids = await seed(db_url, args.groups, args.members, args.deals)
    seeded = time.perf_counter() - started
    updates = traffic(args, deal_ids)
    last_id = updates[-1]["update_id"]

    tmp = Path(args.tmp)
    bare = await bare_idle(tmp)
    server = FakeBotApiServer(TOKEN)
    await server.start()
    bot = BotProcess(bot_env(db_url, server.url, tmp / "data"), tmp, tmp / "bot.log")
    samples: list[int] = []
    try:
        await bot.start()

        async def polling() -> bool:
            return bool(server.called("getUpdates"))

        await wait_until(polling, 60, "the first getUpdates", bot)
        _rss, idle_peak = read_rss(bot.pid)
        fed = time.perf_counter()
        for start in range(0, len(updates), 1000):  # Telegram's queue fills as the bot reads
            for update in updates[start : start + 1000]:
                server.push(update)
            while len(server.pending) > 500 and bot.alive():
                samples.append(read_rss(bot.pid)[0])
                await asyncio.sleep(0.05)

        async def confirmed() -> bool:
            samples.append(read_rss(bot.pid)[0])
            calls = server.called("getUpdates")
            return bool(calls) and int(calls[-1].get("offset") or 0) > last_id

        await wait_until(confirmed, 600, "every update to be processed", bot)
        processing = time.perf_counter() - fed
        rss, peak = read_rss(bot.pid)
        exit_code = await bot.stop()
    finally:
        if bot.alive():
            await bot.kill()
        await server.stop()
    answers = len(server.called("answerCallbackQuery"))
    result = {
        "groups": args.groups,
        "members": args.members,
        "updates": len(updates),
        "callbacks_answered": answers,
        "seed_s": round(seeded, 1),
        "processing_s": round(processing, 1),
        "rss_idle_peak_mb": round(idle_peak / MB, 1),
        "rss_end_mb": round(rss / MB, 1),
        "rss_peak_mb": round(peak / MB, 1),
        "rss_max_sampled_mb": round(max(samples, default=0) / MB, 1),
        "bare_idle_mb": round(bare["lazy"] / MB, 1),
        "bare_stock_idle_mb": round(bare["stock"] / MB, 1),
        "idle_over_bare_mb": round((idle_peak - bare["lazy"]) / MB, 1),
        "clean_exit": exit_code == 0,
        "bare_clean_exit": bare["lazy_exit"] == 0 and bare["stock_exit"] == 0,
    }
    result["ok"] = (
        peak / MB < TARGET_MB
        and result["idle_over_bare_mb"] <= OVER_BARE_TARGET_MB
        and exit_code == 0
    )
    return result
