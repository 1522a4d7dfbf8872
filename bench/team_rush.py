"""`team-rush`: 300 members and 100 teams of 3 on a deal with stock 200, at the same moment.

The 100 starters (members 0..99) each started a team before the rush (100 units held, 100
left). Then the other 200 members tap at once, each on two cards: their own team's Join
(joiner n: team n // 2, so each team has two friends coming) and another team's (team
(n // 2 + 37) % 100), 400 taps through the real
Dispatcher (bot.runner.process) concurrently. One order per member per deal, so a member
gets at most one place; the stock holds at most 100 more places, so at most 100 taps win.

Checked in the database afterwards: no team has more than 3 members (`teams_past_size`), a
filled team has exactly its 3 confirmed orders and an open one only active places
(`teams_inconsistent`), no member has a place in two teams (`members_in_two_teams`: one
order row per member and deal), stock_left + the units held == 200 and never below 0
(`oversold`), every tap answered. Latency per tap, from feeding its update to its
answerCallbackQuery: p50/p99, reported (the issue sets no target); `ok` is correctness.

Baseline, in the same run: the same 400 taps as plain Join +1 on a deal without teams with
stock 100 (what was left for the rush) — `p99_ratio` is the team rush's p99 over it.

The team cards are posted and edited meanwhile, within Telegram's limit for a group (20
messages a minute: a hundred cards take five minutes to appear); the run does not wait for
them.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import Counter

from aiogram.methods import AnswerCallbackQuery
from sqlalchemy import func, select

from bench.common import add_groups, create_deal, make_app, member_id, mount, ms, percentile
from bot.posts import publish
from bot.runner import process
from handlers.callbacks import DealCB, TeamCB
from models import Deal, Group, Order, Team
from services import teams
from services.timezones import utcnow
from tests.builders import Updates, group, person


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--teams", type=int, default=100)
    parser.add_argument("--size", type=int, default=3)
    parser.add_argument("--stock", type=int, default=200)


async def _rush(app, api, updates) -> tuple[list[float], Counter, int]:
    """Feed the taps at once; their latencies, the answers' texts and how many answered."""
    fed: dict[str, float] = {}
    answered: dict[str, float] = {}
    texts: Counter = Counter()

    def on_request(method) -> None:
        if isinstance(method, AnswerCallbackQuery) and method.callback_query_id not in answered:
            answered[method.callback_query_id] = time.perf_counter()
            texts[(method.text or "").split(":")[0].split("(")[0].strip()] += 1

    api.on_request = on_request

    async def tap(update) -> None:
        fed[update.callback_query.id] = time.perf_counter()
        await process(app, update)

    await asyncio.gather(*(tap(u) for u in updates))
    api.on_request = None
    latencies = [answered[c] - fed[c] for c in fed if c in answered]
    return latencies, texts, len(answered)


async def run(db_url: str, args: argparse.Namespace) -> dict:
    app, api = make_app(db_url, f"{args.tmp}/data")
    joiners = args.members - args.teams
    try:
        [group_id] = await add_groups(app.db, 1)
        chat = group(-1001_500_000_000, "Group 0")
        deal_id = await create_deal(app.db, [group_id], title="Team rush", stock=args.stock)
        plain_id = await create_deal(
            app.db, [group_id], title="Plain rush", stock=args.stock - args.teams
        )
        for one in (deal_id, plain_id):
            assert await publish(app.bot, app.db, app.i18n, one, sender=app.sender) == 1
        async with app.db.transaction() as session:
            deal = await session.get(Deal, deal_id)
            rules = teams.Rules(size=args.size, price=800, hours=24)
            await teams.configure(session, deal, utcnow(), rules)
        team_ids: list[int] = []
        async with app.db.transaction() as session:
            grp = await session.get(Group, group_id)
            for i in range(args.teams):
                joined = await teams.start(
                    session, deal_id=deal_id, user_id=member_id(i), group=grp, now=utcnow()
                )
                team_ids.append(joined.team.id)

        build = Updates(start=1)
        taps = []
        plain = []
        for n in range(joiners):
            user = person(member_id(args.teams + n))
            own = (n * args.teams) // joiners
            for target in (own, (own + 37) % args.teams):
                data = TeamCB(action="join", id=team_ids[target]).pack()
                taps.append(build.callback(user, data, chat=chat))
                plain.append(
                    build.callback(user, DealCB(action="join", deal_id=plain_id).pack(), chat=chat)
                )
        api.clear()
        base_latencies, _base_texts, base_answered = await _rush(app, api, mount(plain, app.bot))
        started = time.perf_counter()
        latencies, texts, answered = await _rush(app, api, mount(taps, app.bot))
        duration = time.perf_counter() - started

        async with app.db.read() as session:
            deal = await session.get(Deal, deal_id)
            rows = list(await session.scalars(select(Team).where(Team.deal_id == deal_id)))
            orders = list(await session.scalars(select(Order).where(Order.deal_id == deal_id)))
            per_member = Counter(o.user_id for o in orders)
            held = await session.scalar(
                select(func.coalesce(func.sum(Order.quantity), 0)).where(
                    Order.deal_id == deal_id, Order.status.in_(("active", "confirmed"))
                )
            )
    finally:
        await app.close()

    places: dict[int, Counter] = {t.id: Counter() for t in rows}
    for order in orders:
        if order.team_id in places and order.quantity > 0:
            places[order.team_id][order.status] += 1
    inconsistent = 0
    for team in rows:
        got = places[team.id]
        if team.status == "filled":
            inconsistent += got != Counter({"confirmed": team.size}) or team.members != team.size
        elif team.status == "open":
            inconsistent += set(got) - {"active"} != set() or sum(got.values()) != team.members
    past_size = sum(1 for t in rows if t.members > t.size)
    two_teams = sum(1 for n in per_member.values() if n > 1)
    stock_left = deal.stock_left or 0
    oversold = max(-stock_left, 0) + max(held - args.stock, 0)
    p99 = percentile(latencies, 99)
    base_p99 = percentile(base_latencies, 99)
    result = {
        "members": args.members,
        "teams": args.teams,
        "size": args.size,
        "stock": args.stock,
        "taps": len(taps),
        "answered": answered,
        "places_taken": sum(t.members for t in rows) - args.teams,
        "teams_filled": sum(t.status == "filled" for t in rows),
        "teams_open": sum(t.status == "open" for t in rows),
        "stock_left": stock_left,
        "units_held": held,
        "oversold": oversold,
        "teams_past_size": past_size,
        "teams_inconsistent": inconsistent,
        "members_in_two_teams": two_teams,
        "answers": dict(texts.most_common()),
        "p50_ms": ms(percentile(latencies, 50)),
        "p99_ms": ms(p99),
        "baseline_plain_p99_ms": ms(base_p99),
        "baseline_answered": base_answered,
        "p99_ratio": round(p99 / base_p99, 2) if base_p99 else None,
        "duration_s": round(duration, 3),
    }
    result["ok"] = (
        answered == len(taps)
        and base_answered == len(plain)
        and oversold == 0
        and stock_left + held == args.stock
        and past_size == 0
        and inconsistent == 0
        and two_teams == 0
    )
    return result
