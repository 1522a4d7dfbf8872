"""`broadcast`: one deal published into 300 groups through a fake Bot API that enforces
Telegram's limits (30 messages/s overall, 20/min per group, 1/s per chat; 429 with
`retry_after` when exceeded), by the real publishing path (bot.posts.publish, as the
scheduler and the wizard call it) and the real Sender.

Prints sent, lost, 429s received, duration and the ideal duration (groups / 30 per s).
Targets: 0 lost, 0 429s, duration ≤ 1.15 × ideal. `--scale` shrinks every window (the same
limits in faster time) for the quick version in the test suite.
"""

from __future__ import annotations

import argparse
import time

from sqlalchemy import func, select

from bench.common import add_groups, create_deal, make_app
from bench.fakes import LimitedTelegram
from bot.posts import publish
from models import DealPost

GLOBAL_PER_S = 30
SLACK = 1.15


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--groups", type=int, default=300)
    parser.add_argument("--scale", type=float, default=1.0, help="shrink every window")


async def run(db_url: str, args: argparse.Namespace) -> dict:
    api = LimitedTelegram(scale=args.scale)
    app, _ = make_app(db_url, f"{args.tmp}/data", api=api)
    sender = app.sender
    sender.global_window /= args.scale  # the sender keeps the same limits in the same time
    sender.group_window /= args.scale
    sender.chat_interval /= args.scale
    try:
        group_ids = await add_groups(app.db, args.groups)
        deal_id = await create_deal(app.db, group_ids, title="Broadcast", stock=500)
        api.clear()
        started = time.perf_counter()
        sent = await publish(app.bot, app.db, app.i18n, deal_id, sender=sender)
        duration = time.perf_counter() - started
        async with app.db.read() as session:
            posted = await session.scalar(
                select(func.count())
                .select_from(DealPost)
                .where(DealPost.deal_id == deal_id, DealPost.message_id.is_not(None))
            )
        failed = sender.failed
    finally:
        await app.close()
    ideal = args.groups / GLOBAL_PER_S / args.scale
    lost = args.groups - posted
    result = {
        "groups": args.groups,
        "sent": sent,
        "posted": posted,
        "lost": lost,
        "failed_sends": failed,
        "429s": api.too_many,
        "duration_s": round(duration, 3),
        "ideal_s": round(ideal, 3),
        "vs_ideal": round(duration / ideal, 3),
        "scale": args.scale,
    }
    result["ok"] = lost == 0 and api.too_many == 0 and duration <= SLACK * ideal
    return result
