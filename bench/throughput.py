"""`throughput`: updates per second through Tuan's full Dispatcher against bare aiogram.

One pre-generated stream (deterministic seed) of five kinds:

- chatter, 60 %: group messages from many members of 50 registered groups;
- callback, 20 %: Join / Cancel on the real buttons of the 20 open deals' group posts;
- command, 10 %: group commands (/deals, /buy D<id> n, /cancel D<id>, /help);
- inline, 5 %: inline queries (`@bot <query>`) from members: empty, or a partial deal title
  ("Deal", "Deal 1", "deal 7");
- card, 5 %: taps on deal cards sent through inline mode (callback queries with
  `inline_message_id` and no message), CardCB join / cancel with the share code of a member
  (ShareLink rows made in the set-up, services.referrals.share_link; two cards per code).

Both consumers get the same stream the way polling delivers it: batches of 100, each
processed with bot.runner.process_batch (chats concurrently, each chat in order; an update
with no chat goes by its sender) before the next batch.

- Tuan: the app from bot.factory with the fake Bot API session (answers at once), its real
  middlewares, database, sender and post refresher. Post edits are coalesced in the
  background as in production; they are counted, not waited for after the last batch.
- bare: an aiogram Dispatcher with no-op message and callback_query handlers. It runs before
  and after Tuan; the faster of its two runs is taken (the ratio errs low, not high).

Two more streams, in the same run, after the mix:

- chatter only (as many plain group texts as the mix has updates, same groups and members):
  `chatter_us` is Tuan's mean µs per text, `bare_chatter_us` the bare Dispatcher's (faster
  of a run before and one after Tuan's), `chatter_vs_bare` their ratio (target ≤ 1.5);
- the same chatter with protection from spam on in every group (challenge, links from
  newcomers, a flood limit of 5 messages in 10 s, join messages: services.moderation) and
  off again, alternating off / on / off / on over fresh streams of the same shape; the
  faster run of each is taken: `chatter_us` (off), `chatter_moderated_us` (on) and
  `moderation_ratio` their ratio (target ≤ 1.2: the anti-spam screen adds at most 20 %);
- Join taps only (members who have no order yet, on the deals without a stock limit, so
  every tap creates an order): `statements_per_join` is the SQL statements and COMMITs per
  tap and `round_trips_per_join` everything sent, BEGIN, SAVEPOINT, RELEASE and ROLLBACK
  included (bench.common.StatementCounter, the same count as the `write-path` benchmark's;
  the post refresher is stopped by then: its coalesced edits are background work, not the
  tap's). Target ≤ 6.

Prints tuan_ups, bare_ups, ratio (target ≥ 0.25 on SQLite, ≥ 0.20 on PostgreSQL), and
checks that every update was processed without an error, every callback answered (taps on
cards included), every command replied to, every inline query answered (when the Dispatcher
handles inline queries: `inline_handled`; without an inline handler they are counted and left
unanswered), every Join tap answered, and the deals' counters match their orders.
"""

from __future__ import annotations

import argparse
import itertools
import random
import time
from collections import Counter, defaultdict
from types import SimpleNamespace
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.methods import AnswerCallbackQuery, AnswerInlineQuery, EditMessageText, SendMessage
from aiogram.types import CallbackQuery, InlineQuery, Message, Update
from sqlalchemy import func, select

from bench.common import (
    TOKEN,
    ErrorCounter,
    StatementCounter,
    add_groups,
    create_deal,
    group_chat_id,
    make_app,
    member_id,
    mount,
)
from bot.posts import publish
from bot.runner import InFlight, chat_key, process_batch
from handlers.callbacks import CardCB, DealCB
from models import Deal, Group, ModSettings, Order
from services import referrals
from services.timezones import utcnow
from tests.builders import Updates, group, person
from tests.fake_api import FakeTelegram

TARGET_RATIO = {"sqlite": 0.25, "postgresql": 0.20}
TARGET_CHATTER_VS_BARE = 1.5
TARGET_STATEMENTS_PER_JOIN = 6.0
TARGET_MODERATION_RATIO = 1.2
GROUPS = 50
DEALS = 20
BATCH = 100
CARDS_PER_CODE = 2
SHARES = {"chatter": 0.60, "inline": 0.05, "card": 0.05, "callback": 0.20}  # commands: rest


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--updates", type=int, default=20_000)
    parser.add_argument("--members", type=int, default=3_000, help="distinct senders")
    parser.add_argument("--seed", type=int, default=7)


def stream(
    total: int,
    members: int,
    deals: list[int],
    seed: int,
    date: int | None = None,
    codes: list[list[str]] | None = None,
) -> tuple[list[Update], Counter]:
    """The update stream and how many of each kind it holds. Deal k is posted in groups k and
    k + DEALS; a callback toggles its member's order (join if out, cancel if in), and so does
    a tap on one of the deal's cards. `codes[k]`: the share codes of deal k's cards (default:
    made-up ones). Every update carries `date` (default: the moment the stream is built)."""
    if codes is None:
        codes = [[f"bench{k}x{n}" for n in range(2)] for k in range(len(deals))]
    bounds = list(itertools.accumulate(SHARES.values()))
    rng = random.Random(seed)
    build = Updates(start=1, date=date if date is not None else int(time.time()))
    chats = [group(group_chat_id(i), f"Group {i}") for i in range(GROUPS)]
    people = [person(member_id(i), f"M{i}") for i in range(members)]
    joined: set[tuple[int, int]] = set()
    kinds: Counter = Counter()
    out: list[Update] = []
    for _ in range(total):
        roll = rng.random()
        if roll < bounds[0]:
            chat, user = rng.choice(chats), rng.choice(people)
            out.append(build.message(chat, user, f"hello from {user.first_name} {rng.random()}"))
            kinds["chatter"] += 1
            continue
        k = rng.randrange(len(deals))
        chat = chats[k + DEALS * rng.randrange(2)]
        user = rng.choice(people)
        if roll < bounds[1]:
            title = f"Deal {k}"
            query = rng.choice(["", title[: rng.randint(1, len(title))], title.lower()])
            out.append(build.inline_query(user, query))
            kinds["inline"] += 1
            continue
        if roll < bounds[2]:
            key = (k, user.id)
            action = "cancel" if key in joined else "join"
            joined.symmetric_difference_update({key})
            code = rng.choice(codes[k])
            data = CardCB(action=action, code=code).pack()
            card = f"bench-{code}-{rng.randrange(CARDS_PER_CODE)}"
            out.append(build.card_tap(user, data, card))
            kinds["card"] += 1
            continue
        if roll < bounds[3]:
            key = (k, user.id)
            action = "cancel" if key in joined else "join"
            joined.symmetric_difference_update({key})
            data = DealCB(action=action, deal_id=deals[k]).pack()
            out.append(build.callback(user, data, chat=chat, message_id=1))
            kinds["callback"] += 1
            continue
        pick = rng.random()
        if pick < 0.3:
            text = "/deals"
        elif pick < 0.7:
            text = f"/buy D{deals[k]} {rng.randint(1, 3)}"
            joined.add((k, user.id))
        elif pick < 0.8:
            text = f"/cancel D{deals[k]}"
            joined.discard((k, user.id))
        else:
            text = "/help"
        out.append(build.command(chat, user, text))
        kinds["command"] += 1
    return out, kinds


def chatter_stream(total: int, members: int, seed: int, first_id: int) -> list[Update]:
    """Plain group texts only (the mix's chatter: same groups, members and texts)."""
    rng = random.Random(seed)
    build = Updates(start=first_id, date=int(time.time()))
    chats = [group(group_chat_id(i), f"Group {i}") for i in range(GROUPS)]
    people = [person(member_id(i), f"M{i}") for i in range(members)]
    out = []
    for _ in range(total):
        chat, user = rng.choice(chats), rng.choice(people)
        out.append(build.message(chat, user, f"hello from {user.first_name} {rng.random()}"))
    return out


def join_stream(total: int, deals: list[int], first_member: int, first_id: int) -> list[Update]:
    """Join taps of members with no order yet (ids from `first_member` on, one tap each) on
    the group posts of the deals without a stock limit (deal k is posted in groups k and
    k + DEALS, message id 1)."""
    rng = random.Random(first_member)
    build = Updates(start=first_id, date=int(time.time()))
    open_deals = [k for k in range(len(deals)) if k % 4 != 0]
    out = []
    for n in range(total):
        k = rng.choice(open_deals)
        chat = group(group_chat_id(k + DEALS * rng.randrange(2)), f"Group {k}")
        user = person(member_id(first_member + n), f"J{n}")
        data = DealCB(action="join", deal_id=deals[k]).pack()
        out.append(build.callback(user, data, chat=chat, message_id=1))
    return out


async def share_codes(db: Any, deals: list[int], group_ids: list[int]) -> list[list[str]]:
    """A share link per deal and group it is posted in (member k shares deal k): the codes
    the cards of the stream carry."""
    codes: list[list[str]] = []
    async with db.transaction() as session:
        for k, deal_id in enumerate(deals):
            row = []
            for group_id in (group_ids[k], group_ids[k + DEALS]):
                link = await referrals.share_link(
                    session, deal_id, group_id, member_id(k), utcnow()
                )
                row.append(link.code)
            codes.append(row)
    return codes


async def feed(target: Any, updates: list[Update]) -> float:
    """Process the stream in getUpdates-sized batches; seconds taken."""
    inflight = InFlight()
    started = time.perf_counter()
    for start in range(0, len(updates), BATCH):
        await process_batch(target, updates[start : start + BATCH], inflight)
    return time.perf_counter() - started


def bare_dispatcher() -> Dispatcher:
    router = Router(name="bare")

    @router.message()
    async def on_message(message: Message) -> None:
        return None

    @router.callback_query()
    async def on_callback(query: CallbackQuery) -> None:
        return None

    @router.inline_query()
    async def on_inline(query: InlineQuery) -> None:
        return None

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    return dispatcher


async def run_bare(updates: list[Update]) -> float:
    bot = Bot(TOKEN, session=FakeTelegram())
    target = SimpleNamespace(
        bot=bot, dispatcher=bare_dispatcher(), settings=SimpleNamespace(update_attempts=1)
    )
    try:
        return await feed(target, mount(updates, bot))
    finally:
        await bot.session.close()


async def set_moderation(app: Any, on: bool) -> None:
    """Every rule of protection from spam on (or off) in every group, and the rules'
    snapshot loaded again, as after a change in /settings."""
    async with app.db.transaction() as session:
        for group_id in await session.scalars(select(Group.id)):
            row = await session.get(ModSettings, group_id) or ModSettings(group_id=group_id)
            row.challenge, row.delete_joins = on, on
            row.link_days, row.flood_count = (1 if on else 0), (5 if on else 0)
            row.flood_seconds, row.mute_minutes, row.challenge_minutes = 10, 10, 5
            session.add(row)
    await app.dispatcher["moderation"].warm()


async def chatter_runs(app: Any, args: argparse.Namespace, first_id: int) -> dict[str, Any]:
    """Mean µs per chatter text with protection from spam off and on, alternating over
    fresh streams (off, on, off, on); the faster run of each."""
    seconds: dict[bool, list[float]] = {False: [], True: []}
    errors = 0
    for n, on in enumerate((False, True, False, True)):
        await set_moderation(app, on)
        texts = chatter_stream(args.updates, args.members, args.seed + 100 + n, first_id)
        first_id += len(texts)
        mounted = mount(texts, app.bot)
        with ErrorCounter() as counter:
            seconds[on].append(await feed(app, mounted))
        errors += counter.count
    await set_moderation(app, False)
    off = min(seconds[False]) / args.updates * 1e6
    on_ = min(seconds[True]) / args.updates * 1e6
    return {
        "chatter_off_us": round(off, 1),
        "chatter_moderated_us": round(on_, 1),
        "moderation_ratio": round(on_ / off, 3),
        "moderation_errors": errors,
    }


async def run(db_url: str, args: argparse.Namespace) -> dict:
    app, api = make_app(db_url, f"{args.tmp}/data")
    try:
        group_ids = await add_groups(app.db, GROUPS)
        deals = []
        for k in range(DEALS):
            spec: dict[str, Any] = {"title": f"Deal {k}"}
            if k % 4 == 0:
                spec["stock"] = 200  # some deals sell out on the way
            if k % 5 == 0:
                spec["tiers"] = [(20, 1100), (50, 990)]
            deals.append(await create_deal(app.db, [group_ids[k], group_ids[k + DEALS]], **spec))
        for deal_id in deals:  # the real publishing path; posts get message id 1 in each group
            await publish(app.bot, app.db, app.i18n, deal_id, sender=app.sender)
        codes = await share_codes(app.db, deals, group_ids)
        updates, kinds = stream(args.updates, args.members, deals, args.seed, codes=codes)
        inline_handled = "inline_query" in app.dispatcher.resolve_used_update_types()

        bare_seconds = [await run_bare(updates)]
        api.clear()
        mounted = mount(updates, app.bot)
        with ErrorCounter() as errors:
            tuan_seconds = await feed(app, mounted)
        posts = app.dispatcher["posts"]
        edits_during = len(api.of(EditMessageText))
        await posts.close(timeout=0)  # pending coalesced edits are not waited for
        bare_seconds.append(await run_bare(updates))
        answered = len({a.callback_query_id for a in api.of(AnswerCallbackQuery)})
        inline_answered = len({a.inline_query_id for a in api.of(AnswerInlineQuery)})
        replies = sum(1 for r in api.of(SendMessage) if r.chat_id < 0)

        chatter = chatter_stream(args.updates, args.members, args.seed, first_id=len(updates) + 1)
        bare_chatter = [await run_bare(chatter)]
        mounted = mount(chatter, app.bot)
        with ErrorCounter() as chatter_errors:
            chatter_seconds = await feed(app, mounted)
        bare_chatter.append(await run_bare(chatter))
        moderated = await chatter_runs(app, args, first_id=3 * len(updates) + 1)

        joins = join_stream(
            max(args.updates // 20, 20), deals, args.members, first_id=2 * len(updates) + 1
        )
        api.clear()
        mounted = mount(joins, app.bot)
        with ErrorCounter() as join_errors, StatementCounter(app.db.engine) as statements:
            await feed(app, mounted)
        joins_answered = len(api.of(AnswerCallbackQuery))
        join_statements = statements.statements
        join_round_trips = statements.round_trips
        dialect = app.db.dialect

        async with app.db.read() as session:
            counted = dict(
                (
                    await session.execute(
                        select(Order.deal_id, func.coalesce(func.sum(Order.quantity), 0))
                        .where(Order.status == "active")
                        .group_by(Order.deal_id)
                    )
                ).all()
            )
            rows = (await session.execute(select(Deal.id, Deal.total_qty))).all()
        consistent = all(counted.get(deal_id, 0) == total for deal_id, total in rows)
    finally:
        await app.close()

    total = len(updates)
    tuan_ups = total / tuan_seconds
    bare_ups = total / min(bare_seconds)
    ratio = tuan_ups / bare_ups
    chatter_us = chatter_seconds / len(chatter) * 1e6
    bare_chatter_us = min(bare_chatter) / len(chatter) * 1e6
    chatter_vs_bare = chatter_us / bare_chatter_us
    statements_per_join = join_statements / len(joins)
    processed_ok = (
        errors.count == 0
        and chatter_errors.count == 0
        and join_errors.count == 0
        and moderated["moderation_errors"] == 0
        and joins_answered == len(joins)
        and answered == kinds["callback"] + kinds["card"]
        and replies == kinds["command"]
        and (inline_answered == kinds["inline"] or not inline_handled)
        and consistent
    )
    per_chat: defaultdict[int, int] = defaultdict(int)
    for u in updates:
        per_chat[chat_key(u)] += 1
    return {
        "updates": total,
        "chatter": kinds["chatter"],
        "callbacks": kinds["callback"],
        "commands": kinds["command"],
        "inline_queries": kinds["inline"],
        "card_taps": kinds["card"],
        "inline_handled": inline_handled,
        "inline_answered": inline_answered,
        "conversations": len(per_chat),
        "tuan_seconds": round(tuan_seconds, 3),
        "bare_seconds": [round(s, 3) for s in bare_seconds],
        "tuan_ups": round(tuan_ups, 1),
        "bare_ups": round(bare_ups, 1),
        "ratio": round(ratio, 4),
        "errors": errors.count,
        "first_errors": errors.first,
        "answered": answered,
        "replies": replies,
        "consistent": consistent,
        "post_edits": edits_during,
        "chatter_stream": len(chatter),
        "chatter_us": round(chatter_us, 1),
        "bare_chatter_us": round(bare_chatter_us, 1),
        "chatter_vs_bare": round(chatter_vs_bare, 2),
        **moderated,
        "join_taps": len(joins),
        "joins_answered": joins_answered,
        "join_statements": join_statements,
        "round_trips_per_join": round(join_round_trips / len(joins), 2),
        "statements_per_join": round(statements_per_join, 2),
        "targets": {
            "ratio": TARGET_RATIO[dialect],
            "chatter_vs_bare": TARGET_CHATTER_VS_BARE,
            "statements_per_join": TARGET_STATEMENTS_PER_JOIN,
            "moderation_ratio": TARGET_MODERATION_RATIO,
        },
        "processed_ok": processed_ok,
        "ok": processed_ok
        and ratio >= TARGET_RATIO[dialect]
        and chatter_vs_bare <= TARGET_CHATTER_VS_BARE
        and statements_per_join <= TARGET_STATEMENTS_PER_JOIN
        and moderated["moderation_ratio"] <= TARGET_MODERATION_RATIO,
    }
