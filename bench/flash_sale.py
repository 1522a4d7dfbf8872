"""`flash-sale`: 1,000 members tap Join on a deal with stock 100, all at once.

Every join goes through the real Dispatcher (bot.runner.process) concurrently, as the
updates of 1,000 different chats' members would; the post refresher coalesces the sign-up
list edits at its production interval (2.5 s). Latency is measured per callback, from the
moment its update is fed to the moment its answerCallbackQuery reaches the (fake) Bot API.

Targets: exactly `stock` units confirmed at closing, 0 oversold, every callback answered,
no wrong refusal (a "Sold out." answer while units are still unsold once every commit has
settled), p99 latency < 1 s, sign-up edits ≤ duration / 2 s + 2. Also printed: the p99 of
the joins and of the refusals apart, when the last join was answered, and how many reads the
locale cache and the admission gate made for the whole burst.

`--paid` makes the deal a Stars flash sale (pay_method stars, digital, XTR, 50 ⭐ a unit, no
minimum: a unit is held at the join and its invoice sent at once). The outbox loop runs as
in the bot, and each invoice it sends is paid at once: its member's pre-checkout query
(`pay:<order>:<invoice_no>`, read from the SendInvoice the fake Bot API received) is fed
while the taps are still being processed. So that there are members who already joined
while the others still tap, the taps come in `--waves` waves `--wave-gap` seconds apart
(defaults: 10 waves 0.5 s apart, the 1,000 taps over 4.5 s). Measured per pre-checkout,
from the moment its update is fed to its answerPreCheckoutQuery: `precheckout_p50_s` and
`precheckout_p99_s` (absolute seconds, no baseline), how many were answered ok, and how
many were fed before the last tap was answered. Target: precheckout_p99_s < 1 s, every
pre-checkout answered ok.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from aiogram.methods import (
    AnswerCallbackQuery,
    AnswerPreCheckoutQuery,
    EditMessageCaption,
    EditMessageText,
    SendInvoice,
)
from sqlalchemy import func, select

from bench.common import add_groups, create_deal, make_app, member_id, mount, ms, percentile
from bot.middlewares.admission import AdmissionMiddleware
from bot.posts import publish
from bot.runner import process
from handlers.callbacks import DealCB
from models import Deal, Order
from services import deals as deal_service
from services.timezones import utcnow
from tests.builders import Updates, group, person

P99_TARGET = 1.0
PRECHECKOUT_P99_TARGET = 1.0  # seconds, absolute
STARS_DEAL = dict(pay_method="stars", digital=True, currency="XTR", unit_price=50)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--joins", type=int, default=1000)
    parser.add_argument("--stock", type=int, default=100)
    parser.add_argument("--interval", type=float, default=None, help="edit interval (s)")
    parser.add_argument(
        "--paid", action="store_true", help="a Stars flash sale, its pre-checkouts measured"
    )
    parser.add_argument(
        "--waves", type=int, default=None, help="taps in waves (default 1; --paid: 10)"
    )
    parser.add_argument("--wave-gap", type=float, default=0.5, help="seconds between waves")


async def run(db_url: str, args: argparse.Namespace) -> dict:
    app, api = make_app(db_url, f"{args.tmp}/data")
    posts = app.dispatcher["posts"]
    if args.interval is not None:
        posts.interval = args.interval
    paid = getattr(args, "paid", False)
    waves = max(args.waves or (10 if paid else 1), 1)
    try:
        [group_id] = await add_groups(app.db, 1)
        spec = dict(STARS_DEAL) if paid else {}
        deal_id = await create_deal(
            app.db, [group_id], title="Flash sale", stock=args.stock, **spec
        )
        assert await publish(app.bot, app.db, app.i18n, deal_id, sender=app.sender) == 1
        chat = group(-1001_500_000_000, "Group 0")
        build = Updates(start=1)
        data = DealCB(action="join", deal_id=deal_id).pack()
        updates = mount(
            [build.callback(person(member_id(i)), data, chat=chat) for i in range(args.joins)],
            app.bot,
        )
        api.clear()
        fed: dict[str, float] = {}
        answered: dict[str, float] = {}

        texts_of: dict[str, str] = {}
        # the pre-checkouts (--paid): fed on each invoice sent, answered by query id
        checks: list[asyncio.Task] = []
        check_fed: dict[str, float] = {}
        check_answered: dict[str, float] = {}
        check_ok: dict[str, bool] = {}
        during_taps = 0
        taps_done = False

        async def precheckout(invoice: SendInvoice) -> None:
            nonlocal during_taps
            user = person(int(invoice.chat_id))
            update = mount(
                [
                    build.pre_checkout(
                        user, invoice.payload, invoice.currency, invoice.prices[0].amount
                    )
                ],
                app.bot,
            )[0]
            check_fed[update.pre_checkout_query.id] = time.perf_counter()
            if not taps_done:
                during_taps += 1
            await process(app, update)

        def on_request(method) -> None:
            if isinstance(method, AnswerCallbackQuery):
                answered.setdefault(method.callback_query_id, time.perf_counter())
                texts_of.setdefault(method.callback_query_id, method.text or "")
            elif isinstance(method, AnswerPreCheckoutQuery):
                check_answered.setdefault(method.pre_checkout_query_id, time.perf_counter())
                check_ok.setdefault(method.pre_checkout_query_id, bool(method.ok))
            elif isinstance(method, SendInvoice):  # the member pays at once
                checks.append(asyncio.get_running_loop().create_task(precheckout(method)))

        api.on_request = on_request

        async def tap(update) -> None:
            fed[update.callback_query.id] = time.perf_counter()
            await process(app, update)

        async def wave(index: int, chunk) -> None:
            await asyncio.sleep(index * args.wave_gap)
            await asyncio.gather(*(tap(u) for u in chunk))

        size = -(-len(updates) // waves)
        chunks = [updates[k : k + size] for k in range(0, len(updates), size)]
        if paid:
            app.outbox.start()  # as in the bot: invoices go out while the taps run
        started = time.perf_counter()
        await asyncio.gather(*(wave(k, chunk) for k, chunk in enumerate(chunks)))
        duration = time.perf_counter() - started
        taps_done = True
        if paid:
            await app.settle()  # the invoices still due, then their pre-checkouts
            while any(not t.done() for t in checks):
                await asyncio.gather(*checks)
            await app.outbox.stop()
        await posts.flush()  # the last coalesced edit shows the final list
        edits = len(api.of(EditMessageText)) + len(api.of(EditMessageCaption))
        texts = [a.text or "" for a in api.of(AnswerCallbackQuery)]
        latencies = [answered[cid] - fed[cid] for cid in fed if cid in answered]
        joined = [answered[c] - fed[c] for c in fed if texts_of.get(c, "").startswith("You're in")]
        refused = [answered[c] - fed[c] for c in fed if texts_of.get(c) == "Sold out."]
        last_join = max(
            (answered[c] - started for c in fed if texts_of.get(c, "").startswith("You're in")),
            default=0.0,
        )
        check_latencies = [
            check_answered[q] - check_fed[q] for q in check_fed if q in check_answered
        ]
        invoices = len(api.of(SendInvoice))

        async with app.db.read() as session:
            deal = await session.get(Deal, deal_id)
            stock_left = deal.stock_left
            active = await session.scalar(
                select(func.coalesce(func.sum(Order.quantity), 0)).where(
                    Order.deal_id == deal_id, Order.status == "active"
                )
            )
        locale_reads = app.locales.reads
        [gate_mw] = [
            m
            for m in app.dispatcher.callback_query.middleware
            if isinstance(m, AdmissionMiddleware)
        ]
        admission_reads = gate_mw.reads.reads
        async with app.db.transaction() as session:
            closing = await deal_service.close(session, deal_id, utcnow())
        confirmed = sum(o.quantity for o in closing.orders if o.status == "confirmed")
    finally:
        await app.close()

    # a "Sold out." answer is wrong if units were still unsold once every commit settled
    wrong_refusals = len(refused) if (stock_left or 0) > 0 else 0
    oversold = max(confirmed - args.stock, 0) + max(-(stock_left or 0), 0)
    p99 = percentile(latencies, 99)
    edit_bound = duration / 2.0 + 2
    result = {
        "joins": args.joins,
        "stock": args.stock,
        "confirmed": confirmed,
        "active_before_closing": active,
        "stock_left": stock_left,
        "oversold": oversold,
        "answered": len(answered),
        "joined_answers": sum(t.startswith("You're in") for t in texts),
        "sold_out_answers": sum(t == "Sold out." for t in texts),
        "p50_ms": ms(percentile(latencies, 50)),
        "p95_ms": ms(percentile(latencies, 95)),
        "p99_ms": ms(p99),
        "joined_p99_ms": ms(percentile(joined, 99)) if joined else None,
        "sold_out_p99_ms": ms(percentile(refused, 99)) if refused else None,
        "last_join_ms": ms(last_join),
        "wrong_refusals": wrong_refusals,
        "locale_reads": locale_reads,
        "admission_reads": admission_reads,
        "edits": edits,
        "edit_bound": round(edit_bound, 1),
        "edit_interval_s": posts.interval,
        "duration_s": round(duration, 3),
    }
    if paid:
        check_p99 = percentile(check_latencies, 99)
        result.update(
            {
                "paid": "stars",
                "waves": waves,
                "wave_gap_s": args.wave_gap,
                "invoices": invoices,
                "precheckouts": len(check_fed),
                "precheckouts_answered": len(check_answered),
                "precheckouts_ok": sum(check_ok.values()),
                "precheckouts_during_taps": during_taps,
                "precheckout_p50_s": round(percentile(check_latencies, 50), 4),
                "precheckout_p99_s": round(check_p99, 4),
                "precheckout_target_s": PRECHECKOUT_P99_TARGET,
            }
        )
    result["ok"] = (
        confirmed == args.stock
        and oversold == 0
        and wrong_refusals == 0
        and len(answered) == args.joins
        and p99 < P99_TARGET
        and edits <= edit_bound
    )
    if paid:
        result["ok"] = (
            result["ok"]
            and invoices == confirmed
            and len(check_fed) == invoices
            and sum(check_ok.values()) == invoices
            and during_taps > 0
            and check_p99 < PRECHECKOUT_P99_TARGET
        )
    return result
